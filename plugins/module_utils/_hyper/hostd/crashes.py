# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""hyper_pod's crash report: what the pod's journal holds since the last hyper_pod task looked at it.

A task that finds crashes in the pod's journal (hostd/journal.py) since the previous task returns
``crashes`` and a warning naming libvirt's reason and the host service's restart attempts. A task
that fails on such a pod (its start failed) says so in its message; a task on a pod that keeps
crashing (CRASH_LOOP crashes since the last task, the last within backoff.STABLE_RUN seconds, and
no restart that brought it up since) fails with a message naming the crash. The host service's own
starts are not tasks: they leave the mark alone. The summary (``summarise``) and the texts are pure.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Callable, Mapping, Optional, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.info import DEFAULT_ROOT
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.backoff import STABLE_RUN
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.journal import journal_path, read_events
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.state import write_private
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.names import check_pod_name

# Crashes since the last task, the last one recent, at which a task on the pod fails.
CRASH_LOOP = 3
# Journal entries a summary carries.
MAX_SUMMARY_EVENTS = 20
RESTART_EVENTS = ("restarted", "restart_failed")


def seen_path(root: str, pod: str) -> str:
    """``<root>/hostd/events/<pod>.seen``: when a hyper_pod task last looked at the pod (next to its journal, removed with it)."""
    return journal_path(root, pod)[: -len(".jsonl")] + ".seen"


def last_seen(root: str, pod: str) -> float:
    try:
        with open(os.path.join(root, "hostd", "events", check_pod_name(pod) + ".seen"), encoding="ascii") as handle:
            return max(float(handle.read(32).strip()), 0.0)
    except (OSError, ValueError):
        return 0.0


def mark_seen(root: str, pod: str, when: float) -> None:
    with contextlib.suppress(OSError):
        write_private(seen_path(root, pod), f"{when:.3f}\n")


def _when(value: Any) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(value)))


def summarise(events: Sequence[Mapping[str, Any]]) -> Optional[dict[str, Any]]:
    """The crashes among ``events`` (oldest first) and the restarts after them; None without a crash."""
    crashes = [e for e in events if e.get("event") == "crashed"]
    if not crashes:
        return None
    restarts = [e for e in events if e.get("event") in RESTART_EVENTS]
    failed = [e for e in restarts if e.get("event") == "restart_failed"]
    attempts = [int(e["attempt"]) for e in [*crashes, *restarts] if isinstance(e.get("attempt"), int) and not isinstance(e.get("attempt"), bool)]
    reasons: list[str] = []
    for crash in crashes:
        reason = str(crash.get("reason") or "unknown")
        if reason not in reasons:
            reasons.append(reason)
    last = crashes[-1]
    summary: dict[str, Any] = {
        "count": len(crashes),
        "first": crashes[0]["time"],
        "last": last["time"],
        "reasons": reasons,
        "last_reason": str(last.get("reason") or "unknown"),
        "last_action": str(last.get("action") or ""),
        "restart_attempts": max(attempts, default=0),
        "restarts": sum(1 for e in restarts if e.get("event") == "restarted"),
        "restarts_failed": len(failed),
        "events": [dict(e) for e in events if e.get("event") in ("crashed", *RESTART_EVENTS)][-MAX_SUMMARY_EVENTS:],
    }
    if failed:
        summary["last_error"] = str(failed[-1].get("error") or "")
    return summary


def crash_text(pod: str, summary: Mapping[str, Any]) -> str:
    """One sentence for a warning or an error: how often, libvirt's reason, when, and what the host service did."""
    count = int(summary["count"])
    times = "once" if count == 1 else f"{count} times"
    text = (
        f"pod {pod} crashed {times} since the last hyper_pod task (libvirt's reason: {', '.join(summary['reasons'])};"
        f" the last at {_when(summary['last'])}: {summary['last_reason']})"
    )
    attempts = int(summary["restart_attempts"])
    if attempts:
        text += f"; the host service made {attempts} restart attempt{'s' if attempts != 1 else ''}"
        if summary["restarts_failed"]:
            text += f", {summary['restarts_failed']} failed"
            if summary.get("last_error"):
                text += f" (the last: {str(summary['last_error']).splitlines()[0][:300]})"
    elif summary.get("last_action"):
        text += f"; {summary['last_action']}"
    return text + "; see hyper_pod_info with events: true"


def keeps_crashing(summary: Mapping[str, Any], now: float) -> bool:
    """CRASH_LOOP crashes or more since the last task, the last one recent (the back-off has not reset), and no
    restart that brought the pod up since."""
    events = summary.get("events") or []
    back = bool(events) and events[-1].get("event") == "restarted"
    return int(summary["count"]) >= CRASH_LOOP and now - float(summary["last"]) < STABLE_RUN and not back


def with_crash_report(params: Mapping[str, Any], check_mode: bool, run: Callable[[], dict[str, Any]], clock: Callable[[], float] = time.time) -> dict[str, Any]:
    """Run one hyper_pod task (``run``) and report the crashes its pod had since the previous task.

    Never makes a task fail for want of a journal: a journal that cannot be read reports nothing.
    """
    name, root = params.get("name"), str(params.get("root") or DEFAULT_ROOT)
    try:
        check_pod_name(name)
    except HyperError:
        return run()  # the task itself names the bad value
    pod = str(name)
    started = clock()
    since = last_seen(root, pod)
    try:
        result = run()
    except HyperError as err:
        summary = _summary(root, pod, since)
        if summary is None:
            raise
        _mark(root, pod, check_mode, started, summary)
        raise HyperError(f"{err.message}\n{crash_text(pod, summary)}", {**err.details, "crashes": summary}) from None
    if str(params.get("state") or "started") == "absent":
        return result  # the journal went with the pod
    summary = _summary(root, pod, since)
    _mark(root, pod, check_mode, started, summary)
    if summary is None:
        return result
    text = crash_text(pod, summary)
    new_vm = {"create", "recreate"} & set(result.get("actions") or [])
    if keeps_crashing(summary, clock()) and not new_vm:
        raise HyperError(f"pod {pod} keeps crashing: {text}", {"crashes": summary, "pod": result.get("pod"), "actions": result.get("actions")})
    result["crashes"] = summary
    result["warnings"] = [*result.get("warnings", []), text]
    return result


def _summary(root: str, pod: str, since: float) -> Optional[dict[str, Any]]:
    try:
        return summarise(read_events(root, pod, since))
    except HyperError:
        return None


def _mark(root: str, pod: str, check_mode: bool, started: float, summary: Optional[Mapping[str, Any]]) -> None:
    # Check mode changes nothing, the mark neither. The next task reports what came after the last event reported here.
    if not check_mode:
        mark_seen(root, pod, max(started, float(summary["last"]) if summary else 0.0, *(float(e["time"]) for e in (summary or {}).get("events", []))))
