"""``dispatch_hooks.known_functions()``: the ChiaFunctions this process has defined (no Ray needed)."""

from __future__ import annotations

from chia.base import dispatch_hooks
from chia.base.ChiaFunction import ChiaFunction


def _by_qualname() -> dict[str, dispatch_hooks.KnownFunction]:
    return {known.qualname: known for known in dispatch_hooks.known_functions()}


def test_a_decorated_function_is_known_by_name_qualname_and_signature() -> None:
    @ChiaFunction(num_cpus=1)
    def simulate(config: dict[str, int], cores: int = 4) -> int:
        return cores

    known = _by_qualname()[f"{__name__}.{simulate.__qualname__}"]
    assert known.name == "simulate"
    assert known.signature is not None
    assert list(known.signature.parameters) == ["config", "cores"]
    assert known.signature.parameters["cores"].default == 4


def test_a_redefinition_replaces_the_earlier_entry_and_moves_last() -> None:
    def define(width: int) -> None:
        if width == 1:

            @ChiaFunction()
            def build(a: int) -> int:
                return a

        else:

            @ChiaFunction()
            def build(a: int, b: int) -> int:  # same qualname: define.<locals>.build
                return a + b

    define(1)
    define(2)
    entries = [known for known in dispatch_hooks.known_functions() if known.qualname.endswith("define.<locals>.build")]
    assert len(entries) == 1
    assert entries[0].signature is not None and list(entries[0].signature.parameters) == ["a", "b"]
    assert dispatch_hooks.known_functions()[-1] is entries[0]
