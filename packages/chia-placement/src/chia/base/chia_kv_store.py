r"""Chia KV Store: a detached, node-pinned Ray actor holding live key/value knobs.

Owns the :class:`ChiaKVStore` actor, the driver helpers
(:func:`get_or_create_kv_store`, :func:`attach_kv_store`, :func:`query_kv`)
and the operator CLI (:func:`main`, ``python -m chia.base.chia_kv_store``).

Use it whenever a pipeline needs a small, operator-adjustable piece of shared
state (concurrency knobs, feature flags, rate limits) without rebuilding the
detached-actor scaffolding each time. Because the actor is
``lifetime="detached"``, its values outlive the pipeline that created it; any
Ray client on the cluster finds it by name and namespace::

    from chia.base.chia_kv_store import get_or_create_kv_store, query_kv

    handle = get_or_create_kv_store(
        name="my_pipeline_knobs", namespace="my_pipeline",
        num_parallel=2, stage="warmup",
    )
    n = query_kv(handle, "num_parallel", default=2)

An operator adjusts values live from any machine with Ray access::

    python -m chia.base.chia_kv_store \\
        --name my_pipeline_knobs --namespace my_pipeline --set num_parallel 4
    python -m chia.base.chia_kv_store \\
        --name my_pipeline_knobs --namespace my_pipeline --get num_parallel

Every write gives the key a new version (a store-wide increasing number), so
two operators can update a knob without silently overwriting each other:
``cas`` (and ``--set ... --if-version N``) applies only if the key is still
at the version the operator read. With ``persist_path`` the store also
survives the death of its actor or of the head node.
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import os
import socket
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import ray
from ray.actor import ActorHandle
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from chia.base._placement.kv_file import KVSnapshot, load_snapshot, write_snapshot

__all__ = [
    "ChiaKVStore",
    "attach_kv_store",
    "find_kv_stores",
    "get_or_create_kv_store",
    "main",
    "parse_kv_value",
    "query_kv",
]

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_STORE_ERROR = 1  # no such store, key not set, version conflict, the actor failed
EXIT_USAGE = 2
EXIT_NO_CLUSTER = 3

_CONNECT_PROBE_TIMEOUT_S = 5.0


class _Missing:
    """Marks an absent key on the wire; pickles by reference so identity survives the round trip."""

    __slots__ = ()

    def __reduce__(self) -> str:
        return "_MISSING"

    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


@ray.remote
class ChiaKVStore:
    """The store actor class: string keys, any picklable values, a version per key. Stable.

    A Ray actor class (decorated with ``@ray.remote``), as in chialoops:
    :func:`get_or_create_kv_store` creates it for you, detached and pinned to
    the calling node, and a user may also create one directly with
    ``ChiaKVStore.options(name=..., namespace=..., lifetime="detached").remote(**defaults)``
    (defaults as keywords; names starting with ``_chia_`` are reserved). Call its methods through the handle, e.g.
    ``ray.get(handle.set.remote("k", 4))``. Methods run one at a time, so a
    ``cas`` is atomic with respect to every other call.

    * ``get(key, default=None)``: the value, or ``default`` if unset.
    * ``set(key, value) -> value``: store ``value``; returns it, as in chialoops.
    * ``get_versioned(key) -> (value, version)``: ``(None, 0)`` if unset.
    * ``cas(key, expected_version, value) -> (applied, version)``: store only if
      the key is at ``expected_version`` (0: only if unset); returns whether it
      was applied and the key's version now (the new one, or the conflicting
      one: 0 when the key is not set).
    * ``delete(key) -> bool``: remove; False if it was not set.
    * ``items() -> dict``: every key and value.
    * ``entries() -> dict``: every key with its ``(value, version)``.

    Versions come from one counter for the whole store, so a key deleted and
    set again never reuses a version a reader may hold. With a persist path
    every write replaces the snapshot atomically before it takes effect; a
    value that cannot be pickled is refused (``TypeError``/``PicklingError``)
    and the store is left unchanged.
    """

    if TYPE_CHECKING:
        # What @ray.remote adds to the class; mypy ignores a class decorator's return type.
        options: ClassVar[Callable[..., Any]]
        remote: ClassVar[Callable[..., Any]]

    def __init__(
        self,
        _chia_initial: Mapping[str, Any] | None = None,
        _chia_persist_path: str | None = None,
        **defaults: Any,
    ) -> None:
        # Knobs are keywords, as in chialoops; what get_or_create_kv_store adds goes under
        # reserved _chia_ names (Ray binds actor arguments by name, so positional-only would not do).
        defaults = {**(_chia_initial or {}), **defaults}
        persist_path = _chia_persist_path
        self._persist_path = persist_path
        snapshot = load_snapshot(persist_path) if persist_path is not None else None
        self._entries: dict[str, tuple[Any, int]] = dict(snapshot.entries) if snapshot else {}
        self._revision = snapshot.revision if snapshot else 0
        unset = [key for key in defaults if key not in self._entries]
        if unset:
            entries = dict(self._entries)
            revision = self._revision
            for key in unset:
                revision += 1
                entries[key] = (defaults[key], revision)
            self._commit(entries, revision)
        logger.info(
            "KV store ready with %d key(s)%s",
            len(self._entries),
            f", persisted to {persist_path}" if persist_path else "",
        )

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when it was never set."""
        entry = self._entries.get(key)
        return default if entry is None else entry[0]

    def _query(self, key: str) -> Any:
        # query_kv's read: only the key travels, as in a plain actor call (an
        # extra marker argument costs ~10% latency); the marker comes back only
        # for an unset key.
        entry = self._entries.get(key)
        return _MISSING if entry is None else entry[0]

    def get_versioned(self, key: str) -> tuple[Any, int]:
        """``(value, version)`` of ``key``; ``(None, 0)`` when it was never set."""
        return self._entries.get(key, (None, 0))

    def set(self, key: str, value: Any) -> Any:
        """Store ``value`` under ``key``; returns the value stored (its version: ``get_versioned``)."""
        self.set_versioned(key, value)
        return value

    def cas(self, key: str, expected_version: int, value: Any) -> tuple[bool, int]:
        """Compare-and-set: store only if ``key`` is at ``expected_version``; returns ``(stored, version)``."""
        _check_key(key)
        if isinstance(expected_version, bool) or not isinstance(expected_version, int):
            raise TypeError(f"cas expected_version for key {key!r} must be an int, got {expected_version!r}")
        if expected_version < 0:
            raise ValueError(f"cas expected_version for key {key!r} must be >= 0 (0: unset), got {expected_version}")
        current = self._entries.get(key, (None, 0))[1]
        if current != expected_version:
            return False, current
        return True, self.set_versioned(key, value)

    def delete(self, key: str) -> bool:
        """Remove ``key``; returns whether it was set."""
        if key not in self._entries:
            return False
        self._change(key, None, self._revision + 1)
        return True

    def items(self) -> dict[str, Any]:
        """Every key and its value."""
        return {key: value for key, (value, _) in self._entries.items()}

    def entries(self) -> dict[str, tuple[Any, int]]:
        """Every key with its ``(value, version)``."""
        return dict(self._entries)

    def set_versioned(self, key: str, value: Any) -> int:
        """Store ``value`` under ``key`` with a new version; returns that version (``set`` returns the value)."""
        _check_key(key)
        revision = self._revision + 1
        self._change(key, (value, revision), revision)
        return revision

    def _change(self, key: str, entry: tuple[Any, int] | None, revision: int) -> None:
        """Set ``key`` to ``entry`` (None: remove it) at ``revision``.

        In memory only, in place: a write costs the same under 100 keys or
        100,000. With a persist path, on a copy that becomes the store once
        its snapshot is on disk.
        """
        if self._persist_path is None:
            if entry is None:
                del self._entries[key]
            else:
                self._entries[key] = entry
            self._revision = revision
            return
        entries = dict(self._entries)
        if entry is None:
            del entries[key]
        else:
            entries[key] = entry
        self._commit(entries, revision)

    def _commit(self, entries: dict[str, tuple[Any, int]], revision: int) -> None:
        # Persist first: a write that cannot reach the disk must not take effect.
        if self._persist_path is not None:
            write_snapshot(self._persist_path, KVSnapshot(entries, revision))
        self._entries = entries
        self._revision = revision


