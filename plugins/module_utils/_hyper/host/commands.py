# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""run(): host commands as argv lists (never a shell), with a timeout, captured output and typed errors."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from typing import Mapping, Optional, Protocol, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError

# A host tool (skopeo copy of a large image, mke2fs of a large tree) may take minutes, never hours.
DEFAULT_TIMEOUT = 600.0
# How much of stderr goes into an error message; the whole of it is in ``details``.
_MESSAGE_TAIL = 3


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str
    seconds: float


class CommandFailed(HyperError):
    """A host command could not start, exited non-zero, or outlived its timeout."""

    def __init__(self, argv: Sequence[str], rc: Optional[int], stdout: str, stderr: str, reason: str) -> None:
        tail = " | ".join(line.strip() for line in stderr.strip().splitlines()[-_MESSAGE_TAIL:] if line.strip())
        message = f"{argv[0] if argv else '?'} {reason}" + (f": {tail}" if tail else "")
        super().__init__(message, {"cmd": list(argv), "rc": rc, "stdout": stdout, "stderr": stderr})
        self.argv = tuple(argv)
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr


class CommandTimeout(CommandFailed):
    """The command was killed because it ran longer than its timeout."""


class Runner(Protocol):
    """What the image pipeline needs from ``run``; tests pass a scripted fake."""

    def __call__(
        self,
        argv: Sequence[str],
        *,
        timeout: float = ...,
        env: Optional[Mapping[str, str]] = ...,
        cwd: Optional[str] = ...,
        check: bool = ...,
    ) -> Completed: ...


def run(
    argv: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[str] = None,
    check: bool = True,
) -> Completed:
    """Run ``argv`` and return its result; raise CommandFailed unless it exits 0 (when ``check``).

    ``env`` is added to this process's environment (it does not replace it). Output is decoded as
    UTF-8 with replacement, so a tool's odd bytes never turn into a crash of our own.
    """
    if isinstance(argv, (str, bytes)) or not argv or not all(isinstance(arg, str) for arg in argv):
        raise TypeError(f"argv must be a non-empty list of strings, got {argv!r}")
    args = tuple(argv)
    full_env = None if env is None else {**os.environ, **env}
    start = time.monotonic()
    try:
        proc = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=full_env,
            cwd=cwd,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise CommandFailed(args, None, "", "", "not found: install it on the host (see bindep.txt)") from None
    except PermissionError as err:
        raise CommandFailed(args, None, "", "", f"cannot be run: {err.strerror}") from None
    except subprocess.TimeoutExpired as err:
        raise CommandTimeout(args, None, _text(err.stdout), _text(err.stderr), f"timed out after {timeout:g} s") from None
    result = Completed(args, proc.returncode, _text(proc.stdout), _text(proc.stderr), time.monotonic() - start)
    if check and result.rc != 0:
        raise CommandFailed(args, result.rc, result.stdout, result.stderr, f"failed (rc={result.rc})")
    return result


def _text(data: Optional[bytes | str]) -> str:
    if data is None:
        return ""
    if isinstance(data, str):
        return data
    return data.decode("utf-8", errors="replace")
