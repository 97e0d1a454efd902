"""Run one shell command for the bash tools: own process group, bounded output, hard timeout.

Every command starts in a new session, so a timeout (or a server stop) kills the whole
process group, not just the shell. Output (stdout and stderr interleaved, or each stream
on its own) is kept in memory up to a cap per stream, dropping the oldest bytes first.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

logger = logging.getLogger(__name__)

DEFAULT_MAX_OUTPUT_BYTES = 256 * 1024
_READ_CHUNK = 64 * 1024
_TERM_GRACE_SECONDS = 2.0
# After the command exits, background children may still hold the pipe open: read what
# is already buffered for at most this long rather than waiting for EOF.
_DRAIN_SECONDS = 1.0
# Exit detection without pidfd support: how often to poll the child.
_POLL_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class CommandResult:
    """Outcome of one command: exit code (negative = killed by that signal) and output tail.

    ``output`` is stdout and stderr interleaved, or stdout alone when the command was run
    with ``separate_stderr=True``; ``stderr`` is then its own stream (else empty).
    """

    exit_code: int
    output: str
    timed_out: bool
    stderr: str = ""


@dataclass(frozen=True, slots=True)
class CommandPolicy:
    """How a bash tool turns a command string into a process.

    ``shell=True`` runs ``bash -c command``. ``shell=False`` splits the command with
    shlex and executes argv[0] directly (no shell expansion, pipes or redirection);
    ``allowed_executables`` (names or paths) then restricts argv[0].
    """

    shell: bool = True
    allowed_executables: frozenset[str] | None = None
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES

    def __post_init__(self) -> None:
        if self.max_output_bytes < 1:
            raise ValueError(f"max_output_bytes={self.max_output_bytes} must be >= 1")
        if self.allowed_executables is not None and self.shell:
            raise ValueError(
                "allowed_executables needs shell=False: a shell can run any program, so "
                "an executable allowlist is only enforceable in argv mode"
            )

    @classmethod
    def create(
        cls,
        shell: bool,
        allowed_executables: Iterable[str] | None,
        max_output_bytes: int,
    ) -> CommandPolicy:
        allowed = None if allowed_executables is None else frozenset(allowed_executables)
        return cls(shell=shell, allowed_executables=allowed, max_output_bytes=max_output_bytes)

    def describe(self, work_dir: str, timeout_seconds: float | None, *, separate_stderr: bool = False) -> str:
        """What a run function under this policy does, for its MCP tool description."""
        if self.shell:
            how = "Run a command with bash"
        else:
            how = (
                "Run one program without a shell (no pipes, redirection or variable "
                "expansion; arguments are split like a shell would)"
            )
        parts = [
            f"{how} in the working directory {work_dir!r}.",
            (
                f"The result holds stdout, then any stderr after a line STDERR:; only the last "
                f"{self.max_output_bytes} bytes of each are kept."
                if separate_stderr
                else f"The result holds the combined stdout and stderr; only the last {self.max_output_bytes} bytes "
                "are kept."
            ),
        ]
        if self.allowed_executables is not None:
            parts.append(f"Allowed programs: {', '.join(sorted(self.allowed_executables))}.")
        if timeout_seconds is not None:
            parts.append(
                f"A command running longer than {timeout_seconds}s is killed together with every process it started."
            )
        return " ".join(parts)

    def argv(self, command: str, work_dir: str, env: Mapping[str, str]) -> list[str]:
        """The argv to execute for ``command``; raises PermissionError if argv[0] is not allowed."""
        if self.shell:
            return [shutil.which("bash") or "/bin/sh", "-c", command]
        argv = shlex.split(command)
        if not argv:
            raise ValueError("empty command: nothing to execute")
        executable = _resolve_executable(argv[0], work_dir, env)
        if executable is None:
            raise FileNotFoundError(f"executable {argv[0]!r} not found on PATH or in {work_dir}")
        if self.allowed_executables is not None:
            allowed = {
                resolved
                for entry in self.allowed_executables
                if (resolved := _resolve_executable(entry, work_dir, env)) is not None
            }
            if executable not in allowed:
                raise PermissionError(
                    f"executable {argv[0]!r} is not allowed; allowed: {sorted(self.allowed_executables)}"
                )
        return [executable, *argv[1:]]


def _resolve_executable(name: str, work_dir: str, env: Mapping[str, str]) -> str | None:
    """Absolute real path of ``name`` as exec would find it, or None."""
    if os.sep in name:
        candidate = os.path.join(work_dir, name)
        found = candidate if os.access(candidate, os.X_OK) else None
    else:
        found = shutil.which(name, path=env.get("PATH", os.defpath))
    return os.path.realpath(found) if found else None


class _TailBuffer:
    """Bytes buffer that keeps only the last ``limit`` bytes, counting what it dropped."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._data = bytearray()
        self.dropped = 0

    def append(self, chunk: bytes) -> None:
        self._data += chunk
        # Trim in batches so a chatty command does not re-copy the buffer per chunk.
        excess = len(self._data) - 2 * self._limit
        if excess > 0:
            self._trim()

    def _trim(self) -> None:
        excess = len(self._data) - self._limit
        if excess > 0:
            del self._data[:excess]
            self.dropped += excess

    def text(self) -> str:
        self._trim()
        body = self._data.decode("utf-8", errors="replace")
        if self.dropped:
            return f"[... {self.dropped} bytes of earlier output truncated ...]\n{body}"
        return body


