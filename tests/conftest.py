from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SCIPZARR_SHARED_DATA", REPO.parent / "shared" / "data"))
JURKAT = SHARED_DATA / "ifc_jurkat_cellcycle"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not present: {path}")
    return path


@pytest.fixture
def jurkat() -> Path:
    return need(JURKAT)


def tree_digest(path: Path) -> str:
    """Checksum of every file under ``path`` (names, sizes, bytes, modes)."""
    h = hashlib.sha256()
    for p in sorted(Path(path).rglob("*")) if Path(path).is_dir() else [Path(path)]:
        h.update(str(p).encode())
        if p.is_file():
            h.update(p.read_bytes())
            h.update(str(p.stat().st_mode).encode())
    return h.hexdigest()


def convert_in_fresh_interpreter(inputs: list, output: Path, expression: str) -> str:
    """``scipzarr.converters.convert(inputs, output)`` in a new Python process, then ``print(expression)``
    there (e.g. which modules the convert imported); returns what it printed last."""
    code = ("import sys\nfrom scipzarr.converters import convert\n"
            f"convert({[str(p) for p in inputs]!r}, {str(output)!r}, progress=False)\nprint({expression})")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.split("\n")[-2]


def flat_events(n: int, size: int = 40, channels: int = 2, seed: int = 0):
    """Events with one flat ellipse each on a zero background: exact ground truth."""
    from skimage.draw import ellipse

    rng = np.random.default_rng(seed)
    events, masks = [], []
    for _ in range(n):
        m = np.zeros((size, size), bool)
        ry, rx = rng.uniform(4, size / 4), rng.uniform(4, size / 4)
        m[ellipse(size / 2 + rng.uniform(-3, 3), size / 2 + rng.uniform(-3, 3), ry, rx, m.shape,
                  rotation=rng.uniform(0, np.pi))] = True
        img = np.zeros((channels, size, size), np.uint16)
        img[0][m] = 1000
        for c in range(1, channels):
            img[c] = rng.integers(0, 500, (size, size)) * m
        events.append(img)
        masks.append(m)
    return np.stack(events), np.stack(masks)


CIF = SHARED_DATA / "ifc_cif_flowsight" / "example.cif"
CIF_REFERENCE = SHARED_DATA / "ifc_cif_flowsight" / "example_cif_reference.npz"


@pytest.fixture
def cif() -> Path:
    need(CIF_REFERENCE)
    return need(CIF)


def write_cif(path: Path, source: Path, repeat: int = 1, objects: list[int] | None = None) -> Path:
    """A CIF built from a real one's pages: IFD 0 (acquisition tags) as is, then the image and mask pages of
    ``objects`` (default: all), ``repeat`` times, renumbered 0, 1, ... in the new file (little-endian)."""
    import struct

    from scipzarr.converters import cif as cifmod

    index = cifmod.read_index(source)
    raw = source.read_bytes()
    first = struct.unpack("<I", raw[4:8])[0]
    n0 = struct.unpack("<H", raw[first:first + 2])[0]
    ifd0_end = first + 2 + 12 * n0 + 4
    # IFD 0 and everything it points to lie before the first object's directory: copy that prefix whole
    head = bytearray(raw[:_first_object_ifd(raw, first)])
    struct.pack_into("<I", head, ifd0_end - 4, 0)
    out = bytearray(head)
    prev_next = ifd0_end - 4
    chosen = range(len(index)) if objects is None else objects
    number = 0
    for _ in range(repeat):
        for i in chosen:
            for kind, strips in ((2, index.image_strips[i]), (3, index.mask_strips[i])):
                data = b"".join(raw[o:o + c] for o, c in zip(*strips))
                w = int(index.width[i]) * len(index.channels)
                tags = [(256, 4, w), (257, 4, int(index.height[i])), (259, 3, 30817 if kind == 2 else 30818),
                        (273, 4, 0), (279, 4, len(data)), (33002, 3, kind), (33003, 4, number)]
                ifd_at = len(out)
                struct.pack_into("<I", out, prev_next, ifd_at)
                data_at = ifd_at + 2 + 12 * len(tags) + 4
                entries = bytearray(struct.pack("<H", len(tags)))
                for tag, typ, value in tags:
                    value = data_at if tag == 273 else value
                    entries += struct.pack("<HHI", tag, typ, 1) + (struct.pack("<HH", value, 0) if typ == 3 else
                                                                  struct.pack("<I", value))
                entries += b"\0\0\0\0"
                out += entries + data
                prev_next = ifd_at + 2 + 12 * len(tags)
            number += 1
    for e in range(n0):  # the object count (tag 33018) of IFD 0
        at = first + 2 + 12 * e
        if struct.unpack("<H", out[at:at + 2])[0] == 33018:
            struct.pack_into("<I", out, at + 8, number)
    Path(path).write_bytes(bytes(out))
    return Path(path)


def _first_object_ifd(raw: bytes, first: int) -> int:
    import struct

    n0 = struct.unpack("<H", raw[first:first + 2])[0]
    return struct.unpack("<I", raw[first + 2 + 12 * n0:first + 6 + 12 * n0])[0]


