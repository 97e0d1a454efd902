"""Pins the public signatures of chia.base.colocated (checked by mypy --strict; also run by pytest)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, assert_type

from ray import ObjectRef
from ray.util.placement_group import PlacementGroup

from chia.base.ChiaFunction import ChiaFunction, ChiaOptions
from chia.base.colocated import ColocatedNode, PinnedChiaFn


@ChiaFunction(num_cpus=0.5)
def double(value: int, /) -> int:
    return value * 2


class DoublerNode(ColocatedNode):
    _MEMBER_FNS = ("double",)
    double = double


def test_pinned_chia_fn_keeps_the_function_signature(cluster: Any) -> None:
    pinned = PinnedChiaFn(double, {})
    assert_type(pinned, PinnedChiaFn[[int], int])
    assert_type(pinned(2), int)
    assert_type(pinned.chia_remote(2), ObjectRef[int])
    assert_type(pinned.chia_remote_blocking(2), int)
    assert_type(pinned.options(max_retries=1), ChiaOptions[[int], int])
    assert_type(pinned.chia_options, Mapping[str, Any])
    assert pinned.options(max_retries=1).chia_remote_blocking(3) == 6


def test_node_properties_have_their_documented_types(cluster: Any) -> None:
    with DoublerNode(require_colocated=False) as node:
        assert_type(node.placement_group, PlacementGroup | None)
        assert_type(node.owns_placement_group, bool)
        assert_type(node.task_options, dict[str, Any])
        assert_type(ColocatedNode._MEMBER_FNS, tuple[str, ...])
        assert_type(ColocatedNode._DEFAULT_BUNDLE, Mapping[str, float])
        assert node.double.chia_remote_blocking(4) == 8
        assert_type(node.close(), None)
