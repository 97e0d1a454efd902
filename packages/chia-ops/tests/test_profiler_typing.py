"""Public signatures of chia-ops, pinned for mypy (``typing.assert_type``); runs as a plain test too."""

from __future__ import annotations

from pathlib import Path
from typing import Any, assert_type

from chia.trace import cli, export, profiler


def test_public_signatures_are_pinned(tmp_path: Path) -> None:
    if False:  # type-checked only: these need a cluster
        assert_type(profiler.start_collector(), Any)
        assert_type(profiler.start_collector(log_dir=tmp_path, namespace="ns"), Any)
        assert_type(profiler.stop_collector(), str | None)
        assert_type(profiler.get_collector("ns"), Any)
    assert_type(profiler.get_profiler(), profiler.Profiler | None)
    assert_type(profiler.log_event("name", anything=object()), None)
    assert_type(profiler.COLLECTOR_NAME, str)
    assert_type(cli.main(["--help"]), int)
    log = tmp_path / "chia-profile-x.jsonl"
    log.write_text('{"kind": "session", "session": "x", "ts": 0, "head_node": "h"}\n')
    data = assert_type(export.load_profile(log), export.ProfileData)
    assert_type(data.calls, tuple[export.CallRecord, ...])
    assert_type(export.summarize(data), list[export.FunctionSummary])
    assert_type(export.format_summary([]), str)
    assert_type(export.chrome_trace(data), dict[str, Any])
    assert_type(export.render(data, "json"), dict[str, Any])
    assert_type(export.FORMATS, tuple[str, str])
