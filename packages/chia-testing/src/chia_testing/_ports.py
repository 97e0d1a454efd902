"""A TCP port on 127.0.0.1 that nothing listens on at the moment of the call."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1 and released.

    Good for "nothing listens there" addresses and for a server told which
    port to bind; another process could take it in between, so a server that
    can bind port 0 itself should do that instead.
    """
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port
