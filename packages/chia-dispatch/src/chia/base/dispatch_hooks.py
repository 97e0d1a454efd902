"""The dispatch seam: how other distributions add behaviour to chia dispatch.

Stable. chia-dispatch knows nothing about bypass, caching or profiling; those
distributions plug in here, and with nothing registered dispatch costs nothing
extra. Three kinds of extension exist:

* **Dispatch hooks** (caller side) see every ``chia_remote`` call as a
  :class:`DispatchCall` before Ray does. A hook may annotate the call (add
  worker context, add a resolve callback) and either return ``None`` to let the
  next hook (and finally the real dispatch) proceed, or return an
  ``ObjectRef`` to *replace* the dispatch (that is how bypass works: it submits
  a provider with the function's own options via :meth:`DispatchCall.submit`).
  :meth:`DispatchCall.on_submitted` observes the ref Ray returned, and
  :attr:`DispatchCall.outcome` says whether the function runs (:data:`REAL`)
  or a hook replayed the call (:data:`REPLAYED`, or :data:`CACHE_HIT` when
  the hook served it from a cache).
* **Resolve callbacks** (caller side), attached with
  :meth:`DispatchCall.on_resolve`, run once when :func:`chia.base.ChiaFunction.get`
  resolves the call's ref, with the value (cache write-through).
* **Call wrappers** run *around the function body*: on the worker for remote
  calls (they travel with the dispatch, so they must pickle by reference:
  module-level functions or picklable objects) and in-process for local calls.
  Nested ``chia_remote`` calls made inside a wrapped call carry the same
  wrappers on to their workers. Wrappers are exported with the function
  (once per wrapper set), so a call ships only its tag and hook context, and
  only when it has them: keep context values plain (str, int, float, bool).

:func:`known_functions` lists the ``@ChiaFunction`` functions this process has
defined so far (name, ``module.qualname``, signature), so a configuration
can be checked against the functions it names; recording them costs only at
decoration.

Example: count the remote calls of every function and log each value::

    from collections import Counter
    from chia.base import dispatch_hooks

    counts: Counter[str] = Counter()

    def count(call: dispatch_hooks.DispatchCall) -> None:
        counts[call.name] += 1
        call.on_resolve(lambda value: print(call.name, "->", value))
        return None          # do not replace the dispatch

    remove = dispatch_hooks.add_dispatch_hook(count)
    ...
    remove()
"""

from __future__ import annotations

# The seam lives in chia-dispatch's private core, where ChiaFunction reads its
# state on every dispatch; this module is its public face.
from chia.base._dispatch.seam import (
    CACHE_HIT,
    REAL,
    REPLAYED,
    CallInfo,
    CallWrapper,
    DispatchCall,
    DispatchHook,
    KnownFunction,
    add_call_wrapper,
    add_dispatch_hook,
    current_call,
    known_functions,
)

__all__ = [
    "CACHE_HIT",
    "REAL",
    "REPLAYED",
    "CallInfo",
    "CallWrapper",
    "DispatchCall",
    "DispatchHook",
    "KnownFunction",
    "add_call_wrapper",
    "add_dispatch_hook",
    "current_call",
    "known_functions",
]
