# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""The one way JSON from the guest is read: bounded in size, depth and count before ``json.loads``.

Root in a guest controls every byte the agent sends back (replies, files the host reads, the
output of hyper-container). ``load_guest_json`` refuses a text larger than its limit, nested
deeper than ``MAX_DEPTH`` or with more than ``MAX_ITEMS`` values before parsing it, so a hostile
reply costs the host at most its size in memory and never a RecursionError; what it returns is
plain JSON that the caller still checks field by field (types, names, ranges).
"""

from __future__ import annotations

import json
import re
from typing import Any, Union

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import AgentError

# One agent reply: libvirtd caps an RPC string at 4 MiB (guest-file-read chunks fit below it).
MAX_REPLY = 4 * 1024 * 1024
# Nesting no reply of ours needs (the deepest, guest-network-get-interfaces, is 4).
MAX_DEPTH = 32
# Values (commas + 1) in one document: hyper-container status of a pod or an interface list is tens.
MAX_ITEMS = 100_000

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_BRACKETS = re.compile(r"[\[\]{}]")


class GuestReplyError(AgentError):
    """The guest sent something the host does not read: too large, too deep, too many values, not JSON, wrong shape."""


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text[:120])


def check_shape(text: str, what: str, limit: int = MAX_REPLY, depth: int = MAX_DEPTH, items: int = MAX_ITEMS) -> None:
    """Raise GuestReplyError when ``text`` is larger than ``limit`` characters, nested deeper than ``depth`` or has over ``items`` values."""
    if len(text) > limit:
        raise GuestReplyError(f"{what}: {len(text)} bytes, more than the {limit} the host reads")
    if text.count("[") + text.count("{") <= depth and text.count(",") < items:
        return  # the common reply (a base64 chunk holds none of these): no need to look closer
    bare = _STRING.sub('""', text)  # strings may hold any bracket or comma
    if bare.count(",") + 1 > items:
        raise GuestReplyError(f"{what}: more than {items} values, more than the host reads")
    level = 0
    for match in _BRACKETS.finditer(bare):
        level += 1 if match.group() in "[{" else -1
        if level > depth:
            raise GuestReplyError(f"{what}: nested deeper than {depth} levels")


def load_guest_json(data: Union[str, bytes], what: str, limit: int = MAX_REPLY, depth: int = MAX_DEPTH, items: int = MAX_ITEMS) -> Any:
    """Parse JSON the guest sent, within the bounds; a GuestReplyError naming ``what`` otherwise."""
    if isinstance(data, bytes):
        if len(data) > limit:
            raise GuestReplyError(f"{what}: {len(data)} bytes, more than the {limit} the host reads")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise GuestReplyError(f"{what}: not UTF-8 ({err.reason} at byte {err.start})") from None
    check_shape(data, what, limit, depth, items)
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as err:
        raise GuestReplyError(f"{what}: not valid JSON ({err}): {_printable(data)!r}") from None


def guest_dict(value: object, what: str) -> dict[str, Any]:
    """``value`` as a JSON object with string keys, or a GuestReplyError."""
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise GuestReplyError(f"{what}: {type(value).__name__}, not a JSON object")
    return value


def guest_int(value: object, what: str, low: int, high: int) -> int:
    """``value`` as an integer from ``low`` to ``high`` (a bool is no integer here), or a GuestReplyError."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise GuestReplyError(f"{what}: {_printable(repr(value))}, not a number from {low} to {high}")
    return value


def guest_text(data: bytes, limit: int) -> str:
    """At most ``limit`` characters of guest bytes as printable text (for messages): invalid UTF-8 and control characters become '?'."""
    return "".join(c if c.isprintable() else "?" for c in data[: limit * 4].decode("utf-8", "replace")[:limit])
