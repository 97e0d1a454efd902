"""Helpers of the loop, imported on the workers: `chia run --working-dir .` ships this directory to them."""

from __future__ import annotations

import subprocess
import sys


def run_simulator(cores: int, cache_kb: int) -> int:
    """A stand-in simulator: a subprocess that scores one configuration."""
    program = f"print({cores} * 1000 // (4 + 256 // {cache_kb}))"
    return int(subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True).stdout)