def _check_key(key: object) -> None:
    if type(key) is not str:
        raise TypeError(f"KV store keys must be str, got {key!r} ({type(key).__name__})")


def _check_store_name(name: object, namespace: object) -> None:
    for label, value in (("name", name), ("namespace", namespace)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"KV store {label} must be a non-empty str, got {value!r}")


def _require_ray(action: str) -> None:
    if not ray.is_initialized():
        raise RuntimeError(f"{action} needs a connected Ray: call ray.init() first")


def get_or_create_kv_store(
    name: str,
    namespace: str,
    *,
    persist_path: str | os.PathLike[str] | None = None,
    **defaults: Any,
) -> ActorHandle[ChiaKVStore]:
    """Attach to the detached store actor if it exists, otherwise create it pinned to the current node. Stable.

    The actor is scheduled with ``NodeAffinitySchedulingStrategy`` bound to
    ``ray.get_runtime_context().get_node_id()`` at call time: called from a
    pipeline driver on the head node, that pins the store to the head. Two
    drivers racing to create the same store get the same actor (Ray resolves
    the name atomically); only the winner's defaults apply.

    Args:
        name: Ray actor name.
        namespace: Ray actor namespace.
        persist_path: opt-in persistence. A file on the creating node where
            every write is saved atomically; a store created again after its
            actor (or the head) died starts from the values saved there, with
            ``defaults`` filling only keys the file does not have. Like the
            defaults, it applies only when the actor is created. Ray also
            restarts a store whose process dies, from this file when given
            and from its defaults otherwise.
        **defaults: initial values used only when creating a fresh actor;
            ignored when attaching to an existing one.

    Returns:
        The Ray actor handle of the :class:`ChiaKVStore`.

    Raises:
        ValueError: ``persist_path`` exists but is not a readable snapshot
            (the message names the file; nothing is created).
        RuntimeError: Ray is not connected, or the actor failed to start.
    """
    _check_store_name(name, namespace)
    _require_ray("get_or_create_kv_store")
    try:
        existing: ActorHandle[ChiaKVStore] = ray.get_actor(name, namespace=namespace)
        return existing
    except ValueError:
        pass
    path = os.path.abspath(os.fspath(persist_path)) if persist_path is not None else None
    if path is not None:
        # The actor runs on this node and reads the same file: refuse a bad one here, with a plain error.
        load_snapshot(path)
    node_id = ray.get_runtime_context().get_node_id()
    handle: Any = ChiaKVStore.options(
        name=name,
        namespace=namespace,
        lifetime="detached",
        get_if_exists=True,
        num_cpus=0,
        max_restarts=-1,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node_id, soft=False),
    ).remote(dict(defaults), path)
    try:
        ray.get(handle.__ray_ready__.remote())
    except ray.exceptions.RayActorError as exc:
        raise RuntimeError(f"KV store {name!r} in namespace {namespace!r} failed to start: {exc}") from exc
    logger.debug("KV store %r in namespace %r is on node %s", name, namespace, node_id)
    created: ActorHandle[ChiaKVStore] = handle
    return created


