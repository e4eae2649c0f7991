# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""The fast path of a command in a container: the container's exec helper instead of ``crun exec``.

The guest image ships ``/usr/sbin/hyper-exec`` (roles/guest_image/files/hyper-exec.c). The first
command that finds no server in a running container starts one (``hyper-exec launch NAME``, which
detaches; that command itself goes through crun exec): ``hyper-exec serve`` in the container, started
once through ``crun exec``, listening on ``/run/hyper/containers/NAME/exec.sock`` in the guest root. A command is then one guest-exec of
``hyper-exec run TOKEN NAME ...``: the client hands the argv, the environment to add, the working
directory, the user and its stdio to the server, which forks the command. It inherits everything
crun gave the server, at the cost of a fork instead of crun's ~200 ms start (docs/exec.md).

``run_fast`` returns None when the fast path is not there (the guest image has no hyper-exec, the
container has no server: made before, the server died, not started yet): then nothing ran and the
caller uses ``crun exec``. Only the client's own words, tagged with a random token the command never
sees, count as "unavailable"; a command cannot fake them.
"""

from __future__ import annotations

import contextlib
import secrets
import weakref
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import AgentCommandError, AgentError, HyperError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest import layout
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import KILL_GRACE, MAX_REQUEST_DATA, ExecResult, ExecTimeout, GuestAgent
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.replies import GuestReplyError, guest_int, guest_text
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.scripts import exec_wrapper

HYPER_EXEC = "/usr/sbin/hyper-exec"
# The client's exit code when it speaks for itself (unavailable, lost); its stderr then carries the token.
CLIENT_RC = 125
EXEC_DIR = layout.EXEC_DIR
HELPER_TIMEOUT = 10.0
# Same rule and marker as the crun exec wrapper (guest/scripts/exec_wrapper.py); hyper-exec.c has them too.
INLINE_MARKER = exec_wrapper.INLINE_MARKER.encode("ascii")
TOKEN_BYTES = 8
# The client ends like the command: an exit code (0-255) or death by a signal (1-64, Linux's range).
MAX_EXIT_CODE = 255
MAX_SIGNAL = 64
# How much of the client's own words (why it was unavailable or lost) goes into a message.
REASON_LIMIT = 300

# Agents whose guest has no hyper-exec (an image made before it): no need to ask again.
_NO_CLIENT: weakref.WeakSet[GuestAgent] = weakref.WeakSet()


@dataclass(frozen=True)
class FastResult:
    """What the fast path collected; the fields of guest/exec.py's ContainerExecResult except the duration."""

    rc: Optional[int]
    signal: Optional[int]
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    timed_out: bool
    # Set when the server went away after it had the request: the command may have run.
    lost: Optional[str] = None


@dataclass(frozen=True)
class ExecFiles:
    """The guest files of one exec (stdin when it is too big for the request, stdout, stderr)."""

    stdin: str
    stdout: str
    stderr: str

    @classmethod
    def for_token(cls, token: str) -> ExecFiles:
        base = f"{EXEC_DIR}/exec-{token}"
        return cls(f"{base}.in", f"{base}.out", f"{base}.err")


def without_client(agent: GuestAgent) -> None:
    """Use crun exec for every command of ``agent`` from now on (as for a guest image without hyper-exec)."""
    _NO_CLIENT.add(agent)


def new_token() -> str:
    return secrets.token_hex(TOKEN_BYTES)


def client_argv(
    token: str,
    container: str,
    argv: Sequence[str],
    *,
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[str] = None,
    user: Optional[str] = None,
    stdin_file: str = "",
    stdout_file: str = "",
    stderr_file: str = "",
) -> list[str]:
    """``hyper-exec run TOKEN NAME STDIN OUT ERR [-e K=V]... [-C DIR] [-u UID[:GID]] -- ARGV...``.

    The values were checked by guest/exec.py's crun_exec_argv already; every one is its own argument.
    """
    command = [HYPER_EXEC, "run", token, container, stdin_file, stdout_file, stderr_file]
    for key, value in (env or {}).items():
        command += ["-e", f"{key}={value}"]
    if cwd is not None:
        command += ["-C", cwd]
    if user is not None:
        command += ["-u", user]
    return [*command, "--", *argv]


