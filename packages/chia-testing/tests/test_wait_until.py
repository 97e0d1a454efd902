"""wait_until: returns the predicate's first truthy value, fails naming what was awaited."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from chia_testing import wait_until


def test_returns_the_first_truthy_value_once_the_predicate_holds() -> None:
    calls = itertools.count()
    assert wait_until(lambda: next(calls) >= 3 and "ready", interval=0.001) == "ready"
    assert next(calls) == 4  # polled exactly until it held


def test_a_predicate_that_never_holds_fails_naming_the_message_and_the_last_value() -> None:
    with pytest.raises(
        AssertionError, match=r"timed out after 0.05 s waiting for the cache to fill \(last value: \[\]\)"
    ):
        wait_until(list, timeout=0.05, interval=0.01, message="the cache to fill")


def test_without_a_message_the_failure_names_the_predicate() -> None:
    def store_is_up() -> bool:
        return False

    with pytest.raises(AssertionError, match=r"waiting for .*store_is_up"):
        wait_until(store_is_up, timeout=0.02, interval=0.01)


def test_an_exception_of_the_predicate_propagates_at_once() -> None:
    def broken() -> bool:
        raise KeyError("no such actor")

    with pytest.raises(KeyError, match="no such actor"):
        wait_until(broken, timeout=60)


@pytest.mark.parametrize(("keyword", "value"), [("timeout", 0), ("timeout", -1.0), ("interval", 0.0)])
def test_a_non_positive_timeout_or_interval_is_rejected(keyword: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"{keyword} must be a positive number of seconds, got {value!r}"):
        options: dict[str, Any] = {keyword: value}
        wait_until(lambda: True, **options)
