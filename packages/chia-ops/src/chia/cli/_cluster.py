"""What every ``chia`` command shares: reaching Ray, the ``--address`` option, progress lines.

Owns connecting to (or reusing) a Ray connection with clear errors, finding
named actors across namespaces, Ray's state helpers with their types, and how
commands report progress (``chia: ...`` on stderr).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
import ray

F = TypeVar("F", bound=Callable[..., Any])

RAY_TIMEOUT_S = 60.0
"""How long a command waits for one answer from an actor."""

_CONNECT_TIMEOUT_S = 3.0

# Ray's state helpers are untyped; these aliases give them their documented types.
ray_nodes: Callable[[], list[dict[str, Any]]] = ray.nodes
cluster_resources: Callable[[], dict[str, float]] = ray.cluster_resources
available_resources: Callable[[], dict[str, float]] = ray.available_resources


def progress(message: str) -> None:
    """Report what a command is doing, on stderr (stdout carries its result)."""
    click.echo(f"chia: {message}", err=True)


def address_option(fn: F) -> F:
    """The ``--address HOST:PORT`` option of every command that needs a cluster."""
    decorated: F = click.option(
        "--address",
        envvar="RAY_ADDRESS",
        default=None,
        metavar="HOST:PORT",
        help="Ray cluster to connect to (default: $RAY_ADDRESS, else the latest cluster started on this machine).",
    )(fn)
    return decorated


def check_reachable(address: str) -> None:
    """Fail fast on a host:port nothing listens on (ray.init would retry for a long time)."""
    if "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise click.BadParameter(f"{address!r} is not HOST:PORT", param_hint="--address")
    try:
        socket.create_connection((host, int(port)), timeout=_CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise click.ClickException(
            f"no Ray cluster at {address} ({exc.strerror or exc}); start one with `ray start --head` "
            "or pass --address HOST:PORT of a running cluster"
        ) from exc


@contextmanager
def connected(address: str | None) -> Iterator[None]:
    """Use this process's Ray connection, or connect to ``address`` (default: auto) for the block."""
    if ray.is_initialized():
        yield
        return
    target = address or "auto"
    check_reachable(target)
    try:
        ray.init(address=target, logging_level=logging.WARNING, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise click.ClickException(
            f"no Ray cluster at {target!r}: {exc}\nStart one with `ray start --head` or pass --address HOST:PORT."
        ) from exc
    try:
        yield
    finally:
        ray.shutdown()


def find_named_actor(name: str, namespace: str | None, what: str) -> Any:
    """The actor ``name`` in ``namespace`` or, with no namespace, the only one of that name in any namespace."""
    if namespace is not None:
        try:
            return ray.get_actor(name, namespace=namespace)
        except ValueError:
            raise click.ClickException(f"no {what} actor {name!r} in Ray namespace {namespace!r}") from None
    matches = [entry["namespace"] for entry in ray.util.list_named_actors(all_namespaces=True) if entry["name"] == name]
    if not matches:
        raise click.ClickException(f"no {what} actor {name!r} is running in any Ray namespace")
    if len(matches) > 1:
        raise click.ClickException(
            f"{len(matches)} {what} actors named {name!r} run (namespaces {sorted(matches)}); choose one with --namespace"
        )
    return ray.get_actor(name, namespace=matches[0])