def attach_kv_store(name: str, namespace: str) -> ActorHandle[ChiaKVStore]:
    """Attach to an existing store actor without ever creating one. Stable.

    Raises:
        LookupError: no actor of that name lives in that namespace (the
            message names both).
        RuntimeError: Ray is not connected.
    """
    _check_store_name(name, namespace)
    _require_ray("attach_kv_store")
    try:
        handle: ActorHandle[ChiaKVStore] = ray.get_actor(name, namespace=namespace)
    except ValueError:
        raise LookupError(
            f"no KV store actor named {name!r} in Ray namespace {namespace!r}; "
            "a pipeline creates it with get_or_create_kv_store(name, namespace, ...)"
        ) from None
    return handle


def query_kv(handle: ActorHandle[ChiaKVStore] | None, key: str, default: Any = None, timeout: float = 60.0) -> Any:
    """Read ``key`` from the store, never raising and never blocking longer than ``timeout``. Stable.

    Intended for hot loops that must not wedge on a broken actor: a missing
    key, a ``None`` handle, a dead or hung actor, a serialization error or any
    other failure returns ``default``. Something that is not a handle at all
    (e.g. the store's name) is a mistake in the code, not a failure of the
    store, so it raises ``TypeError`` instead of hiding behind the default.

    Args:
        handle: the handle returned by :func:`get_or_create_kv_store` or
            :func:`attach_kv_store`. May be ``None``: treated as unreachable.
        key: key to read.
        default: returned on any error, timeout, or missing key.
        timeout: hard bound in seconds on the wait for the actor.

    Returns:
        The stored value, or ``default``.

    Raises:
        TypeError: ``handle`` is neither an actor handle nor ``None``.
    """
    if handle is None:
        return default
    if not isinstance(handle, ActorHandle):
        raise TypeError(
            f"query_kv needs the store's actor handle, got {handle!r} ({type(handle).__name__}); "
            + (
                f"to read the store named {handle!r}, pass attach_kv_store({handle!r}, namespace) "
                "or the handle get_or_create_kv_store returned"
                if isinstance(handle, str)
                else "pass the handle get_or_create_kv_store or attach_kv_store returned"
            )
        )
    actor: Any = handle
    try:
        value = ray.get(actor._query.remote(key), timeout=timeout)
    except Exception as exc:
        logger.debug("query_kv(%r) falls back to its default: %s: %s", key, type(exc).__name__, exc)
        return default
    return default if value is _MISSING else value


