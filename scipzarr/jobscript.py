"""Batch scripts that run a scipzarr command in MPI mode (SLURM or PBS)."""

from __future__ import annotations

import shlex
from pathlib import Path

from .errors import ScipzarrError


def jobscript(system: str, command: list[str], *, ranks: int = 4, nodes: int = 1, walltime: str = "01:00:00",
              queue: str | None = None, account: str | None = None, job_name: str = "scipzarr",
              modules: list[str] = (), venv: str | None = None) -> str:
    """A ready batch script: ``mpiexec -n RANKS scipzarr COMMAND ... --scheduler mpi``.

    Rank 0 runs the dask scheduler, rank 1 the client (the command itself), the
    other ranks are workers, one thread each.
    """
    if command and command[0] == "--":
        command = command[1:]
    if not command or command[0] not in ("process", "convert"):
        raise ScipzarrError("jobscript: give the command after '--', e.g. -- process cells.zarr -o cells.h5ad")
    if ranks < 3:
        raise ScipzarrError(f"jobscript: --ranks {ranks}: MPI mode needs at least 3 ranks (scheduler, client, worker)")
    if "--scheduler" in command:
        raise ScipzarrError("jobscript: leave --scheduler out of the command; the script sets --scheduler mpi")
    per_node = -(-ranks // nodes)
    lines = ["#!/bin/bash"]
    if system == "slurm":
        lines += [f"#SBATCH --job-name={job_name}", f"#SBATCH --nodes={nodes}", f"#SBATCH --ntasks={ranks}",
                  "#SBATCH --cpus-per-task=1", f"#SBATCH --time={walltime}"]
        if queue:
            lines.append(f"#SBATCH --partition={queue}")
        if account:
            lines.append(f"#SBATCH --account={account}")
        lines.append("#SBATCH --output=%x-%j.out")
    elif system == "pbs":
        lines += [f"#PBS -N {job_name}", f"#PBS -l nodes={nodes}:ppn={per_node}", f"#PBS -l walltime={walltime}",
                  "#PBS -j oe"]
        if queue:
            lines.append(f"#PBS -q {queue}")
        if account:
            lines.append(f"#PBS -A {account}")
    else:
        raise ScipzarrError(f"jobscript: --system {system}: choose slurm or pbs")
    lines += ["", "set -euo pipefail"]
    if system == "pbs":
        lines.append('cd "$PBS_O_WORKDIR"')
    for mod in modules:
        lines.append(f"module load {shlex.quote(mod)}")
    if venv:
        lines.append(f"source {shlex.quote(venv)}/bin/activate")
    lines += [
        "# rank 0: dask scheduler, rank 1: this command (client), ranks 2..: workers (1 thread each)",
        f"mpiexec -n {ranks} scipzarr {' '.join(shlex.quote(a) for a in command)} --scheduler mpi",
        "",
    ]
    return "\n".join(lines)


def _process_parts(command: list[str]) -> tuple[list[str], str]:
    """The process command without its output, and the output (``-o``/``--output``)."""
    if command and command[0] == "--":
        command = command[1:]
    if not command or command[0] != "process":
        raise ScipzarrError("jobscript --array: give a process command after '--', e.g. -- process cells.zarr "
                            "-o cells.h5ad")
    for bad in ("--scheduler", "--shard", "--resume"):
        if bad in command:
            raise ScipzarrError(f"jobscript --array: leave {bad} out of the command; each task runs "
                                "--shard I/N --resume on its own threads")
    rest, output = [], None
    it = iter(command)
    for a in it:
        if a in ("-o", "--output"):
            output = next(it, None)
        elif a.startswith("--output="):
            output = a.split("=", 1)[1]
        else:
            rest.append(a)
    if not output:
        raise ScipzarrError("jobscript --array: the process command needs -o TABLE.h5ad (the merged table)")
    return rest, output


def array_jobscript(system: str, command: list[str], *, tasks: int, cpus: int = 2, walltime: str = "01:00:00",
                    queue: str | None = None, account: str | None = None, job_name: str = "scipzarr",
                    modules: list[str] = (), venv: str | None = None, requeue: bool = False) -> str:
    """A driver script (run it with ``bash``) that submits a SLURM job array of ``tasks`` shards of a process
    command, each on ``cpus`` threads of one node without MPI (``--shard $SLURM_ARRAY_TASK_ID/N --resume``),
    and a merge job that runs once every task has succeeded (``afterok``). With ``requeue``, a task signalled
    two minutes before its time limit requeues itself and continues where it stopped."""
    if system != "slurm":
        raise ScipzarrError(f"jobscript --array: --system {system}: job arrays are written for slurm")
    if tasks < 1:
        raise ScipzarrError(f"jobscript --array {tasks}: give at least 1 task")
    rest, output = _process_parts(command)
    out = Path(output)
    part = f"{out.parent / out.stem}.part-${{SLURM_ARRAY_TASK_ID}}-of-{tasks}{out.suffix}"
    parts = " ".join(shlex.quote(f"{out.parent / out.stem}.part-{i}-of-{tasks}{out.suffix}") for i in range(tasks))
    head = [f"#SBATCH --job-name={job_name}", "#SBATCH --nodes=1", "#SBATCH --ntasks=1",
            f"#SBATCH --cpus-per-task={cpus}", f"#SBATCH --time={walltime}", "#SBATCH --output=%x-%A_%a.out"]
    if queue:
        head.append(f"#SBATCH --partition={queue}")
    if account:
        head.append(f"#SBATCH --account={account}")
    setup = ["set -euo pipefail"] + [f"module load {shlex.quote(m)}" for m in modules]
    if venv:
        setup.append(f"source {shlex.quote(venv)}/bin/activate")
    task = ["#!/bin/bash", *head, f"#SBATCH --array=0-{tasks - 1}"]
    if requeue:
        task += ["#SBATCH --requeue", "#SBATCH --open-mode=append", "#SBATCH --signal=B:USR1@120"]
    task += setup
    run = (f"scipzarr {' '.join(shlex.quote(a) for a in rest)} -o {part} --shard ${{SLURM_ARRAY_TASK_ID}}/{tasks} "
           "--resume --scheduler threads -q")
    if requeue:
        task += ["# at the time limit: requeue this task; --resume continues from its finished chunks",
                 'trap \'kill -INT "$pid"; wait "$pid"; scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"\' USR1',
                 f"{run} &", "pid=$!", 'wait "$pid"']
    else:
        task.append(run)
    merge = ["#!/bin/bash", *[h.replace("%x-%A_%a", "%x-merge-%j") for h in head if "cpus-per-task" not in h],
             "#SBATCH --cpus-per-task=1", *setup,
             f"scipzarr merge {parts} -o {shlex.quote(output)} --overwrite -q", f"rm -f {parts}"]
    body = "\n".join(task)
    merge_body = "\n".join(merge)
    return "\n".join([
        "#!/bin/bash",
        f"# {tasks} shards of: scipzarr {' '.join(shlex.quote(a) for a in rest)} -o {shlex.quote(output)}",
        "# submit with: bash THIS_FILE   (prints the array and merge job ids)",
        "set -euo pipefail",
        "array=$(sbatch --parsable <<'SCIPZARR_ARRAY'",
        body,
        "SCIPZARR_ARRAY",
        ")",
        "merge=$(sbatch --parsable --dependency=afterok:${array%%;*} <<'SCIPZARR_MERGE'",
        merge_body,
        "SCIPZARR_MERGE",
        ")",
        'echo "array job ${array%%;*}, merge job ${merge%%;*}"',
        "",
    ])
