"""What every ``chia`` command shares: reaching Ray, the ``--address`` option, progress lines.

Owns which cluster a command attaches to and how: an explicit address
(``--address`` or ``$RAY_ADDRESS``), else the latest cluster started on this
machine, reported on stderr with its session; a command that changes
anything asks before acting on a cluster it only found (``--yes`` skips the
question). Before Ray connects, a probe of the cluster's GCS answers within
seconds whether it is there and accepts this process's token (Ray's token
authentication: ``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN``,
``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``), so a missing or wrong token
is one line with :attr:`ExitCode.AUTH`, not a minute of Ray's retry logs.
Also: finding named actors across namespaces, Ray's state helpers with their
types, and how commands report progress (``chia: ...`` on stderr). Ray's own
messages to a driver (its warnings and errors, which Ray prints on stdout) go
to stderr, so stdout carries only a command's result or a script's output.
"""

from __future__ import annotations

import importlib
import logging
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import click
import ray

from chia.cli._exit import CliError, ExitCode

F = TypeVar("F", bound=Callable[..., Any])

RAY_TIMEOUT_S = 60.0
"""How long a command waits for one answer from an actor."""

PROBE_TIMEOUT_S = 3.0
"""How long the probe waits for the cluster's GCS to answer."""

AUTH_HELP = (
    "set RAY_AUTH_MODE=token and give this process the cluster's token: RAY_AUTH_TOKEN=..., "
    "RAY_AUTH_TOKEN_PATH=FILE, or the file ~/.ray/auth_token (`ray get-auth-token` on the head node prints it)"
)

# Ray's state helpers are untyped; these aliases give them their documented types.
ray_nodes: Callable[[], list[dict[str, Any]]] = ray.nodes
cluster_resources: Callable[[], dict[str, float]] = ray.cluster_resources
available_resources: Callable[[], dict[str, float]] = ray.available_resources


_RAY_OWN_SOURCES = frozenset({"raylet", "autoscaler"})
"""The ``pid`` Ray gives the messages of its own (not of a task) it prints on a driver."""

_routed_to_stderr = False


def route_ray_messages_to_stderr() -> None:
    """Send the messages Ray itself prints on a driver to stderr, from the next ``ray.init`` on. Idempotent.

    Ray prints its warnings to the driver (a detached actor in an anonymous
    namespace, a worker killed, memory pressure) on ``sys.stdout``, where they
    mix with a script's output and a command's ``--json``. What tasks print
    stays where the task printed it (stdout or stderr).
    """
    global _routed_to_stderr
    worker_module: Any = ray._private.worker  # private, looked up: both the error listener and log_to_driver use it
    original = getattr(worker_module, "print_to_stdstream", None)
    if _routed_to_stderr or original is None:
        return

    def print_to_stdstream(data: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        if data.get("pid") in _RAY_OWN_SOURCES and not data.get("is_err"):
            data = {**data, "is_err": True}
        original(data, *args, **kwargs)

    worker_module.print_to_stdstream = print_to_stdstream
    _routed_to_stderr = True


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


def yes_option(fn: F) -> F:
    """``--yes``: act without asking (on a cluster found rather than named, or before a kill)."""
    decorated: F = click.option(
        "--yes", "-y", is_flag=True, help="Do not ask for confirmation (for scripts); see --address."
    )(fn)
    return decorated


@dataclass(frozen=True, slots=True)
class Target:
    """The cluster a command is about to attach to."""

    address: str
    detected: bool
    """True when neither --address nor $RAY_ADDRESS named it (found on this machine)."""


def resolve(address: str | None) -> Target:
    """The explicit address, else the latest cluster started on this machine; NO_CLUSTER if none."""
    if address:
        check_syntax(address)
        return Target(address, detected=False)
    from ray._private.utils import read_ray_address  # the file `ray start` writes for ray.init("auto")

    found = read_ray_address()
    if not found:
        raise CliError(
            "no Ray cluster was started on this machine and no --address or RAY_ADDRESS names one; "
            "start one with `ray start --head` or pass --address HOST:PORT",
            ExitCode.NO_CLUSTER,
        )
    _auto_enable_token_auth()
    return Target(found, detected=True)


def _auto_enable_token_auth() -> None:
    """Ray's convention for a cluster found on this machine: use the token file when RAY_AUTH_MODE is unset."""
    try:  # private and version-dependent in Ray: looked up, not imported by name, so every supported Ray type-checks
        setup: Any = importlib.import_module("ray._private.authentication.authentication_token_setup")
    except ImportError:  # a Ray without token authentication
        return
    enable = getattr(setup, "maybe_enable_token_auth_if_token_available", None)
    if enable is not None:  # older Rays with token authentication lack the helper
        enable(warn_if_disabled=False)


def check_syntax(address: str) -> None:
    """USAGE for an address that is not HOST:PORT (``ray://`` client addresses pass)."""
    if "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{address!r} is not HOST:PORT (e.g. 127.0.0.1:6379)", param_hint="--address")


def _auth_metadata() -> tuple[tuple[str, str], ...]:
    """The authorization header Ray itself would send (none unless RAY_AUTH_MODE=token); AUTH if no token."""
    raylet: Any = importlib.import_module("ray._raylet")  # untyped: Ray's Cython core
    if not hasattr(raylet, "AuthenticationTokenLoader"):  # a Ray without token authentication
        return ()
    if raylet.get_authentication_mode() != raylet.AuthenticationMode.TOKEN:
        return ()
    loader = raylet.AuthenticationTokenLoader.instance()
    no_token = CliError(f"RAY_AUTH_MODE=token but no Ray authentication token was found: {AUTH_HELP}", ExitCode.AUTH)
    try:
        if not loader.has_token():
            raise no_token
        return tuple(loader.get_token_for_http_header().items())
    except ray.exceptions.AuthenticationError:  # Ray's loader raises it when token mode has no token
        raise no_token from None


