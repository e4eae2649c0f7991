# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""Run a command in a container of a running pod: ``crun exec`` in the guest through the agent.

Used by the hyper_exec module and the connection plugin. The guest runs an argv list, never a
shell string built from user input: a fixed ``sh -c`` wrapper takes its file names and the whole
``crun exec`` argv as positional parameters (docs/exec.md).
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import (
    AgentError,
    ContainerError,
    HyperError,
    SpecError,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest import layout
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import (
    KILL_GRACE,
    MAX_REQUEST_DATA,
    READ_LIMIT,
    ExecResult,
    ExecTimeout,
    GuestAgent,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.fast_exec import run_fast
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.scripts import exec_wrapper

CRUN = "crun"
# Temporary files of one exec live next to the containers' state, on the guest's tmpfs.
EXEC_DIR = layout.EXEC_DIR
DEFAULT_TIMEOUT = 60.0
# Small guest commands around an exec (read the pid file, kill, rm, crun state).
HELPER_TIMEOUT = 10.0
# crun exec exits with 128 + N when the process it ran died by signal N.
SIGNAL_BASE = 128
MAX_SIGNAL = 64
# The pid file holds a number; anything bigger is not ours.
PID_FILE_LIMIT = 64
# Bounds the read of a container's config.json (environment lookup).
CONFIG_LIMIT = 1024 * 1024
# Text in crun's own errors when it cannot reach the container (then one crun state tells why).
CRUN_ERROR_HINTS: tuple[bytes, ...] = (b"/run/crun/", b"crun:", b"running")
USER_PATTERN = re.compile(r"[0-9]+(:[0-9]+)?")
ENV_NAME_PATTERN = re.compile(r"[^=\x00]+")

INLINE_LIMIT = exec_wrapper.INLINE_LIMIT
INLINE_MARKER = exec_wrapper.INLINE_MARKER
WRAPPER_SCRIPT = exec_wrapper.SCRIPT
SHELL_ARGV: tuple[str, ...] = ("sh", "-c", WRAPPER_SCRIPT, "sh")


@dataclass(frozen=True)
class ContainerExecResult:
    """Outcome of one command in a container. ``rc`` is None when it died by ``signal`` (or never ended)."""

    rc: Optional[int]
    signal: Optional[int]
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    duration: float
    timed_out: bool
    # "helper" (the container's exec helper, fast_exec) or "crun exec".
    via: str = "crun exec"


container_rootfs = layout.container_rootfs
check_name = layout.check_container_name


def crun_exec_argv(
    container: str,
    argv: Sequence[str],
    *,
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[str] = None,
    user: Optional[str] = None,
    pid_file: Optional[str] = None,
) -> list[str]:
    """``crun exec [--pid-file F] [--env K=V ...] [--cwd DIR] [--user UID[:GID]] NAME argv...``, checked."""
    check_name(container)
    if isinstance(argv, (str, bytes)) or not argv or not all(isinstance(arg, str) for arg in argv) or not argv[0]:
        raise SpecError("argv", argv, "must be a non-empty list of strings, the program first")
    if any("\x00" in arg for arg in argv):
        raise SpecError("argv", list(argv), "must not contain NUL characters")
    command = [CRUN, "exec"]
    if pid_file is not None:
        command += ["--pid-file", pid_file]
    for key, value in (env or {}).items():
        if not isinstance(key, str) or not ENV_NAME_PATTERN.fullmatch(key) or not isinstance(value, str) or "\x00" in value:
            raise SpecError("env", key, "names must be non-empty strings without '=' and values strings, neither with NUL")
        command += ["--env", f"{key}={value}"]
    if cwd is not None:
        if not isinstance(cwd, str) or not cwd.startswith("/") or "\x00" in cwd:
            raise SpecError("cwd", cwd, "must be an absolute path in the container")
        command += ["--cwd", cwd]
    if user is not None:
        if not isinstance(user, str) or not USER_PATTERN.fullmatch(user):
            raise SpecError("user", user, "must be a numeric UID or UID:GID (crun does not resolve user names)")
        command += ["--user", user]
    return [*command, container, *argv]


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _rc_and_signal(result: ExecResult) -> tuple[Optional[int], Optional[int]]:
    """crun reports a process killed by signal N as exit code 128 + N; split that back out."""
    if result.rc is None:
        return None, result.signal
    if SIGNAL_BASE < result.rc <= SIGNAL_BASE + MAX_SIGNAL:
        return None, result.rc - SIGNAL_BASE
    return result.rc, None


class _TempFiles:
    """Names of one exec's guest files (pid, stdin, stdout, stderr) and their removal."""

    def __init__(self, agent: GuestAgent) -> None:
        self.agent = agent
        base = f"{EXEC_DIR}/exec-{secrets.token_hex(6)}"
        self.pid = f"{base}.pid"
        self.stdin = f"{base}.in"
        self.stdout = f"{base}.out"
        self.stderr = f"{base}.err"

    def remove(self) -> None:
        """Best effort: never hides the real outcome."""
        with contextlib.suppress(HyperError):
            self.agent.exec(["rm", "-f", self.pid, self.stdin, self.stdout, self.stderr], timeout=HELPER_TIMEOUT)


def run_in_container(
    agent: GuestAgent,
    container: str,
    argv: Sequence[str],
    *,
    stdin: Optional[bytes] = None,
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[str] = None,
    user: Optional[str] = None,
    timeout: float = DEFAULT_TIMEOUT,
    large_output: bool = False,
    exec_helper: bool = True,
    output_limit: int = READ_LIMIT,
) -> ContainerExecResult:
    """Run ``argv`` in ``container`` of the guest behind ``agent``; wait up to ``timeout`` seconds.

    Without ``large_output`` qemu-ga captures stdout and stderr: at most 16 MiB each (then the
    ``*_truncated`` flags are set), and a reply above libvirt's 4 MiB fails the call. With
    ``large_output`` the guest writes them to files: when both are at most INLINE_LIMIT the
    wrapper hands them back inline (no extra round trip), otherwise they are read back in chunks
    and removed: any size. stdin above one agent request goes through a file too.

    On timeout the process is killed (SIGKILL, through the pid crun wrote) and the result has
    ``timed_out``. A container the guest does not run raises ContainerError; a missing program is
    a result (crun's message on stderr, non-zero rc). A stream longer than ``output_limit`` bytes is
    an OutputLimitError (the guest is not trusted to end its output), on either path.

    With ``exec_helper`` the container's exec helper runs the command when it is there (fast_exec,
    the same process attributes at a fraction of the cost); otherwise, and without it, crun exec.
    """
    if isinstance(output_limit, bool) or not isinstance(output_limit, int) or output_limit <= 0:
        raise SpecError("output_limit", output_limit, "must be a number of bytes above 0")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise SpecError("timeout", timeout, "must be a number of seconds above 0")
    if stdin is not None and not isinstance(stdin, bytes):
        raise SpecError("stdin", type(stdin).__name__, "must be bytes")
    files = _TempFiles(agent)
    crun_exec_argv(container, argv, env=env, cwd=cwd, user=user)  # SpecError before any agent call
    if exec_helper:
        start = time.monotonic()
        try:
            fast = run_fast(
                agent, container, argv, stdin=stdin, env=env, cwd=cwd, user=user, timeout=timeout, large_output=large_output, output_limit=output_limit
            )
        except AgentError as err:
            if err.details.get("limit") == output_limit:
                raise OutputLimitError(f"{err.message} (the command's output)", output_limit) from None
            raise
        if fast is not None and fast.lost is not None:
            _check_container(agent, container)
            raise ContainerError(container, f"its exec helper in {agent.name} went away while the command ran; it may have run ({fast.lost})")
        if fast is not None:
            _check_output(agent, container, argv, fast.stdout, fast.stderr, output_limit)
            return ContainerExecResult(
                rc=fast.rc,
                signal=fast.signal,
                stdout=fast.stdout,
                stderr=fast.stderr,
                stdout_truncated=fast.stdout_truncated,
                stderr_truncated=fast.stderr_truncated,
                duration=time.monotonic() - start,
                timed_out=fast.timed_out,
                via="helper",
            )
    if env:
        # crun exec --env replaces the process environment (PATH included); docker exec adds to it.
        env = {**container_env(agent, container), **env}
    command = crun_exec_argv(container, argv, env=env, cwd=cwd, user=user, pid_file=files.pid)
    stdin_file = stdin is not None and len(stdin) > MAX_REQUEST_DATA
    cleanup = large_output or stdin_file
    start = time.monotonic()
    try:
        if stdin_file and stdin is not None:
            agent.write_file(files.stdin, stdin)
        wrapper = [
            *SHELL_ARGV,
            files.pid,
            files.stdin if stdin_file else "",
            files.stdout if large_output else "",
            files.stderr if large_output else "",
            *command,
        ]
        pid = agent.spawn(wrapper, stdin=None if stdin_file else stdin)
        timed_out = False
        try:
            result: Optional[ExecResult] = agent.wait(pid, timeout, what=f"{argv[0]} in container {container}", kill=False)
        except ExecTimeout:
            timed_out = cleanup = True
            result = _kill(agent, files, pid, f"{argv[0]} in container {container}")
        rc, signal = _rc_and_signal(result) if result is not None else (None, None)
        stdout = result.stdout if result is not None else b""
        stderr = result.stderr if result is not None else b""
        stdout_truncated = result.stdout_truncated if result is not None else False
        stderr_truncated = result.stderr_truncated if result is not None else False
        marker = INLINE_MARKER.encode("ascii")
        if large_output and result is not None and stderr.endswith(marker):
            stderr = stderr[: -len(marker)]  # came back inline; the wrapper removed the files
            cleanup = stdin_file or timed_out
        elif large_output:
            stdout = _read_optional(agent, files.stdout, output_limit)
            stderr = _read_optional(agent, files.stderr, output_limit)
        _check_output(agent, container, argv, stdout, stderr, output_limit)
        if not timed_out and rc is not None and rc != 0 and any(hint in stderr for hint in CRUN_ERROR_HINTS):
            _check_container(agent, container)
    finally:
        if cleanup:
            files.remove()
    return ContainerExecResult(
        rc=rc,
        signal=signal,
        stdout=stdout,
        stderr=stderr,
        stdout_truncated=stdout_truncated,
        stderr_truncated=stderr_truncated,
        duration=time.monotonic() - start,
        timed_out=timed_out,
    )


def _check_output(agent: GuestAgent, container: str, argv: Sequence[str], stdout: bytes, stderr: bytes, output_limit: int) -> None:
    for stream, data in (("stdout", stdout), ("stderr", stderr)):
        if len(data) > output_limit:
            message = f"{agent.name}: the {stream} of {argv[0]} in container {container} is larger than the limit of {output_limit} bytes"
            raise OutputLimitError(message, output_limit)


def _kill(agent: GuestAgent, files: _TempFiles, pid: int, what: str) -> Optional[ExecResult]:
    """SIGKILL the process crun started (its pid file), then collect crun; kill crun itself if it hangs on."""
    with contextlib.suppress(HyperError, ValueError):
        target = int(agent.read_file(files.pid, limit=PID_FILE_LIMIT).decode("ascii").strip())
        agent.exec(["kill", "-KILL", str(target)], timeout=HELPER_TIMEOUT)
    try:
        return agent.wait(pid, KILL_GRACE, what=what, kill=True)
    except ExecTimeout as err:
        return err.result


class OutputLimitError(AgentError):
    """A command's stdout or stderr is longer than the caller's bound; ``details["limit"]`` is the bound."""

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message, {"limit": limit})
        self.limit = limit


def _read_optional(agent: GuestAgent, path: str, limit: int = READ_LIMIT) -> bytes:
    """A redirected stream; empty when the file was never created (crun failed before the redirect mattered)."""
    try:
        return agent.read_file(path, limit=limit)
    except AgentError as err:
        if err.details.get("limit") == limit:
            raise OutputLimitError(f"{err.message} (the command's output)", limit) from None
        if "No such file" in str(err) or "not found" in str(err):
            return b""
        raise


def container_env(agent: GuestAgent, container: str) -> dict[str, str]:
    """The container's environment from its config.json in the guest (``process.env``)."""
    path = layout.container_file(container, layout.CONFIG_FILE)
    try:
        data = agent.read_file(path, limit=CONFIG_LIMIT)
    except AgentError:
        _check_container(agent, container)
        raise
    try:
        config = json.loads(data)
        entries = config["process"].get("env") or []
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise AgentError(f"{agent.name}: {path} is not an OCI runtime config with process.env ({err})") from None
    env: dict[str, str] = {}
    for entry in entries:
        if isinstance(entry, str) and "=" in entry:
            key, value = entry.split("=", 1)
            env[key] = value
    return env


def _check_container(agent: GuestAgent, container: str) -> None:
    """After a crun failure: raise ContainerError when the container does not exist or is not running."""
    result = agent.exec([CRUN, "state", container], timeout=HELPER_TIMEOUT)
    if result.rc != 0:
        reason = _text(result.stderr).strip().removeprefix("crun: ")
        raise ContainerError(container, f"is not a container of {agent.name} ({reason or 'crun state failed'})")
    state = re.search(rb'"status"\s*:\s*"([a-z]+)"', result.stdout)
    status = _text(state.group(1)) if state else "unknown"
    if status != "running":
        raise ContainerError(container, f"is {status} in {agent.name}, not running: start its pod again with hyper.pods.hyper_pod", details={"state": status})
