"""A simulation that hangs until `chia cancel` kills it: `chia run hang.py MARKER`."""

import pathlib
import subprocess
import sys

from chia.base.ChiaFunction import ChiaFunction, get


@ChiaFunction(num_cpus=1)
def hang(marker: str) -> None:
    """Starts a simulator that never ends; chia tracks its process tree."""
    simulator = subprocess.Popen(["sleep", "3600"])
    pathlib.Path(marker).write_text(str(simulator.pid))
    simulator.wait()
    raise RuntimeError(f"the simulator was killed (exit code {simulator.returncode})")


get(hang.chia_remote(sys.argv[1]))
