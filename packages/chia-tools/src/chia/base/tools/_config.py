"""Server configuration for ChiaTool endpoints: bind address, ports and access control.

Owns the secure-by-default rules: loopback unless a host is given, and a non-loopback
bind only with a bearer token (or an explicit ``allow_unauthenticated=True``).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field

ADVERTISE_HOST_ENV = "CHIA_TOOL_ADVERTISE_HOST"
RELAY_HOST_ENV = "CHIA_TOOL_RELAY_HOST"
HOST_ENV = "CHIA_TOOL_HOST"
BASE_PORT_ENV = "CHIA_TOOL_BASE_PORT"
TOKEN_ENV = "CHIA_TOOL_TOKEN"

DEFAULT_HOST = "127.0.0.1"
DEFAULT_BASE_PORT = 8000
DEFAULT_MAX_TRIES = 100


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (127.0.0.0/8, ::1)."""
    bare = host.strip().strip("[]").lower()
    if bare == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


def is_unspecified_host(host: str) -> bool:
    """True for the wildcard addresses ``0.0.0.0`` and ``::``."""
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_unspecified
    except ValueError:
        return False


def require_safe_bind(host: str, token: str | None, allow_unauthenticated: bool) -> None:
    """Refuse a non-loopback bind that has neither a token nor an explicit opt-out."""
    if is_loopback_host(host) or token is not None or allow_unauthenticated:
        return
    raise ValueError(
        f"refusing to serve a ChiaTool on non-loopback host {host!r} without a bearer "
        f"token: pass ToolServerConfig(token=...) or set {TOKEN_ENV}, or pass "
        "allow_unauthenticated=True explicitly"
    )


@dataclass(frozen=True, slots=True)
class ToolServerConfig:
    """Experimental. Where and how a ChiaTool's MCP endpoint listens.

    Secure by default: binds ``127.0.0.1``. Binding any other address requires a bearer
    ``token`` (clients send ``Authorization: Bearer <token>``, everything else gets 401)
    unless ``allow_unauthenticated=True`` is passed explicitly. A token, when given, is
    enforced on loopback too. Host and Origin headers are always validated (DNS-rebinding
    protection); ``allowed_hosts`` / ``allowed_origins`` extend the built-in allowlist,
    which already holds the loopback names, the bound and advertised addresses and the
    ``CHIA_TOOL_ADVERTISE_HOST`` / ``CHIA_TOOL_RELAY_HOST`` hosts.

    The token never appears in ``repr``. ``from_env()`` reads ``CHIA_TOOL_HOST``,
    ``CHIA_TOOL_BASE_PORT`` and ``CHIA_TOOL_TOKEN``.

    Example::

        ToolServerConfig(host="0.0.0.0", token=os.environ["MY_TOOL_TOKEN"])
    """

    host: str = DEFAULT_HOST
    base_port: int = DEFAULT_BASE_PORT
    max_tries: int = DEFAULT_MAX_TRIES
    token: str | None = field(default=None, repr=False)
    allow_unauthenticated: bool = False
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("ToolServerConfig.host must be a non-empty host name or IP")
        if not 0 <= self.base_port <= 65535:
            raise ValueError(f"ToolServerConfig.base_port={self.base_port} is outside 0..65535")
        if self.max_tries < 1:
            raise ValueError(f"ToolServerConfig.max_tries={self.max_tries} must be >= 1")
        if self.token is not None and (not self.token or self.token.strip() != self.token):
            raise ValueError("ToolServerConfig.token must be a non-empty string without surrounding whitespace")
        require_safe_bind(self.host, self.token, self.allow_unauthenticated)

    @classmethod
    def from_env(cls) -> ToolServerConfig:
        """Experimental. Build a config from ``CHIA_TOOL_HOST/BASE_PORT/TOKEN`` (defaults if unset)."""
        raw_port = os.environ.get(BASE_PORT_ENV)
        try:
            base_port = int(raw_port) if raw_port else DEFAULT_BASE_PORT
        except ValueError:
            raise ValueError(f"{BASE_PORT_ENV}={raw_port!r} is not an integer port") from None
        return cls(
            host=os.environ.get(HOST_ENV) or DEFAULT_HOST,
            base_port=base_port,
            token=os.environ.get(TOKEN_ENV) or None,
        )

    @property
    def auth_headers(self) -> dict[str, str]:
        """HTTP headers a client must send (empty when no token is configured)."""
        return {} if self.token is None else {"Authorization": f"Bearer {self.token}"}
