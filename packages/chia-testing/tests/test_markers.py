"""The markers the plugin registers: every package's tests use them under ``--strict-markers``."""

from __future__ import annotations

import pytest

MARKED = """
import pytest

@pytest.mark.ray_compat
def test_on_every_ray(): pass

@pytest.mark.ray_compat
@pytest.mark.slow
def test_on_every_ray_but_long(): pass

@pytest.mark.slow
def test_long(): pass

def test_newest_only(): pass
"""


def test_the_oldest_cells_selection_runs_the_ray_compat_tests_that_are_not_slow(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_marked=MARKED)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--strict-markers", "-m", "ray_compat and not slow", "-v"
    )
    result.assert_outcomes(passed=1, deselected=3)
    result.stdout.fnmatch_lines(["*::test_on_every_ray PASSED*"])


def test_the_markers_are_listed_with_what_they_mean(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.slow: long fault*", "@pytest.mark.ray_compat: drives a Ray surface*"])


def test_an_unknown_marker_is_still_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_typo="import pytest\n\n@pytest.mark.ray_compta\ndef test_x(): pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--strict-markers")
    result.stdout.fnmatch_lines(["*'ray_compta' not found in `markers` configuration option*"])
    assert result.ret == pytest.ExitCode.INTERRUPTED
