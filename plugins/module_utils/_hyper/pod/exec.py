# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""exec_in_pod: the hyper_exec module's one call (the command runs through guest/exec.py)."""

from __future__ import annotations

import shlex
from typing import Any, Mapping, Optional, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import READ_LIMIT
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.exec import DEFAULT_TIMEOUT, ContainerExecResult, OutputLimitError, run_in_container
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.layout import check_container_name as check_name
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.names import check_pod_name
from ansible_collections.hyper.pods.plugins.module_utils._hyper.session import Session
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import DEFAULT_URI


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


# -- the hyper_exec module -----------------------------------------------------------------------


class CommandFailed(HyperError):
    """The command ran and failed (rc, signal or timeout); the details are the module's result."""


def command_argv(argv: Optional[Sequence[Any]], command: Optional[str]) -> list[str]:
    """The argv of ``argv`` (as is) or ``command`` (split like a shell would, never run by one)."""
    if (argv is None) == (command is None):
        raise SpecError("argv", argv, "give exactly one of argv and command")
    if command is not None:
        try:
            words = shlex.split(command)
        except ValueError as err:
            raise SpecError("command", command, f"cannot be split into words: {err}") from None
        if not words:
            raise SpecError("command", command, "is empty")
        return words
    if not argv or not all(isinstance(arg, (str, int, float)) and not isinstance(arg, bool) for arg in argv):
        raise SpecError("argv", argv, "must be a non-empty list of strings")
    return [str(arg) for arg in argv]


def _strip(data: str, strip: bool) -> str:
    return data.rstrip("\r\n") if strip else data


def result_dict(result: ContainerExecResult, strip_empty_ends: bool = True) -> dict[str, Any]:
    """The module result: text decoded (invalid UTF-8 replaced), lines split."""
    stdout = _strip(_text(result.stdout), strip_empty_ends)
    stderr = _strip(_text(result.stderr), strip_empty_ends)
    return {
        "rc": result.rc,
        "signal": result.signal,
        "stdout": stdout,
        "stderr": stderr,
        "stdout_lines": stdout.splitlines(),
        "stderr_lines": stderr.splitlines(),
        "stdout_truncated": result.stdout_truncated,
        "stderr_truncated": result.stderr_truncated,
        "duration": round(result.duration, 3),
        "timed_out": result.timed_out,
        "via": result.via,
    }


def _run(
    agent: Any, container: str, argv: list[str], stdin: Optional[bytes], env: dict[str, str], params: Mapping[str, Any], timeout: float, limit: int
) -> ContainerExecResult:
    return run_in_container(
        agent,
        container,
        argv,
        stdin=stdin,
        env=env or None,
        cwd=params.get("chdir"),
        user=params.get("user"),
        timeout=timeout,
        large_output=True,
        exec_helper=bool(params.get("exec_helper", True)),
        output_limit=limit,
    )


def exec_in_pod(params: Mapping[str, Any], check_mode: bool = False, session: Optional[Session] = None) -> dict[str, Any]:
    """The hyper_exec module's one call: find the running pod, run the command, judge the result."""
    pod = check_pod_name(params.get("pod"), "pod")
    container = check_name(params.get("container"))
    argv = command_argv(params.get("argv"), params.get("command"))
    stdin: Optional[bytes] = None
    given = params.get("stdin_secret") if params.get("stdin_secret") is not None else params.get("stdin")
    if given is not None:
        text = str(given)
        if params.get("stdin_add_newline", True) and not text.endswith("\n"):
            text += "\n"
        stdin = text.encode("utf-8", errors="surrogateescape")
    env = {str(key): str(value) for key, value in (params.get("env") or {}).items()}
    timeout = float(params.get("timeout") or DEFAULT_TIMEOUT)
    limit = READ_LIMIT if params.get("output_limit") is None else params["output_limit"]
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        raise SpecError("output_limit", limit, "must be a number of bytes above 0")
    with session or Session(str(params.get("uri") or DEFAULT_URI)) as task:
        agent = task.pod_agent(task.running(pod))
        try:
            result = _run(agent, container, argv, stdin, env, params, timeout, limit)
        except OutputLimitError as err:
            raise HyperError(f"{err.message}: raise output_limit ({limit}) if that output is wanted", {"output_limit": limit}) from None
    out = result_dict(result, bool(params.get("strip_empty_ends", True)))
    # failed is explicit: Ansible otherwise fails any result whose rc is not 0.
    out.update(changed=True, failed=False, cmd=argv)
    if params.get("fail_on_rc", True):
        if result.timed_out:
            raise CommandFailed(f"{shlex.join(argv)} in container {container} of pod {pod} ran longer than {timeout:g}s and was killed", out)
        if result.rc is None:
            raise CommandFailed(f"{shlex.join(argv)} in container {container} of pod {pod} was killed by signal {result.signal}", out)
        if result.rc != 0:
            raise CommandFailed(f"{shlex.join(argv)} in container {container} of pod {pod} failed with exit code {result.rc}", out)
    return out