# --- operator CLI ----------------------------------------------------------------------


def parse_kv_value(text: str) -> Any:
    """An operator's value: a Python or JSON literal (int, float, bool, None, list, dict...), else the text. Stable.

    What ``chia kv set`` and ``python -m chia.base.chia_kv_store set`` store
    for VALUE: ``"4"`` -> ``4``, ``"true"`` -> ``True``, ``"[1, 2]"`` -> ``[1, 2]``,
    ``"fast"`` -> ``"fast"``. Never evaluates code.
    """
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        pass
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chia.base.chia_kv_store",
        description=(
            "Read and adjust the knobs of a running chia pipeline's KV store. The documented way is "
            "`chia kv get|set|list|delete` (chia-ops with the [kv] extra), which runs this same program; "
            "this module form is kept for scripts written for chialoops."
        ),
        epilog=(
            "VALUE is parsed as a Python or JSON literal (4, 0.5, true, None, [1, 2], {'a': 1}) and kept as "
            "a string otherwise. Without --name/--namespace the store is looked up on the cluster: the only KV "
            "store there (or the only one with that name). Exit codes: 0 ok, 1 store error (no such store, key "
            "not set, version conflict), 2 usage error, 3 no reachable Ray cluster."
        ),
    )
    parser.add_argument("--name", help="the store's Ray actor name (default: the only KV store on the cluster)")
    parser.add_argument(
        "--namespace", help="the store's Ray namespace (default: the namespace of the only store with that name)"
    )
    parser.add_argument(
        "--address",
        help="Ray cluster address (default: $RAY_ADDRESS, else the cluster started on this machine)",
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--set", nargs=2, metavar=("KEY", "VALUE"), help="set KEY to VALUE; prints KEY = VALUE")
    action.add_argument("--get", metavar="KEY", help="print the value of KEY")
    action.add_argument("--delete", metavar="KEY", help="remove KEY")
    action.add_argument("--list", action="store_true", help="print every key with its value and version")
    parser.add_argument(
        "--if-version",
        type=int,
        metavar="N",
        help="with --set: apply only if KEY is still at version N (0: only if KEY is unset); see --list",
    )
    parser.add_argument(
        "--show-version",
        action="store_true",
        help="with --set: also print KEY's new version (always printed with --if-version)",
    )
    return parser


def find_kv_stores(name: str | None = None, namespace: str | None = None) -> list[tuple[str, str]]:
    """``(name, namespace)`` of every live KV store actor on the connected cluster, sorted. Stable.

    ``name`` and ``namespace`` narrow the search when given. Other named
    actors are never listed. Needs a Ray connection.
    """
    found = []
    for actor in ray.util.list_named_actors(all_namespaces=True):
        actor_name, actor_namespace = actor["name"], actor["namespace"]
        if (name is not None and actor_name != name) or (namespace is not None and actor_namespace != namespace):
            continue
        try:
            handle = ray.get_actor(actor_name, namespace=actor_namespace)
        except ValueError:  # gone since it was listed
            continue
        # A KV store handle knows these methods; any other actor's handle raises AttributeError.
        if all(hasattr(handle, method) for method in ("get_versioned", "cas", "entries")):
            found.append((actor_name, actor_namespace))
    return sorted(found)


def _resolve_store(name: str | None, namespace: str | None) -> tuple[str, str] | tuple[int, str]:
    """The store to use, or ``(exit code, error message)`` when the defaults do not pick exactly one."""
    if name is not None and namespace is not None:
        return name, namespace
    stores = find_kv_stores(name, namespace)
    if len(stores) == 1:
        return stores[0]
    wanted = " ".join(f"--{flag} {value}" for flag, value in (("name", name), ("namespace", namespace)) if value)
    if not stores:
        return EXIT_STORE_ERROR, (
            f"no KV store on the cluster{' matches ' + wanted if wanted else ''}; a pipeline creates one with "
            "get_or_create_kv_store(name, namespace, ...)"
        )
    choices = "; ".join(f"--name {store_name} --namespace {store_namespace}" for store_name, store_namespace in stores)
    return (
        EXIT_USAGE,
        f"{len(stores)} KV stores on the cluster{' match ' + wanted if wanted else ''}: pass one of {choices}",
    )


def _unreachable(address: str) -> str | None:
    """Why nothing listens at ``address`` (Ray itself would retry for minutes), or None."""
    host, separator, port = address.split("://", 1)[-1].rpartition(":")
    if address == "auto" or not separator or not port.isdigit():
        return None
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=_CONNECT_PROBE_TIMEOUT_S).close()
    except OSError as exc:
        return f"nothing accepts connections at {address} ({exc})"
    return None


