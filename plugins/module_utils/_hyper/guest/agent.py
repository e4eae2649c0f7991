# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""GuestAgent: the one client for qemu-ga (ping, info, wait_ready, exec (spawn + wait), file read/write)."""

from __future__ import annotations

import base64
import json
import math
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Protocol, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import (
    AgentCommandError,
    AgentError,
    AgentTimeout,
    AgentUnavailable,
    DomainNotFound,
    DomainNotRunning,
    SpecError,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.replies import load_guest_json
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import import_libvirt
from ansible_collections.hyper.pods.plugins.module_utils._hyper.waiter import PACE, Clock, Sleep, paced_polls, polls

# One agent round trip (libvirt adds a guest-sync before each command), in whole seconds as libvirt wants.
CALL_TIMEOUT = 10
# A guest-ping while waiting for the agent to come up: short, the poll retries anyway.
PING_TIMEOUT = 2
# How long a command run by exec() may take before it is killed.
EXEC_TIMEOUT = 60.0
# Boot → agent answers; TCG guests take several seconds.
READY_TIMEOUT = 120.0
# After the kill: how long to wait for the killed process to be reaped and its status collected.
KILL_GRACE = 5.0
# How much of a failed command's output an error message carries (the tail).
MESSAGE_OUTPUT_LIMIT = 2000
# qemu-ga has no kill command: the kill is itself a guest-exec of this argv (+ pid).
KILL_ARGV: tuple[str, ...] = ("kill", "-KILL")
# libvirtd caps one RPC string at 4 MiB; base64 grows data by 4/3, and the JSON envelope needs room.
# This bounds what one guest → host reply can carry (guest-file-read).
MAX_CHUNK = 3 * 1024 * 1024 - 64 * 1024
# Default read chunk. Measured (TCG, 8 MiB file): 64 KiB 7.7 MiB/s, 512 KiB 10.7, 1 MiB 9.1, 2 MiB 7.0,
# MAX_CHUNK 5.3 MiB/s: larger replies cost more in base64/JSON handling than they save in round trips.
READ_CHUNK = 512 * 1024
# Host → guest requests are far more limited than replies: with qemu-ga 7.2 / QEMU 7.2 / libvirt 9.0 a
# request above ~220 KB of JSON (168 KiB of data in base64) hangs the agent or reaches it garbled
# ("QMP input member 'handle' is unexpected"); 160 KiB worked, 128 KiB keeps a margin. Bounds
# guest-file-write chunks and guest-exec input-data (stdin).
MAX_REQUEST_DATA = 128 * 1024
# What read_file reads at most unless told otherwise: a guest that never says EOF costs the host this
# much and no more (docs/security.md; the connection's fetch streams to disk with its own limit).
READ_LIMIT = 64 * 1024 * 1024
# qemu-ga keeps at most 16 MiB per captured stream and then only sets out-truncated / err-truncated.
AGENT_CAPTURE_LIMIT = 16 * 1024 * 1024


class AgentTransport(Protocol):
    """Carries one JSON request to qemu-ga and returns the JSON reply text; maps its own errors."""

    def send(self, json_text: str, timeout: int) -> str: ...


@dataclass(frozen=True)
class ExecResult:
    """Outcome of one guest command. ``rc`` is None when the process died by ``signal``."""

    pid: int
    rc: Optional[int]
    signal: Optional[int]
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    duration: float


class ExecTimeout(AgentTimeout):
    """A guest command outlived its timeout; ``result`` is what was collected after the kill, if anything."""

    def __init__(self, message: str, result: Optional[ExecResult], killed: bool) -> None:
        details: dict[str, Any] = {"killed": killed}
        if result is not None:
            details.update(rc=result.rc, signal=result.signal, stdout=_text(result.stdout), stderr=_text(result.stderr))
        super().__init__(message, details)
        self.result = result
        self.killed = killed


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _b64decode(value: object, what: str) -> bytes:
    if value is None:
        return b""
    if not isinstance(value, str):
        raise AgentError(f"guest agent sent a non-string {what}")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as err:
        raise AgentError(f"guest agent sent invalid base64 in {what}: {err}") from None


def _ceil_seconds(seconds: float) -> int:
    # libvirt takes whole seconds, and 0 would mean "do not wait at all".
    return max(1, math.ceil(seconds))


class GuestAgent:
    """Talks to one guest's qemu-ga through a transport. Not thread-safe: one request at a time."""

    def __init__(
        self,
        transport: AgentTransport,
        *,
        name: Optional[str] = None,
        call_timeout: int = CALL_TIMEOUT,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        pace: float = PACE,
    ) -> None:
        self._transport = transport
        # The poll interval of a running process, as a fraction of the time it ran so far (waiter.paced_polls).
        self.pace = pace
        self.name = name or str(getattr(transport, "name", "guest"))
        self.call_timeout = call_timeout
        self._clock = clock
        self._sleep = sleep

    # -- the one request/response path ---------------------------------------------------------

    def command(self, name: str, arguments: Optional[Mapping[str, Any]] = None, timeout: Optional[int] = None) -> Any:
        """Send one qemu-ga command and return its ``return`` value; errors come back typed."""
        request: dict[str, Any] = {"execute": name}
        if arguments is not None:
            request["arguments"] = dict(arguments)
        reply_text = self._transport.send(json.dumps(request, separators=(",", ":")), self.call_timeout if timeout is None else timeout)
        reply = load_guest_json(reply_text, f"{self.name}: reply to {name}")  # bounded: size, depth, count
        if not isinstance(reply, dict):
            raise AgentError(f"{self.name}: reply to {name} is not a JSON object: {reply_text[:200]!r}")
        error = reply.get("error")
        if error is not None:
            if not isinstance(error, dict):
                error = {"desc": str(error)}
            raise AgentCommandError(name, str(error.get("class", "GenericError")), str(error.get("desc", "")), self.name)
        if "return" not in reply:
            raise AgentError(f"{self.name}: reply to {name} has no 'return': {reply_text[:200]!r}")
        return reply["return"]

    def _call_obj(self, name: str, arguments: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
        result = self.command(name, arguments)
        if not isinstance(result, dict):
            raise AgentError(f"{self.name}: {name} returned {type(result).__name__}, not an object")
        return result

    # -- liveness ------------------------------------------------------------------------------

    def ping(self, timeout: int = PING_TIMEOUT) -> None:
        self.command("guest-ping", timeout=timeout)

    def info(self) -> dict[str, Any]:
        return self._call_obj("guest-info")

    def wait_ready(self, timeout: float = READY_TIMEOUT, is_alive: Optional[Callable[[], bool]] = None) -> float:
        """Poll guest-ping until it answers; return the seconds waited.

        Fails at once when the domain is gone or stopped (``is_alive`` returns False, or libvirt
        says so) instead of waiting out the timeout.
        """
        start = self._clock()
        last: Optional[Exception] = None
        for _attempt in polls(timeout, clock=self._clock, sleep=self._sleep):
            remaining = timeout - (self._clock() - start)
            try:
                self.ping(timeout=min(PING_TIMEOUT, _ceil_seconds(remaining)))
                return self._clock() - start
            except (DomainNotRunning, DomainNotFound):
                raise
            except (AgentUnavailable, AgentTimeout) as err:
                last = err
            if is_alive is not None and not is_alive():
                raise DomainNotRunning(f"{self.name} stopped before its guest agent answered (last agent error: {last})")
        raise AgentTimeout(f"{self.name}: guest agent did not answer within {timeout:g}s (last error: {last})")

    # -- commands in the guest -----------------------------------------------------------------

    def exec(
        self,
        argv: Sequence[str],
        *,
        env: Optional[Mapping[str, str]] = None,
        stdin: Optional[bytes] = None,
        capture: bool = True,
        timeout: float = EXEC_TIMEOUT,
    ) -> ExecResult:
        """Run ``argv`` in the guest and wait for it; on timeout kill it and raise ExecTimeout.

        ``argv[0]`` is looked up on the agent's PATH. ``env`` replaces the environment (qemu-ga
        passes it as the whole environment). The guest-exec is never re-sent: it may have run.
        Same as ``wait(spawn(argv), timeout)``, except that ``duration`` counts from the spawn.
        """
        start = self._clock()
        pid = self.spawn(argv, env=env, stdin=stdin, capture=capture)
        return self._finish(pid, timeout, start, argv[0], kill=True)

    def run(self, argv: Sequence[str], what: str, *, timeout: float = EXEC_TIMEOUT, stdin: Optional[bytes] = None) -> ExecResult:
        """``exec`` that must succeed: a non-zero exit or a signal raises AgentError ``<agent>: <what> failed: <output> (exit code N)``."""
        result = self.exec(argv, stdin=stdin, timeout=timeout)
        if result.rc != 0:
            # The guest's output is its own: bounded in the message (the whole of it stays in the result).
            text = (_text(result.stderr) or _text(result.stdout)).strip()[-MESSAGE_OUTPUT_LIMIT:]
            how = f"exit code {result.rc}" if result.rc is not None else f"signal {result.signal}"
            raise AgentError(f"{self.name}: {what} failed: {text} ({how})" if text else f"{self.name}: {what} failed: {how}")
        return result

    def spawn(
        self,
        argv: Sequence[str],
        *,
        env: Optional[Mapping[str, str]] = None,
        stdin: Optional[bytes] = None,
        capture: bool = True,
    ) -> int:
        """Start ``argv`` in the guest and return its pid at once; collect it with ``wait``.

        Several spawned processes run side by side in the guest; qemu-ga keeps each one's status
        (and captured output) until a ``wait`` has seen it exit.
        """
        if not argv or not argv[0]:
            raise SpecError("command", list(argv), "needs at least a program to run")
        arguments: dict[str, Any] = {"path": argv[0], "arg": list(argv[1:]), "capture-output": capture}
        if env is not None:
            arguments["env"] = [f"{key}={value}" for key, value in env.items()]
        if stdin is not None:
            if len(stdin) > MAX_REQUEST_DATA:
                raise SpecError("stdin", f"<{len(stdin)} bytes>", f"at most {MAX_REQUEST_DATA} bytes fit one agent request; write a file first")
            arguments["input-data"] = base64.b64encode(stdin).decode("ascii")
        try:
            reply = self._call_obj("guest-exec", arguments)
        except AgentTimeout as err:
            raise AgentTimeout(f"{self.name}: no answer to guest-exec of {argv[0]}; it may or may not have run ({err.message})") from None
        pid = reply.get("pid")
        if not isinstance(pid, int):
            raise AgentError(f"{self.name}: guest-exec of {argv[0]} returned no pid: {reply!r}")
        return pid

    def wait(self, pid: int, timeout: float = EXEC_TIMEOUT, *, what: Optional[str] = None, kill: bool = True) -> ExecResult:
        """Wait up to ``timeout`` seconds (from now) for a spawned process; ``duration`` counts from now too.

        On timeout it is killed (``kill``; False leaves it running) and ExecTimeout is raised.
        ``what`` names the process in that message (default ``process``).
        """
        return self._finish(pid, timeout, self._clock(), what or "process", kill=kill)

    def poll(self, pid: int) -> Optional[ExecResult]:
        """One guest-exec-status call: the result when the process has exited, else None."""
        status = self._call_obj("guest-exec-status", {"pid": pid})
        return self._result(pid, status, 0.0) if status.get("exited") else None

    def kill(self, pid: int) -> bool:
        """Send SIGKILL to a spawned process; False when it could not be killed (it may have exited)."""
        return self._kill(pid)

    def _finish(self, pid: int, timeout: float, start: float, what: str, *, kill: bool) -> ExecResult:
        result = self._wait(pid, timeout, start)
        if result is not None:
            return result
        if not kill:
            raise ExecTimeout(f"{self.name}: {what} (pid {pid}) ran longer than {timeout:g}s; left running", None, False)
        killed = self._kill(pid)
        result = self._wait(pid, KILL_GRACE, start) if killed else None
        how = "killed" if killed else "could not be killed"
        raise ExecTimeout(f"{self.name}: {what} (pid {pid}) ran longer than {timeout:g}s and {how}", result, killed)

    def _wait(self, pid: int, timeout: float, start: float) -> Optional[ExecResult]:
        """Poll guest-exec-status until the process exits; None when ``timeout`` passes first.

        Paced polls: the exit is seen at most ~10 % (or 10 ms) late. The backoff of ``polls`` was up
        to 50 % late: ~285 instead of ~195 ms for a crun exec in exec_bench.
        """
        for _attempt in paced_polls(timeout, clock=self._clock, sleep=self._sleep, fraction=self.pace):
            try:
                status = self._call_obj("guest-exec-status", {"pid": pid})
            except AgentTimeout:
                # A status call is safe to repeat; only a lost "exited" reply is lost for good.
                continue
            if status.get("exited"):
                return self._result(pid, status, self._clock() - start)
        return None

    @staticmethod
    def _result(pid: int, status: Mapping[str, Any], duration: float) -> ExecResult:
        rc = status.get("exitcode")
        signal = status.get("signal")
        return ExecResult(
            pid=pid,
            rc=rc if isinstance(rc, int) else None,
            signal=signal if isinstance(signal, int) else None,
            stdout=_b64decode(status.get("out-data"), "out-data"),
            stderr=_b64decode(status.get("err-data"), "err-data"),
            stdout_truncated=bool(status.get("out-truncated", False)),
            stderr_truncated=bool(status.get("err-truncated", False)),
            duration=duration,
        )

    def _kill(self, pid: int) -> bool:
        """SIGKILL ``pid`` with a guest-exec of KILL_ARGV; only that process, not its children."""
        try:
            kill_pid = self.spawn([*KILL_ARGV, str(pid)])
            done = self._wait(kill_pid, KILL_GRACE, self._clock())
        except AgentError:
            return False
        return done is not None and done.rc == 0

    # -- files in the guest --------------------------------------------------------------------

    def read_file(self, path: str, chunk_size: int = READ_CHUNK, limit: Optional[int] = None) -> bytes:
        """Read a whole guest file in chunks, at most ``limit`` bytes (None: READ_LIMIT): more is an AgentError."""
        chunks: list[bytes] = []
        self.read_into(path, chunks.append, chunk_size, limit)
        return b"".join(chunks)

    def read_into(self, path: str, sink: Callable[[bytes], object], chunk_size: int = READ_CHUNK, limit: Optional[int] = None) -> int:
        """Read a guest file chunk by chunk into ``sink``; return the bytes read. Over ``limit`` bytes is an AgentError.

        The host holds one chunk at a time, so a guest that never says EOF costs it ``chunk_size``
        of memory and ``limit`` bytes of whatever ``sink`` writes to, never more.
        """
        _check_chunk(chunk_size, MAX_CHUNK)
        limit = READ_LIMIT if limit is None else limit
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise SpecError("limit", limit, "must be a number of bytes >= 0")
        handle = self._open(path, "r")
        total = 0
        with _Closing(self, handle, path):
            while True:
                reply = self._call_obj("guest-file-read", {"handle": handle, "count": min(chunk_size, limit - total + 1)})
                data = _b64decode(reply.get("buf-b64"), "buf-b64")
                count, eof = reply.get("count"), reply.get("eof", False)
                if isinstance(count, bool) or not isinstance(count, int) or len(data) != count:
                    raise AgentError(f"{self.name}: reading {path}: agent said {count!r} bytes, sent {len(data)}")
                if not isinstance(eof, bool):
                    raise AgentError(f"{self.name}: reading {path}: agent sent eof {eof!r}, not true or false")
                total += len(data)
                if total > limit:
                    raise AgentError(f"{self.name}: {path} is larger than the limit of {limit} bytes; nothing more is read", {"limit": limit})
                if data:
                    sink(data)
                if eof or not data:
                    break
        return total

    def write_file(self, path: str, data: bytes, mode: Optional[int] = None, chunk_size: int = MAX_REQUEST_DATA, append: bool = False) -> int:
        """Write ``data`` to a guest file in chunks; return the bytes written.

        qemu-ga creates new files with a mode of its own (0666 less the umask for 7.2, 0600 in some
        versions); ``mode`` (permission bits) is applied afterwards with a guest-exec of ``chmod``.
        """
        _check_chunk(chunk_size, MAX_REQUEST_DATA)
        handle = self._open(path, "a" if append else "w")
        written = 0
        with _Closing(self, handle, path):
            for offset in range(0, len(data), chunk_size):
                chunk = data[offset : offset + chunk_size]
                reply = self._call_obj("guest-file-write", {"handle": handle, "buf-b64": base64.b64encode(chunk).decode("ascii"), "count": len(chunk)})
                if reply.get("count") != len(chunk):
                    raise AgentError(f"{self.name}: writing {path}: short write at byte {offset} ({reply.get('count')} of {len(chunk)})")
                written += len(chunk)
        if mode is not None:
            result = self.exec(["chmod", format(mode, "o"), path])
            if result.rc != 0:
                raise AgentError(f"{self.name}: chmod {mode:o} {path} failed: {_text(result.stderr).strip()}")
        return written

    def _open(self, path: str, mode: str) -> int:
        handle = self.command("guest-file-open", {"path": path, "mode": mode})
        if not isinstance(handle, int):
            raise AgentError(f"{self.name}: guest-file-open {path} returned {handle!r}, not a handle")
        return handle


def _check_chunk(chunk_size: int, maximum: int) -> None:
    if not 0 < chunk_size <= maximum:
        raise SpecError("chunk_size", chunk_size, f"must be between 1 and {maximum}")


class _Closing:
    """Always close a guest file handle; a close error never hides the error that got us here."""

    def __init__(self, agent: GuestAgent, handle: int, path: str) -> None:
        self._agent = agent
        self._handle = handle
        self._path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self._agent.command("guest-file-close", {"handle": self._handle})
        except AgentError:
            if exc is None:
                raise


# -- libvirt transport -------------------------------------------------------------------------

# libvirt error codes (stable ABI numbers, so the mapping is testable without the binding).
VIR_ERR_INTERNAL_ERROR = 1
VIR_ERR_NO_DOMAIN = 42
VIR_ERR_OPERATION_INVALID = 55
VIR_ERR_ARGUMENT_UNSUPPORTED = 74
VIR_ERR_AGENT_UNRESPONSIVE = 86
VIR_ERR_AGENT_UNSYNCED = 97

_AGENT_FAILED = re.compile(r"unable to execute QEMU agent command '(?P<name>[^']*)'(?::\s*(?P<desc>.*))?", re.S)


def map_agent_error(code: int, message: str, where: str) -> AgentError | DomainNotFound:
    """Turn a libvirt error raised by qemuAgentCommand into one of our typed errors."""
    text = f"{where}: {message}"
    if code == VIR_ERR_NO_DOMAIN:
        return DomainNotFound(text)
    if code == VIR_ERR_OPERATION_INVALID and "not running" in message:
        return DomainNotRunning(text)
    if code == VIR_ERR_AGENT_UNRESPONSIVE:
        # "QEMU guest agent is not connected" comes at once; "not available for now" after the timeout.
        if "not connected" in message or "due to an error" in message:
            return AgentUnavailable(text)
        return AgentTimeout(text)
    if code == VIR_ERR_AGENT_UNSYNCED:
        return AgentTimeout(f"{text} (agent out of sync, probably still starting or busy)")
    if code == VIR_ERR_ARGUMENT_UNSUPPORTED and "not configured" in message:
        return AgentUnavailable(f"{text} (the domain has no guest agent channel)")
    failed = _AGENT_FAILED.search(message)
    if failed:
        return AgentCommandError(failed.group("name"), "GenericError", (failed.group("desc") or "").strip(), where)
    return AgentError(text)


class LibvirtAgentTransport:
    """AgentTransport over ``libvirt_qemu.qemuAgentCommand(domain, json, timeout, 0)``."""

    def __init__(self, domain: Any, name: Optional[str] = None) -> None:
        self._domain = domain
        self.name = name or str(domain.name())

    def send(self, json_text: str, timeout: int) -> str:
        libvirt, libvirt_qemu = import_libvirt()
        try:
            reply = libvirt_qemu.qemuAgentCommand(self._domain, json_text, timeout, 0)
        except libvirt.libvirtError as err:
            raise map_agent_error(err.get_error_code() or 0, err.get_error_message() or str(err), self.name) from None
        if reply is None:
            raise AgentError(f"{self.name}: libvirt returned no agent reply")
        return str(reply)
