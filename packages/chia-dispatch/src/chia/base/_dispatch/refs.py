"""``ObjectRefCallback``: an ObjectRef that carries what ``get`` runs on its value.

Below everything that accepts one (``get``, ``chia_cancel``, ``chia_wait``'s
``TrackedRef``); users import it from :mod:`chia.base.ChiaFunction`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ray import ObjectRef


class ObjectRefCallback:
    """An ObjectRef paired with a callback that :func:`get` runs on resolution. Stable.

    Lets a producer attach a post-resolution hook to the ref it hands back:
    ``get(orc)`` fetches ``orc.ref``, applies ``orc.callback`` and returns its
    result. ``.ref`` exposes the underlying ObjectRef for ``ray.wait`` /
    ``chia_wait``.
    """

    __slots__ = ("callback", "ref")

    def __init__(self, ref: ObjectRef[Any], callback: Callable[[Any], Any]) -> None:
        if not callable(callback):
            raise TypeError(f"ObjectRefCallback callback must be callable, got {callback!r}")
        self.ref = ref
        self.callback = callback

    def __repr__(self) -> str:
        return f"ObjectRefCallback({self.ref!r}, {self.callback!r})"
