# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""A container's health as the guest's ``hyper-container status`` reports it, checked: the guest is hostile.

The guest's supervisor runs the check (roles/guest_image: ``hyper-container health``) and keeps its
state and the last results; ``status`` prints them per container under ``health``:
``{"status", "failing_streak", "log": [{"exit_code", "duration_cs", "age_cs", "output"}]}``, the output
in base64 (at most 4 KiB each, the newest result first). Everything is bounded here: the number of
results, the size of an output, the numbers' ranges; the output becomes printable text.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Optional, TypedDict

from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.replies import GuestReplyError, guest_dict, guest_int

HEALTH_STATES = ("starting", "healthy", "unhealthy")
MAX_RESULTS = 5
MAX_OUTPUT = 4096
MAX_OUTPUT_BASE64 = (MAX_OUTPUT + 2) // 3 * 4 + 64  # the timeout note the guest appends
MAX_STREAK = 1_000_000
# Centiseconds: a check lasts at most a day; a result is at most ~100 years old.
MAX_DURATION_CS = 86400 * 100
MAX_AGE_CS = 100 * 365 * 86400 * 100


class HealthResult(TypedDict):
    exit_code: Optional[int]  # None: the check timed out
    duration: float
    age: float
    output: str


class HealthState(TypedDict):
    status: str
    failing_streak: int
    log: list[HealthResult]


def printable(data: bytes, limit: int = MAX_OUTPUT) -> str:
    """Guest bytes as text for a result: lines kept, other control characters and invalid UTF-8 as '?'."""
    text = data[:limit].decode("utf-8", "replace")
    return "".join(ch if ch.isprintable() or ch in "\n\t" else "?" for ch in text)


def _output(value: object, what: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_OUTPUT_BASE64:
        raise GuestReplyError(f"{what}: output is not a base64 text of at most {MAX_OUTPUT_BASE64} characters")
    try:
        data = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise GuestReplyError(f"{what}: output is not valid base64") from None
    return printable(data, MAX_OUTPUT + 64)


def parse_health(value: object, name: str) -> HealthState:
    """The ``health`` of container ``name`` in a status reply, or a GuestReplyError."""
    what = f"hyper-container status: container {name} health"
    data = guest_dict(value, what)
    status = data.get("status")
    if status not in HEALTH_STATES:
        raise GuestReplyError(f"{what}: unknown status {str(status)[:40]!r}")
    streak = guest_int(data.get("failing_streak"), f"{what}.failing_streak", 0, MAX_STREAK)
    log = data.get("log")
    if not isinstance(log, list) or len(log) > MAX_RESULTS:
        raise GuestReplyError(f"{what}: log is not a list of at most {MAX_RESULTS} results")
    results: list[HealthResult] = []
    for index, item in enumerate(log):
        where = f"{what}.log[{index}]"
        entry: dict[str, Any] = guest_dict(item, where)
        code = guest_int(entry.get("exit_code"), f"{where}.exit_code", -1, 255)
        duration = guest_int(entry.get("duration_cs"), f"{where}.duration_cs", 0, MAX_DURATION_CS)
        age = guest_int(entry.get("age_cs"), f"{where}.age_cs", 0, MAX_AGE_CS)
        results.append(HealthResult(exit_code=None if code == -1 else code, duration=duration / 100, age=age / 100, output=_output(entry.get("output"), where)))
    return HealthState(status=str(status), failing_streak=streak, log=results)


def last_output(state: HealthState) -> str:
    """The newest result's output, for a message ("" when the check has not run yet)."""
    return state["log"][0]["output"].strip() if state["log"] else ""
