"""Batch scripts that run a scipzarr command in MPI mode (SLURM or PBS)."""

from __future__ import annotations

import shlex

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
