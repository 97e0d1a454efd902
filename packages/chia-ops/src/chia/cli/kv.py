"""``chia kv``: read and adjust a live KV store actor (chia-placement, the ``[kv]`` extra).

Stable. Owns the ``kv`` command group, built on chia-placement's public API
(:func:`chia.base.chia_kv_store.attach_kv_store` and the store's methods),
with the exit codes of every ``chia`` command (:class:`chia.cli._exit.ExitCode`):
5 no such store or key, 6 a ``--if-version`` conflict. ``set`` and
``delete`` change the store: on a cluster found rather than named (no
--address, no RAY_ADDRESS) they ask first, unless --yes.
``python -m chia.base.chia_kv_store`` remains the store's own argparse
program; ``chia kv`` is the documented way.
"""

from __future__ import annotations

from typing import Any

import click
import ray

from chia.cli._cluster import RAY_TIMEOUT_S, F, address_option, connected, yes_option
from chia.cli._exit import CliError, ExitCode
from chia.cli._extras import KV, needs

__all__ = ["kv"]


@click.group()
def kv() -> None:
    """Read and adjust a live KV store actor (needs chia-placement).

    VALUEs are parsed as Python or JSON literals (4, 0.5, true, None,
    [1, 2]) and kept as text otherwise. Exit codes: 3 no cluster, 4
    authentication, 5 no such store or key, 6 version conflict.
    """


def _kv_options(fn: F) -> F:
    fn = click.option(
        "--namespace", help="Ray namespace of the KV store actor (default: the only store of that name in any)."
    )(fn)
    fn = click.option("--name", help="Name of the KV store actor (default: the only KV store on the cluster).")(fn)
    return address_option(fn)


def _store(name: str | None, namespace: str | None) -> tuple[Any, str]:
    """The store's handle and how to name it in messages (NOT_FOUND / USAGE when it cannot be chosen).

    Without ``--name``/``--namespace`` the store is the only KV store on the
    cluster (or the only one of that name, or in that namespace).
    """
    with needs(KV, "chia kv"):
        from chia.base.chia_kv_store import attach_kv_store, find_kv_stores
    if name is None or namespace is None:
        stores = find_kv_stores(name, namespace)
        given = " ".join(f"--{flag} {value}" for flag, value in (("name", name), ("namespace", namespace)) if value)
        if not stores:
            raise CliError(
                f"no KV store on the cluster{' matches ' + given if given else ''}; a pipeline creates one "
                "with get_or_create_kv_store(name, namespace, ...)",
                ExitCode.NOT_FOUND,
            )
        if len(stores) > 1:
            listed = ", ".join(f"{store} (namespace {space})" for store, space in stores)
            raise CliError(
                f"{len(stores)} KV stores match: {listed}; choose one with --name/--namespace", ExitCode.USAGE
            )
        name, namespace = stores[0]
    try:
        handle = attach_kv_store(name, namespace)
    except LookupError as exc:
        raise CliError(str(exc), ExitCode.NOT_FOUND) from None
    return handle, f"KV store {name!r} (namespace {namespace!r})"


def _call(where: str, ref: Any) -> Any:
    try:
        return ray.get(ref, timeout=RAY_TIMEOUT_S)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if isinstance(exc.cause, BaseException) else exc
        raise CliError(f"{where} refused the request: {type(cause).__name__}: {cause}") from None
    except ray.exceptions.RayActorError as exc:
        raise CliError(f"{where} is not reachable (its actor died): {exc}", ExitCode.NOT_FOUND) from None


def _entry(key: str, value: Any, version: int) -> str:
    return f"{key} = {value!r}  (version {version})"


def _check_extra() -> None:
    """Before connecting: the extra is installed (else the one line naming it)."""
    with needs(KV, "chia kv"):
        from chia.base.chia_kv_store import attach_kv_store  # noqa: F401 -- only checks that it imports


@kv.command("get")
@click.argument("key")
@_kv_options
def kv_get(key: str, name: str | None, namespace: str | None, address: str | None) -> None:
    """Print KEY's value (exit 5 when KEY is not set)."""
    _check_extra()
    with connected(address):
        store, where = _store(name, namespace)
        value, version = _call(where, store.get_versioned.remote(key))
    if version == 0:
        raise CliError(f"key {key!r} is not set in {where}", ExitCode.NOT_FOUND)
    click.echo(repr(value))


@kv.command("set")
@click.argument("key")
@click.argument("value")
@click.option(
    "--if-version",
    type=click.IntRange(min=0),
    metavar="N",
    help="Apply only if KEY is still at version N (0: only if unset); see `chia kv list`. Exit 6 if not.",
)
@yes_option
@_kv_options
def kv_set(
    key: str,
    value: str,
    if_version: int | None,
    yes: bool,
    name: str | None,
    namespace: str | None,
    address: str | None,
) -> None:
    """Set KEY to VALUE and print its new version."""
    with needs(KV, "chia kv"):
        from chia.base.chia_kv_store import parse_kv_value
    parsed = parse_kv_value(value)
    with connected(
        address, f"set {key!r} in KV store {name!r}" if name else f"set {key!r} in the cluster's KV store", yes
    ):
        store, where = _store(name, namespace)
        if if_version is None:
            version = _call(where, store.set_versioned.remote(key, parsed))
        else:
            applied, version = _call(where, store.cas.remote(key, if_version, parsed))
            if not applied:
                current, _ = _call(where, store.get_versioned.remote(key))
                state = "is not set" if version == 0 else f"is at version {version} (value {current!r})"
                raise CliError(
                    f"{key!r} in {where} {state}, not at version {if_version}: it changed since you read it; "
                    "re-read it with `chia kv get`/`chia kv list` and retry",
                    ExitCode.CONFLICT,
                )
    click.echo(_entry(key, parsed, version))


@kv.command("list")
@_kv_options
def kv_list(name: str | None, namespace: str | None, address: str | None) -> None:
    """Print every key with its value and version."""
    _check_extra()
    with connected(address):
        store, where = _store(name, namespace)
        entries = _call(where, store.entries.remote())
    if not entries:
        click.echo(f"{where} is empty", err=True)
    for key in sorted(entries):
        click.echo(_entry(key, *entries[key]))


@kv.command("delete")
@click.argument("key")
@yes_option
@_kv_options
def kv_delete(key: str, yes: bool, name: str | None, namespace: str | None, address: str | None) -> None:
    """Remove KEY (exit 5 when it was not set)."""
    _check_extra()
    with connected(
        address,
        f"delete {key!r} from KV store {name!r}" if name else f"delete {key!r} from the cluster's KV store",
        yes,
    ):
        store, where = _store(name, namespace)
        removed = _call(where, store.delete.remote(key))
    if not removed:
        raise CliError(f"key {key!r} is not set in {where}", ExitCode.NOT_FOUND)
    click.echo(f"deleted {key}")
