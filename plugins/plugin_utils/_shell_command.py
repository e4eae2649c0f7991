# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""The argv of a command the hyper connection is handed: Ansible's own shell wrapper run as it is.

Ansible hands a connection ``EXECUTABLE -c 'COMMAND && sleep 0'`` (``ActionBase._low_level_execute_command``:
the play's shell executable, ``/bin/sh`` by default, and ``sleep 0`` against an SSH race that drops
output). The connection used to run that whole string as ``/bin/sh -c STRING``: a shell that starts
the shell Ansible asked for, which then runs ``sleep 0``: two more process starts per command, ~75 ms
in a Debian container under TCG (of ~120 to 230 ms for the small commands of a ``copy``).

``command_argv`` returns ``[EXECUTABLE, "-c", COMMAND]`` when the string is exactly that wrapper (it
re-quotes the parsed parts and compares, so every expansion the outer shell would have done is ruled
out: a single-quoted word is passed literally), and drops the ``&& sleep 0`` where removing it cannot
change how COMMAND parses or ends (one line, not ending in an operator or a backslash): ``X && sleep 0``
ends as ``X`` does. Anything else runs as before, ``/bin/sh -c STRING``. Only the argv is built here;
no text from the command is ever put into another shell string.
"""

from __future__ import annotations

import re
import shlex
from typing import Optional

DEFAULT_SHELL = "/bin/sh"
# What ActionBase appends (shell plugin ``append_command(cmd, "sleep 0")`` with ``&&``).
SLEEP_SUFFIX = " && sleep 0"
# An executable Ansible may name: an absolute path that shlex.quote leaves alone.
EXECUTABLE = re.compile(r"/[A-Za-z0-9_./+-]*")
# A command may not end in these before the suffix: the suffix would then be part of a larger syntax.
OPEN_ENDINGS = ("&", "|", ";", "\\", "(", "{", "!")


def unwrap(command: str) -> Optional[tuple[str, str]]:
    """(executable, body) when ``command`` is exactly ``EXECUTABLE -c QUOTED_BODY`` as Ansible builds it, else None."""
    try:
        words = shlex.split(command, posix=True)
    except ValueError:
        return None
    if len(words) != 3 or words[1] != "-c" or not words[2]:
        return None
    executable, body = words[0], words[2]
    if not EXECUTABLE.fullmatch(executable) or "\x00" in body:
        return None
    # The exact string shlex.quote makes: single quotes only, so the outer shell would expand nothing.
    if f"{executable} -c {shlex.quote(body)}" != command:
        return None
    return executable, body


def drop_sleep(body: str) -> str:
    """``body`` without Ansible's trailing `` && sleep 0`` where that cannot change what ``body`` does."""
    if not body.endswith(SLEEP_SUFFIX):
        return body
    head = body[: -len(SLEEP_SUFFIX)]
    if not head.strip() or "\n" in head or "\r" in head or head != head.rstrip() or head.endswith(OPEN_ENDINGS) or head.endswith("&&") or "#" in head:
        return body
    return head


def command_argv(command: str) -> list[str]:
    """The argv that runs ``command`` (the string Ansible handed the connection) in the container."""
    wrapped = unwrap(command)
    if wrapped is None:
        return [DEFAULT_SHELL, "-c", command]
    executable, body = wrapped
    return [executable, "-c", drop_sleep(body)]
