"""``chia kv``: read and adjust a live KV store actor (chia-placement, the ``[kv]`` extra).

Stable. Owns the ``kv`` command group; each sub-command runs
:func:`chia.base.chia_kv_store.main`, the store's own operator CLI, so the
semantics and exit codes are chia-placement's (1 store error, 3 no cluster).
"""

from __future__ import annotations

import click

from chia.cli._cluster import F, address_option
from chia.cli._extras import KV, needs

__all__ = ["kv"]


@click.group()
def kv() -> None:
    """Read and adjust a live KV store actor (needs chia-placement).

    VALUEs are parsed as Python or JSON literals (4, 0.5, true, None,
    [1, 2]) and kept as text otherwise. Exit codes: 1 store error (no such
    store, key not set, version conflict), 3 no reachable cluster.
    """


def _kv_options(fn: F) -> F:
    fn = click.option("--namespace", required=True, help="Ray namespace of the KV store actor.")(fn)
    fn = click.option("--name", required=True, help="Name of the KV store actor.")(fn)
    return address_option(fn)


def _kv_main(ctx: click.Context, name: str, namespace: str, address: str | None, action: list[str]) -> None:
    """Run the KV store's own operator CLI (one implementation of the semantics and exit codes)."""
    with needs(KV, "chia kv"):
        from chia.base.chia_kv_store import main as kv_store_main
    argv = ["--name", name, "--namespace", namespace, *action]
    if address:
        argv += ["--address", address]
    ctx.exit(kv_store_main(argv))


@kv.command("get")
@click.argument("key")
@_kv_options
@click.pass_context
def kv_get(ctx: click.Context, key: str, name: str, namespace: str, address: str | None) -> None:
    """Print KEY's value (exit 1 when KEY is not set)."""
    _kv_main(ctx, name, namespace, address, ["--get", key])


@kv.command("set")
@click.argument("key")
@click.argument("value")
@click.option(
    "--if-version",
    type=click.IntRange(min=0),
    metavar="N",
    help="Apply only if KEY is still at version N (0: only if unset); see `chia kv list`.",
)
@_kv_options
@click.pass_context
def kv_set(
    ctx: click.Context, key: str, value: str, if_version: int | None, name: str, namespace: str, address: str | None
) -> None:
    """Set KEY to VALUE and print `KEY = VALUE  (version N)`."""
    action = ["--set", key, value, "--show-version"]
    action += ["--if-version", str(if_version)] if if_version is not None else []
    _kv_main(ctx, name, namespace, address, action)


@kv.command("list")
@_kv_options
@click.pass_context
def kv_list(ctx: click.Context, name: str, namespace: str, address: str | None) -> None:
    """Print every key with its value and version."""
    _kv_main(ctx, name, namespace, address, ["--list"])


@kv.command("delete")
@click.argument("key")
@_kv_options
@click.pass_context
def kv_delete(ctx: click.Context, key: str, name: str, namespace: str, address: str | None) -> None:
    """Remove KEY (exit 1 when it was not set)."""
    _kv_main(ctx, name, namespace, address, ["--delete", key])
