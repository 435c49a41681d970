"""A FOV larger than the memory it may use is processed to completion (bounded memory per task)."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_fov_larger_than_the_memory_limit(tmp_path):
    # 512 MiB of uint16 pixels (2 GiB as the float64 image the segmentation works on) with 400 MiB allowed
    side, extra = 16384, 400
    r = subprocess.run([sys.executable, "-m", "tests.large_fov_run", str(tmp_path), str(side), str(extra)],
                       cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["objects"] == res["expected"] == 2048  # every nucleus of every chunk found