def probe(address: str) -> None:
    """Fail within seconds, with the right exit code, when ``address`` has no cluster or refuses our token."""
    if "://" in address:
        return  # a Ray Client address: ray.init reports its own errors
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise CliError(
            f"no Ray cluster at {address} ({exc.strerror or exc}); start one with `ray start --head` "
            "or pass --address HOST:PORT of a running cluster",
            ExitCode.NO_CLUSTER,
        ) from exc
    metadata = _auth_metadata()
    try:  # untyped modules Ray ships (gRPC and its generated GCS stubs)
        grpc: Any = importlib.import_module("grpc")
        messages: Any = importlib.import_module("ray.core.generated.gcs_service_pb2")
        stubs: Any = importlib.import_module("ray.core.generated.gcs_service_pb2_grpc")
    except ImportError:  # no probe possible: ray.init reports
        return
    with grpc.insecure_channel(address) as channel:
        stub = stubs.NodeInfoGcsServiceStub(channel)
        try:
            stub.GetClusterId(messages.GetClusterIdRequest(), timeout=PROBE_TIMEOUT_S, metadata=metadata)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            if code == grpc.StatusCode.UNAUTHENTICATED:
                given = "a wrong token" if metadata else "no token (RAY_AUTH_MODE is not token)"
                raise CliError(
                    f"authentication failed: the Ray cluster at {address} requires a token and this process "
                    f"sent {given}; {AUTH_HELP}",
                    ExitCode.AUTH,
                ) from None
            raise CliError(
                f"no Ray cluster answers at {address} ({code.name if code else exc}); "
                "is it a Ray GCS address (the --port of `ray start --head`)?",
                ExitCode.NO_CLUSTER,
            ) from None


def session_name() -> str:
    """The Ray session this process is connected to (``session_2026-...``), or ``?``."""
    node = getattr(ray._private.worker, "_global_node", None)
    return str(getattr(node, "session_name", "?"))


def init_quietly(address: str, log_to_driver: bool = False, runtime_env: dict[str, Any] | None = None) -> None:
    """``ray.init`` to an existing cluster without Ray's own log lines on the user's terminal.

    The C++ core's lines come from failed connections, which :func:`probe`
    has ruled out (setting RAY_BACKEND_LOG_LEVEL would print a line of its own).

    ``log_to_driver`` forwards what tasks print (``chia run`` wants it, the
    steering commands do not). Ray's own messages go to stderr
    (:func:`route_ray_messages_to_stderr`). ``runtime_env`` is the job's
    (``chia run --working-dir``/``--py-module``).
    """
    route_ray_messages_to_stderr()
    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=log_to_driver, runtime_env=runtime_env)
    except ray.exceptions.AuthenticationError as exc:  # e.g. RAY_AUTH_MODE=token and no token anywhere
        raise CliError(f"authentication failed for the Ray cluster at {address}: {AUTH_HELP}", ExitCode.AUTH) from exc


def confirm_on_found_cluster(target: Target, action: str, yes: bool) -> None:
    """Ask before ``action`` on a cluster that was found, not named (``--yes`` accepts it)."""
    if yes or not target.detected:
        return
    try:
        accepted = click.confirm(f"{action} on the cluster at {target.address} (session {session_name()})?", err=True)
    except click.Abort:
        accepted = False
    if not accepted:
        raise CliError(
            f"did not {action}: the cluster at {target.address} was found on this machine, not named; "
            "pass --address HOST:PORT or set RAY_ADDRESS (or --yes to accept the cluster found)",
            ExitCode.ERROR,
        )


@contextmanager
def connected(address: str | None, changes: str | None = None, yes: bool = False) -> Iterator[Target]:
    """Use this process's Ray connection, or attach to ``address`` (default: found) for the block.

    ``changes`` names what the command is about to do when it changes
    anything; on a cluster that was found rather than named, the user is
    asked first (unless ``yes``).
    """
    if ray.is_initialized():
        yield Target(str(ray.get_runtime_context().gcs_address), detected=False)
        return
    target = resolve(address)
    probe(target.address)
    try:
        init_quietly(target.address)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise CliError(f"cannot attach to the Ray cluster at {target.address}: {exc}", ExitCode.NO_CLUSTER) from exc
    try:
        if target.detected:
            progress(
                f"attached to the cluster at {target.address} (session {session_name()}), the latest started "
                "on this machine; pass --address or set RAY_ADDRESS to choose"
            )
        if changes is not None:
            confirm_on_found_cluster(target, changes, yes)
        yield target
    finally:
        ray.shutdown()


def find_named_actor(name: str, namespace: str | None, what: str) -> Any:
    """The actor ``name`` in ``namespace`` or, with no namespace, the only one of that name in any namespace."""
    if namespace is not None:
        try:
            return ray.get_actor(name, namespace=namespace)
        except ValueError:
            raise CliError(f"no {what} actor {name!r} in Ray namespace {namespace!r}", ExitCode.NOT_FOUND) from None
    matches = [entry["namespace"] for entry in ray.util.list_named_actors(all_namespaces=True) if entry["name"] == name]
    if not matches:
        raise CliError(f"no {what} actor {name!r} is running in any Ray namespace", ExitCode.NOT_FOUND)
    if len(matches) > 1:
        raise CliError(
            f"{len(matches)} {what} actors named {name!r} run (namespaces {sorted(matches)}); choose one with --namespace",
            ExitCode.USAGE,
        )
    return ray.get_actor(name, namespace=matches[0])
