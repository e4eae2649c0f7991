# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""Each pod's event journal on the host: JSON lines, root-only, bounded. Written by the host service, read by hyper_pod_info."""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Any, Mapping, Optional

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.state import hostd_dir, write_private
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.names import check_pod_name

# Lines kept per pod: the file is cut back to MAX_EVENTS once it holds twice as many, or to half of
# MAX_BYTES once it is larger. A text field holds at most MAX_TEXT characters, a line MAX_LINE bytes.
MAX_EVENTS = 200
MAX_TEXT = 500
MAX_LINE = 4096
MAX_BYTES = 256 * 1024
EVENTS = ("created", "started", "stopped", "crashed", "restarted", "restart_failed", "removed", "rebooted")


def journal_path(root: str, pod: str) -> str:
    return os.path.join(hostd_dir(root, "events"), check_pod_name(pod) + ".jsonl")


def _bounded(value: Any) -> Any:
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if isinstance(value, bool) or value is None or isinstance(value, (int, float)):
        return value
    return str(value)[:MAX_TEXT]


def record(root: str, pod: str, event: str, now: Optional[float] = None, **fields: Any) -> dict[str, Any]:
    """Append one event to the pod's journal and return it; the journal keeps its last MAX_EVENTS..2 x MAX_EVENTS lines."""
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}")
    entry = {"time": round(time.time() if now is None else now, 3), "event": event, **{k: _bounded(v) for k, v in fields.items()}}
    line = json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n"
    if len(line.encode("utf-8")) > MAX_LINE:  # many long fields: each cut shorter, so that the line parses again
        entry = {k: v[: MAX_TEXT // 5] if isinstance(v, str) else v for k, v in entry.items()}
        line = json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n"
    path = journal_path(root, pod)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(line)
        size = os.fstat(handle.fileno()).st_size
    with open(path, encoding="utf-8", errors="replace") as handle:
        lines = handle.readlines()
    if len(lines) > 2 * MAX_EVENTS or size > MAX_BYTES:
        kept: list[str] = []
        total = 0
        for kept_line in reversed(lines[-MAX_EVENTS:]):
            total += len(kept_line.encode("utf-8"))
            if total > MAX_BYTES // 2:
                break
            kept.append(kept_line)
        write_private(path, "".join(reversed(kept)))
    return entry


def remove_journal(root: str, pod: str) -> None:
    """Remove the pod's journal and its last-task mark (the pod is gone); no journal is no error."""
    base = os.path.join(root, "hostd", "events", check_pod_name(pod))
    for path in (base + ".jsonl", base + ".seen"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _parse(line: str) -> Optional[Mapping[str, Any]]:
    if len(line) > MAX_LINE:
        return None
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("time"), (int, float)) or entry.get("event") not in EVENTS:
        return None
    return entry


def read_events(root: str, pod: str, since: float = 0.0) -> list[Mapping[str, Any]]:
    """The pod's events after ``since`` (seconds since the epoch), oldest first; lines that do not parse are left out.

    At most the journal's last MAX_BYTES are read. No journal: no events. A journal this process
    may not read (it is root-only) is an error that says so, not an empty list.
    """
    path = os.path.join(root, "hostd", "events", check_pod_name(pod) + ".jsonl")
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_BYTES:
                handle.seek(size - MAX_BYTES)
                handle.readline()  # the first line read is cut: skip it
            data = handle.read(MAX_BYTES)
    except FileNotFoundError:
        return []
    except OSError as err:
        raise HyperError(
            f"pod {pod}: cannot read its events in {path}: {err.strerror} (the journal is root-only: run the task as root, become: true)",
            {"path": path},
        ) from None
    lines = data.decode("utf-8", errors="replace").splitlines()[-2 * MAX_EVENTS :]
    return [e for e in (_parse(line) for line in lines) if e is not None and float(e["time"]) > since]