def client_verdict(result: ExecResult, token: str) -> Optional[tuple[str, str]]:
    """("unavailable" | "lost", reason) when the client spoke for itself, else None (the command's result)."""
    if result.rc != CLIENT_RC:
        return None
    for kind in ("unavailable", "lost"):
        prefix = f"hyper-exec: {token} {kind}: ".encode("ascii")
        at = result.stderr.rfind(prefix)
        # Its line is the last one; before it only the command's own stderr can be (for "lost").
        if at >= 0 and result.stderr.endswith(b"\n") and b"\n" not in result.stderr[at:-1] and (kind == "lost" or at == 0):
            return kind, guest_text(result.stderr[at + len(prefix) : -1], REASON_LIMIT)
    return None


def exit_of(result: ExecResult, what: str) -> tuple[Optional[int], Optional[int]]:
    """(rc, None) or (None, signal): the client ends like the command, so its end is the command's.

    Checked as guest input: an exit code from 0 to 255, else a signal from 1 to 64; anything else
    (neither, or out of range) is a GuestReplyError naming ``what``.
    """
    if result.rc is not None:
        return guest_int(result.rc, f"{what}: exit code", 0, MAX_EXIT_CODE), None
    if result.signal is None:
        raise GuestReplyError(f"{what}: the guest agent reported neither an exit code nor a signal")
    return None, guest_int(result.signal, f"{what}: signal", 1, MAX_SIGNAL)


def run_fast(
    agent: GuestAgent,
    container: str,
    argv: Sequence[str],
    *,
    stdin: Optional[bytes] = None,
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[str] = None,
    user: Optional[str] = None,
    timeout: float,
    large_output: bool = False,
    output_limit: Optional[int] = None,
) -> Optional[FastResult]:
    """Run ``argv`` through the container's exec helper; None when there is none (nothing ran).

    Same contract as guest/exec.py's run_in_container (which calls it first): stdin of any size
    (above one request through a file), output inline or, with ``large_output``, through files of
    any size, a timeout that kills the client and with it the command's process group.
    """
    if agent in _NO_CLIENT:
        return None
    token = new_token()
    files = ExecFiles.for_token(token)
    stdin_file = stdin is not None and len(stdin) > MAX_REQUEST_DATA
    command = client_argv(
        token,
        container,
        argv,
        env=env,
        cwd=cwd,
        user=user,
        stdin_file=files.stdin if stdin_file else "",
        stdout_file=files.stdout if large_output else "",
        stderr_file=files.stderr if large_output else "",
    )
    what = f"{argv[0]} in container {container}"
    cleanup = stdin_file
    try:
        if stdin_file and stdin is not None:
            agent.write_file(files.stdin, stdin)
        try:
            pid = agent.spawn(command, stdin=None if stdin_file else stdin)
        except AgentCommandError as err:
            # qemu-ga could not start the client: nothing ran. An image without hyper-exec.
            if err.command == "guest-exec":
                _NO_CLIENT.add(agent)
                return None
            raise
        timed_out = False
        try:
            result: Optional[ExecResult] = agent.wait(pid, timeout, what=what, kill=False)
        except ExecTimeout:
            timed_out = cleanup = True
            result = _kill(agent, pid, what)
        if result is None:
            rc, signal, stdout, stderr, out_cut, err_cut = None, None, b"", b"", False, False
        else:
            verdict = client_verdict(result, token)
            if verdict is not None and verdict[0] == "unavailable":
                _launch(agent, container)
                return None
            if verdict is not None:
                cleanup = True
                return FastResult(None, None, b"", b"", False, False, False, lost=verdict[1])
            rc, signal = exit_of(result, f"{agent.name}: hyper-exec of {what}")
            stdout, stderr = result.stdout, result.stderr
            out_cut, err_cut = result.stdout_truncated, result.stderr_truncated
        if large_output and result is not None and stderr.endswith(INLINE_MARKER):
            stderr = stderr[: -len(INLINE_MARKER)]
        elif large_output:
            cleanup = True
            stdout = _read_optional(agent, files.stdout, output_limit)
            stderr = _read_optional(agent, files.stderr, output_limit)
    finally:
        if cleanup:
            with contextlib.suppress(HyperError):
                agent.exec(["rm", "-f", files.stdin, files.stdout, files.stderr], timeout=HELPER_TIMEOUT)
    return FastResult(rc, signal, stdout, stderr, out_cut, err_cut, timed_out)


