# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""haproxy's master CLI as the service container's reload sees it: ``show proc`` read as guest input.

haproxy 2.6 (Debian 12) answers ``show proc`` with a header, the master's line
``PID master RELOADS [failed: N] UPTIME VERSION``, then ``# workers`` and one line per worker. The
reload count grows by one at every reload the master carried out, the failed count at every one whose
configuration did not load (the old worker keeps serving). Pure: no guest access here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.replies import GuestReplyError, guest_text

MASTER_SOCKET = "/run/haproxy/master.sock"
SHOW_PROC = "show proc"
RELOAD = "reload"
# A master with its workers is a few lines; the lines are short.
MAX_LINES = 1000
MAX_LINE = 512
MAX_NUMBER = 2**31 - 1

_MASTER = re.compile(r"^([0-9]{1,10})\s+master\s+([0-9]{1,10})\s+\[failed:\s*([0-9]{1,10})\]")
_WORKER = re.compile(r"^([0-9]{1,10})\s+worker\s+([0-9]{1,10})\s")


@dataclass(frozen=True)
class MasterState:
    """The master's pid, reloads done and failed, and its current workers' pids (old workers left out)."""

    pid: int
    reloads: int
    failed: int
    workers: tuple[int, ...]


def _number(text: str, what: str) -> int:
    value = int(text)
    if value > MAX_NUMBER:
        raise GuestReplyError(f"{what}: {value} is out of range")
    return value


def parse_show_proc(data: bytes, what: str) -> MasterState:
    """``show proc``'s answer, checked: one master line, numbers in range; a GuestReplyError naming ``what`` otherwise."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise GuestReplyError(f"{what}: not ASCII: {guest_text(data, 120)!r}") from None
    lines = text.splitlines()
    if len(lines) > MAX_LINES or any(len(line) > MAX_LINE for line in lines):
        raise GuestReplyError(f"{what}: more than {MAX_LINES} lines or a line over {MAX_LINE} characters")
    master = None
    workers: list[int] = []
    section = "master"
    for line in lines:
        if line.startswith("#"):
            header = line.strip()
            if header == "# workers":
                section = "workers"
            elif not header.startswith("#<"):
                section = "other"  # old workers, programs
            continue
        found = _MASTER.match(line)
        if found and section == "master":
            if master is not None:
                raise GuestReplyError(f"{what}: two master lines")
            master = found
            continue
        worker = _WORKER.match(line)
        if worker and section == "workers":
            workers.append(_number(worker.group(1), what))
    if master is None:
        raise GuestReplyError(f"{what}: no master line in {guest_text(data, 200)!r}")
    return MasterState(
        pid=_number(master.group(1), what),
        reloads=_number(master.group(2), what),
        failed=_number(master.group(3), what),
        workers=tuple(workers),
    )


def reload_outcome(before: MasterState, after: MasterState) -> str:
    """``pending`` (the master has not carried out the reload yet), ``loaded`` or ``failed``."""
    if after.reloads <= before.reloads:
        return "pending"
    return "failed" if after.failed > before.failed else "loaded"