# --------------------------------------------------------------------------------------------------------------
# A one-node SLURM cluster (Debian's slurm-wlm and munge, installed by .ci/run), started once per session
# --------------------------------------------------------------------------------------------------------------
SLURM_CONF = """\
ClusterName=scipzarr-test
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={dir}/munge.socket
CredType=cred/munge
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmdParameters=config_overrides
MpiDefault=none
KillWait=5
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName={host} CPUs=8 RealMemory=16000 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_slurm(d: Path) -> tuple[dict | None, list[Path], str]:
    """Start a one-node SLURM cluster with its config, munge key and state in folder ``d``.

    Returns the environment for its clients (``SLURM_CONF``; None when it
    cannot start), the daemons' pid files (for :func:`stop_slurm`) and why
    not, in one line.
    """
    import shutil
    import socket
    import subprocess
    import time

    missing = [b for b in ("munged", "slurmctld", "slurmd", "sbatch", "sinfo", "squeue", "scancel")
               if shutil.which(b) is None]
    if missing:
        return None, [], f"no SLURM here ({', '.join(missing)} missing; .ci/run installs slurm-wlm and munge)"
    if os.geteuid() != 0:
        return None, [], "the test SLURM cluster runs its daemons as root"
    d = Path(d)
    for sub in ("state", "spool"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    key = d / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    host = socket.gethostname().split(".")[0]
    conf = d / "slurm.conf"
    conf.write_text(SLURM_CONF.format(host=host, dir=d, ctld_port=_free_port(), d_port=_free_port()))
    env = dict(os.environ, SLURM_CONF=str(conf))
    pids = []
    subprocess.run(["munged", "--force", f"--key-file={key}", f"--socket={d}/munge.socket",
                    f"--pid-file={d}/munged.pid", f"--log-file={d}/munged.log", f"--seed-file={d}/munge.seed"],
                   check=True, env=env, timeout=30)
    pids.append(d / "munged.pid")
    for daemon in ("slurmctld", "slurmd"):
        subprocess.run([daemon, "-f", str(conf)], check=True, env=env, timeout=30)
        pids.append(d / f"{daemon}.pid")
    deadline = time.time() + 60
    while time.time() < deadline:
        r = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, env=env)
        if r.stdout.strip() == "idle":
            return env, pids, ""
        time.sleep(0.5)
    stop_slurm(pids)
    return None, [], f"the test SLURM node did not become idle (sinfo: {r.stdout.strip() or r.stderr.strip()})"


def stop_slurm(pids: list[Path]) -> None:
    """Stop the daemons of :func:`start_slurm` by their process ids."""
    import signal

    for pid_file in reversed(pids):
        try:
            os.kill(int(Path(pid_file).read_text().split()[0]), signal.SIGTERM)
        except (OSError, ValueError):
            pass


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A running one-node SLURM cluster (:func:`start_slurm`) for the session: the environment (``SLURM_CONF``)
    for subprocesses that use it; skips in one line where it cannot start."""
    env, pids, why = start_slurm(tmp_path_factory.mktemp("slurm"))
    if env is None:
        pytest.skip(why)
    try:
        yield env
    finally:
        stop_slurm(pids)


def wait_for_job(env: dict, job: str, timeout: float = 600) -> str:
    """Wait until a SLURM job (or every task of an array job) has left the queue; its final state."""
    import subprocess
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        r = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True, env=env)
        if not r.stdout.strip():
            break
        time.sleep(1)
    else:
        raise TimeoutError(f"SLURM job {job} still queued after {timeout} s")
    r = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True, env=env)
    states = [w.split("=", 1)[1] for w in r.stdout.split() if w.startswith("JobState=")]
    return states[-1] if states else "GONE"


# --------------------------------------------------------------------------------------------------------------
# shared helpers of the test modules
# --------------------------------------------------------------------------------------------------------------
def run(*args, cwd=None):
    env = dict(os.environ, COLUMNS="120")
    return subprocess.run([sys.executable, "-m", "scipzarr", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def assert_one_line_error(r, *needles):
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("scipzarr: error: ")
    for n in needles:
        assert n in lines[0], lines[0]
    assert "Traceback" not in r.stderr


def nuclei(shape=(1100, 1000), n=70, seed=0, touching=3):
    """A FOV of two channels: bright disks (DNA) with a ramp in channel 2; some pairs touch; noise on top."""
    from skimage.draw import disk

    rng = np.random.default_rng(seed)
    img = np.zeros((2, *shape), np.uint16)
    for _ in range(n):
        r, c, rad = rng.uniform(15, shape[0] - 15), rng.uniform(15, shape[1] - 15), rng.uniform(6, 14)
        rr, cc = disk((r, c), rad, shape=shape)
        img[0, rr, cc] = 900 + rng.integers(0, 100)
        img[1, rr, cc] = (200 + 0.5 * cc).astype(np.uint16)
    for k in range(touching):  # two overlapping disks: one blob, two nuclei
        r, c = 100 + 300 * k, 255.0 + 256 * k  # across the 256-pixel chunk borders
        for dc in (-9, 9):
            rr, cc = disk((r, c + dc), 10, shape=shape)
            img[0, rr, cc] = 950
    img += rng.integers(0, 50, img.shape).astype(np.uint16)
    return img

