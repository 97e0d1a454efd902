"""Pinned public signatures of chia.base.dispatch_proxy (mypy checks the assert_type calls)."""

from __future__ import annotations

from typing import assert_type

from chia.base.dispatch_proxy import TUNNELED_LABEL, TUNNELED_RESOURCE, DispatchProxy, should_proxy


def test_proxy_signatures_are_pinned() -> None:
    assert_type(should_proxy(), bool)
    assert_type(should_proxy({"num_cpus": 1}), bool)
    assert should_proxy() is False  # a driver (this process) never relays
    assert (TUNNELED_LABEL, TUNNELED_RESOURCE) == ("chia/tunneled", "chia_tunneled")
    assert callable(DispatchProxy.relay) and callable(DispatchProxy.stats)
