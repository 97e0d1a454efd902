"""The profile survives its driver: a profiled loop killed with SIGKILL leaves a log that loads.

The driver is a real subprocess running a sequential loop of profiled calls
against the session cluster; the test waits until the log on disk holds its
first finished calls while it still runs (the collector writes each batch as
it arrives, nothing waits for ``stop_collector``), kills it with SIGKILL in
the middle of its loop and loads the log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from chia.trace import export
from chia_testing import wait_until
from chia_testing.ray_start import StartedCluster

DRIVER = textwrap.dedent(
    """
    import sys
    import time

    import ray

    from chia.base.ChiaFunction import ChiaFunction, get
    from chia.trace import profiler

    ray.init(address=sys.argv[1])
    profiler.start_collector(log_dir=sys.argv[2])


    @ChiaFunction(num_cpus=1)
    def step(index):
        return index


    index = 0
    while True:
        get(step.chia_remote(index, _chia_tag=f"c{index}"))
        print(index, time.time(), flush=True)
        index += 1
    """
)


def finished_tags(log_dir: Path) -> set[str]:
    """Tags of the calls the log on disk holds as submitted and finished."""
    if not list(log_dir.glob("chia-profile-*.jsonl")):
        return set()
    data = export.load_profile(log_dir)
    return {call.tag for call in data.calls if call.tag and call.submitted is not None and call.status == "ok"}


def test_a_killed_drivers_profile_holds_the_calls_it_finished(cluster: StartedCluster, tmp_path: Path) -> None:
    script = tmp_path / "loop.py"
    script.write_text(DRIVER)
    log_dir = tmp_path / "profile"
    driver = subprocess.Popen(
        [sys.executable, str(script), cluster.address, str(log_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        first = {f"c{index}" for index in range(20)}
        wait_until(
            lambda: first <= finished_tags(log_dir),
            timeout=180,
            message="the running driver's first 20 calls in its profile on disk",
        )
        assert driver.poll() is None, "the driver loops until killed"
        killed_at = time.time()
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=60)
    finally:
        if driver.poll() is None:
            os.kill(driver.pid, signal.SIGKILL)
            driver.wait(timeout=60)
    assert driver.stdout is not None
    printed = [line.split() for line in driver.stdout.read().splitlines()]
    assert len(printed) >= 20
    data = export.load_profile(log_dir)  # whatever instant the kill hit, the log loads
    tags = {call.tag for call in data.calls if call.status == "ok"}
    assert first <= tags
    # Every call the driver saw finish more than a second before the kill is in the profile.
    settled = {f"c{index}" for index, finished_at in printed if float(finished_at) < killed_at - 1.0}
    assert settled <= tags, sorted(settled - tags)
    assert all(call.function.endswith("step") for call in data.calls)
    assert len(data.sessions) == 1
