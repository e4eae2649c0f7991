# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""A container's log lines as the guest keeps them, read as guest input.

The guest's log writer (``hyper-exec log``, docs/runtime.md) puts the guest's clock before each line:
``SECONDS.MICROSECONDS TEXT``. Lines written before it existed, or that a hostile guest altered, have
no such prefix: they are kept whole with no time, and a ``since`` filter leaves them out. Pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

_STAMPED = re.compile(r"^([0-9]{1,12})\.([0-9]{6}) (.*)$", re.DOTALL)


@dataclass(frozen=True)
class LogLine:
    time: Optional[float]
    text: str


def parse_log_line(line: str) -> LogLine:
    match = _STAMPED.match(line)
    if match is None:
        return LogLine(None, line)
    return LogLine(int(match.group(1)) + int(match.group(2)) / 1e6, match.group(3))


def log_lines(text: str, since: Optional[float] = None) -> list[str]:
    """The lines' texts, without their times; with ``since``, only the lines stamped after it."""
    lines = [parse_log_line(line) for line in text.splitlines()]
    if since is not None:
        lines = [line for line in lines if line.time is not None and line.time > since]
    return [line.text for line in lines]