class ProcessGroups:
    """Process groups of commands in flight, so a stopping server can kill them.

    Pickles as an empty tracker: live processes never travel with a tool object.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: set[int] = set()

    def __getstate__(self) -> dict[str, object]:
        return {}

    def __setstate__(self, state: dict[str, object]) -> None:
        self._lock = threading.Lock()
        self._groups = set()

    def add(self, pgid: int) -> None:
        with self._lock:
            self._groups.add(pgid)

    def discard(self, pgid: int) -> None:
        with self._lock:
            self._groups.discard(pgid)

    def kill_all(self) -> None:
        with self._lock:
            groups = list(self._groups)
        for pgid in groups:
            kill_process_group(pgid, signal.SIGKILL)


def kill_process_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def run_command(
    argv: list[str],
    *,
    work_dir: str,
    env: Mapping[str, str] | None,
    timeout_seconds: float | None,
    max_output_bytes: int,
    groups: ProcessGroups | None = None,
    separate_stderr: bool = False,
) -> CommandResult:
    """Run ``argv`` in its own process group and collect its output.

    stdout and stderr are interleaved in ``output``, unless ``separate_stderr`` keeps
    stderr apart (each stream capped at ``max_output_bytes``). On timeout the group gets
    SIGTERM, then SIGKILL after a short grace, so children and grandchildren die with the
    shell; the timeout note ends ``output``.
    """
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    proc = subprocess.Popen(
        argv,
        cwd=work_dir,
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if separate_stderr else subprocess.STDOUT,
        start_new_session=True,
    )
    pipes = [pipe for pipe in (proc.stdout, proc.stderr) if pipe is not None]
    buffers = {pipe.fileno(): _TailBuffer(max_output_bytes) for pipe in pipes}
    if groups is not None:
        groups.add(proc.pid)
    try:
        timed_out = not _pump(proc, deadline, buffers)
        if timed_out:
            logger.info("command timed out after %ss; killing group %d", timeout_seconds, proc.pid)
            _terminate_group(proc)
            _drain(buffers)
        exit_code = proc.wait()
    finally:
        if proc.poll() is None:  # interrupted while running: leave nothing behind
            kill_process_group(proc.pid, signal.SIGKILL)
            proc.wait()
        if groups is not None:
            groups.discard(proc.pid)
        texts = [buffers[pipe.fileno()].text() for pipe in pipes]
        for pipe in pipes:
            pipe.close()
    output, stderr = texts[0], texts[1] if separate_stderr else ""
    if timed_out:
        output = append_line(output, f"[timed out after {timeout_seconds}s: process group killed]")
    return CommandResult(exit_code=exit_code, output=output, timed_out=timed_out, stderr=stderr)


def append_line(text: str, line: str) -> str:
    """``text`` with ``line`` added on a line of its own."""
    separator = "" if not text or text.endswith("\n") else "\n"
    return f"{text}{separator}{line}"


def _open_pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _pump(proc: subprocess.Popen[bytes], deadline: float | None, buffers: dict[int, _TailBuffer]) -> bool:
    """Read output (``buffers``: pipe fd -> its buffer) until the process exits; False if the deadline passed first."""
    pidfd = _open_pidfd(proc.pid)
    with selectors.DefaultSelector() as selector:
        for fd in buffers:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ, "output")
        if pidfd is not None:
            selector.register(pidfd, selectors.EVENT_READ, "exit")
        try:
            while proc.poll() is None:
                timeout = None if deadline is None else deadline - time.monotonic()
                if timeout is not None and timeout <= 0:
                    return False
                if pidfd is None:
                    timeout = _POLL_SECONDS if timeout is None else min(timeout, _POLL_SECONDS)
                for key, _ in selector.select(timeout):
                    if key.data == "output" and not _read_available(key.fd, buffers[key.fd]):
                        selector.unregister(key.fd)  # EOF: only the exit is left to wait for
        finally:
            if pidfd is not None:
                os.close(pidfd)
    _drain(buffers)
    return True


def _read_available(fd: int, buffer: _TailBuffer) -> bool:
    """Read what the pipe holds now; False at EOF."""
    while True:
        try:
            chunk = os.read(fd, _READ_CHUNK)
        except BlockingIOError:
            return True
        if not chunk:
            return False
        buffer.append(chunk)


def _drain(buffers: dict[int, _TailBuffer]) -> None:
    """Collect output still in the pipes after the command ended, for a bounded time."""
    end = time.monotonic() + _DRAIN_SECONDS
    with selectors.DefaultSelector() as selector:
        for fd in buffers:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map() and (remaining := end - time.monotonic()) > 0:
            ready = selector.select(remaining)
            if not ready:
                return
            for key, _ in ready:
                if not _read_available(key.fd, buffers[key.fd]):
                    selector.unregister(key.fd)


def _terminate_group(proc: subprocess.Popen[bytes]) -> None:
    kill_process_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=_TERM_GRACE_SECONDS)
    # The shell may be gone while children ignored SIGTERM: kill whatever is left.
    kill_process_group(proc.pid, signal.SIGKILL)