def _connect(address: str | None, namespace: str | None) -> str | None:
    """Connect this process to the cluster; an error message if that is impossible."""
    target = address or os.environ.get("RAY_ADDRESS") or "auto"
    problem = _unreachable(target)
    if problem is not None:
        return f"no Ray cluster at {target}: {problem}"
    try:
        ray.init(address=target, namespace=namespace, logging_level=logging.ERROR, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        return f"cannot connect to a Ray cluster at {target}: {exc}"
    return None


def _format_entry(key: str, value: Any, version: int | None = None) -> str:
    return f"{key} = {value!r}" + ("" if version is None else f"  (version {version})")


def _run_set(store: Any, where: str, key: str, value: Any, if_version: int | None, show_version: bool) -> int:
    if if_version is None:
        if show_version:
            version: int | None = ray.get(store.set_versioned.remote(key, value))
        else:
            value, version = ray.get(store.set.remote(key, value)), None
        print(_format_entry(key, value, version))
        return EXIT_OK
    applied, version = ray.get(store.cas.remote(key, if_version, value))
    if applied:
        print(_format_entry(key, value, version))
        return EXIT_OK
    if version == 0:
        print(
            f"error: key {key!r} is not set in {where}, so it is not at version {if_version}; "
            "create it with --if-version 0 (only while it is still unset) or set it without --if-version",
            file=sys.stderr,
        )
    else:
        current, _ = ray.get(store.get_versioned.remote(key))
        print(
            f"error: {key!r} in {where} is at version {version} (value {current!r}), not "
            f"{if_version}: someone changed it; re-read it (chia kv list) and retry with its new version",
            file=sys.stderr,
        )
    return EXIT_STORE_ERROR


def _run(args: argparse.Namespace, name: str, namespace: str) -> int:
    where = f"KV store {name!r} (namespace {namespace!r})"
    try:
        store: Any = attach_kv_store(name, namespace)
    except LookupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_STORE_ERROR
    try:
        if args.get is not None:
            value, version = ray.get(store.get_versioned.remote(args.get))
            if version == 0:
                print(f"error: key {args.get!r} is not set in {where}", file=sys.stderr)
                return EXIT_STORE_ERROR
            print(value)
        elif args.set is not None:
            key, text = args.set
            return _run_set(store, where, key, parse_kv_value(text), args.if_version, args.show_version)
        elif args.delete is not None:
            if not ray.get(store.delete.remote(args.delete)):
                print(f"error: key {args.delete!r} is not set in {where}", file=sys.stderr)
                return EXIT_STORE_ERROR
            print(f"deleted {args.delete}")
        else:
            entries = ray.get(store.entries.remote())
            if not entries:
                print(f"{where} is empty", file=sys.stderr)
            for key in sorted(entries):
                print(_format_entry(key, *entries[key]))
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if isinstance(exc.cause, BaseException) else exc
        print(f"error: {where} refused the request: {type(cause).__name__}: {cause}", file=sys.stderr)
        return EXIT_STORE_ERROR
    except ray.exceptions.RayActorError as exc:
        print(f"error: {where} is not reachable (its actor died): {exc}", file=sys.stderr)
        return EXIT_STORE_ERROR
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """The operator CLI; returns the exit code. Stable.

    ::

        python -m chia.base.chia_kv_store [--name N] [--namespace NS] --set KEY VALUE [--if-version V]
        python -m chia.base.chia_kv_store [--name N] [--namespace NS] --get KEY
        python -m chia.base.chia_kv_store [--name N] [--namespace NS] --delete KEY
        python -m chia.base.chia_kv_store [--name N] [--namespace NS] --list [--address ADDR]

    The documented way is ``chia kv get|set|list|delete`` (chia-ops), which
    runs this function; the module form is kept for chialoops scripts.
    Connects to ``--address``, else ``$RAY_ADDRESS``, else the cluster
    started on this machine; a process already connected to Ray (e.g. the
    ``chia`` CLI) reuses its connection. Without ``--name``/``--namespace``
    the store is looked up on the cluster (the only KV store, or the only
    one with that name; several is a usage error listing them). As in
    chialoops, ``--get`` prints the bare value and ``--set`` prints ``key =
    value`` (the value's repr); ``--set`` adds ``(version N)`` with
    ``--if-version`` or ``--show-version``, and ``--list`` prints ``key =
    value  (version N)`` per key. Errors go to stderr with exit code 1 (no
    such store, key not set, version conflict), 2 (usage) or 3 (no reachable
    cluster).
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        if args.if_version is not None and args.set is None:
            parser.error("--if-version only applies to --set")
        if args.show_version and args.set is None:
            parser.error("--show-version only applies to --set")
        for flag, value in (("--name", args.name), ("--namespace", args.namespace)):
            if value is not None and not value:
                parser.error(f"{flag} must not be empty")
    except SystemExit as exit_request:  # --help, or a usage error argparse already reported
        code = exit_request.code
        return EXIT_OK if code is None else code if isinstance(code, int) else EXIT_USAGE
    connected_here = not ray.is_initialized()
    if connected_here:
        problem = _connect(args.address, args.namespace)
        if problem is not None:
            print(f"error: {problem}", file=sys.stderr)
            return EXIT_NO_CLUSTER
    try:
        resolved = _resolve_store(args.name, args.namespace)
        if isinstance(resolved[0], int):
            print(f"error: {resolved[1]}", file=sys.stderr)
            return resolved[0]
        return _run(args, str(resolved[0]), resolved[1])
    finally:
        if connected_here:
            ray.shutdown()


if __name__ == "__main__":
    # Run through the importable module, so the actor methods' arguments
    # pickle by reference to chia.base.chia_kv_store, not to __main__.
    from chia.base.chia_kv_store import main as _main

    sys.exit(_main())