def _launch(agent: GuestAgent, container: str) -> None:
    """Start the container's exec helper for the next commands (``hyper-exec launch`` detaches at once).

    Best effort: this command goes through crun exec anyway. The launch does nothing when a server
    answers or another launch runs.
    """
    with contextlib.suppress(HyperError):
        agent.exec([HYPER_EXEC, "launch", container], timeout=HELPER_TIMEOUT)


def _kill(agent: GuestAgent, pid: int, what: str) -> Optional[ExecResult]:
    """SIGKILL the client; its session in the container then kills the command's process group."""
    agent.kill(pid)
    try:
        return agent.wait(pid, KILL_GRACE, what=what, kill=True)
    except ExecTimeout as err:
        return err.result


def _read_optional(agent: GuestAgent, path: str, limit: Optional[int] = None) -> bytes:
    """A redirected stream; empty when never created. Above ``limit`` (read_file's own bound when None) an AgentError with ``details["limit"]``."""
    try:
        return agent.read_file(path, limit=limit)
    except AgentError as err:
        if "No such file" in str(err) or "not found" in str(err):
            return b""
        raise


# -- one line to a unix socket of a container's process (hyper-exec mcli): haproxy's master CLI ------

# hyper-exec mcli's exit codes (hyper-exec.c): answered; nothing sent (refused); sent but the answer was
# cut (too long, too slow); nothing sent (no such socket); nothing sent (the peer is not the container's process).
MCLI_ANSWERED = 0
MCLI_NOT_SENT = 3
MCLI_CUT = 4
MCLI_NO_SOCKET = 6
MCLI_OTHER_PEER = 7
MCLI_ANSWER_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class SocketAnswer:
    """What ``hyper-exec mcli`` reported: ``sent`` (the line reached the peer), ``answer`` (all of it when ``complete``).

    ``unusable``: nothing was sent and trying again will not help (no such socket, or its peer is not
    the container's own process).
    """

    sent: bool
    complete: bool
    answer: bytes
    unusable: bool
    reason: str


def socket_line(agent: GuestAgent, container: str, socket: str, line: str, timeout: float = HELPER_TIMEOUT) -> Optional[SocketAnswer]:
    """Send ``line`` to the unix socket ``socket`` (a path in ``container``) of the container's own process.

    One guest-exec of ``hyper-exec mcli`` in the guest's root: no crun, no exec helper needed. None
    when the guest image has no hyper-exec. The answer is guest input: bounded (MCLI_ANSWER_LIMIT) and
    the exit code one of hyper-exec's, else a GuestReplyError.
    """
    if agent in _NO_CLIENT:
        return None
    try:
        result = agent.exec([HYPER_EXEC, "mcli", container, socket, line], timeout=timeout)
    except AgentCommandError as err:
        if err.command == "guest-exec":
            _NO_CLIENT.add(agent)
            return None
        raise
    what = f"{agent.name}: hyper-exec mcli {socket} in container {container}"
    rc, _signal = exit_of(result, what)
    if rc not in (MCLI_ANSWERED, MCLI_NOT_SENT, MCLI_CUT, MCLI_NO_SOCKET, MCLI_OTHER_PEER):
        raise GuestReplyError(f"{what}: exit code {rc}: {guest_text(result.stderr, REASON_LIMIT)}")
    if len(result.stdout) > MCLI_ANSWER_LIMIT:
        raise GuestReplyError(f"{what}: an answer of {len(result.stdout)} bytes, more than the {MCLI_ANSWER_LIMIT} it reads")
    return SocketAnswer(
        sent=rc in (MCLI_ANSWERED, MCLI_CUT),
        complete=rc == MCLI_ANSWERED,
        answer=result.stdout,
        unusable=rc in (MCLI_NO_SOCKET, MCLI_OTHER_PEER),
        reason=guest_text(result.stderr, REASON_LIMIT).strip(),
    )


def launch(agent: GuestAgent, container: str) -> None:
    """Start the container's exec helper now, in the background, for the commands to come (best effort)."""
    if agent not in _NO_CLIENT:
        _launch(agent, container)
