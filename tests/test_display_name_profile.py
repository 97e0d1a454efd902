"""``_chia_display_name`` names the call in the profile and its summary (issue 13, point 1).

The name travels through the dispatch seam's public data
(``DispatchCall.display_name`` / ``CallInfo.display_name``), which chia-ops'
profiler records in place of the function's qualified name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chia.base.ChiaFunction import ChiaFunction, get
from chia.trace import profiler
from chia.trace.export import load_profile, summarize

pytestmark = pytest.mark.usefixtures("cluster")


@ChiaFunction(num_cpus=0)
def simulate(cores: int) -> int:
    return cores * 2


def test_display_name_names_the_call_in_profile_and_summary(tmp_path: Path, cluster: Any) -> None:
    profiler.start_collector(log_dir=str(tmp_path / "profile"))
    try:
        assert get(simulate.chia_remote(4, _chia_display_name="simulate c4", _chia_tag="c4")) == 8  # type: ignore[call-arg]
        assert get(simulate.chia_remote(8)) == 16
        assert simulate(2, _chia_display_name="local c2") == 4  # type: ignore[call-arg]
    finally:
        log_path = profiler.stop_collector()
    assert log_path is not None
    data = load_profile(log_path)
    named = [call for call in data.calls if call.function == "simulate c4"]
    assert len(named) == 1 and named[0].tag == "c4" and named[0].started is not None and named[0].submitted is not None
    assert [call.function for call in data.calls if call.function.endswith(".simulate")] != []
    functions = {row.function for row in summarize(data)}
    assert {"simulate c4", "local c2"} <= functions
