# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""When a started pod's containers count as up: hyper_pod's ``wait_settle`` (docs/runtime.md, "When a start returns").

Pure: the callers poll ``hyper-container status`` and hand each answer to ``SettleWatch.observe``
with the host's clock read before the call was sent and after its answer came back.

A container counts as up once it has been seen running with a pid and then, ``settle`` seconds
later, still with the same pid and no restart in between. Each container's settle is counted from
its own first sighting (not from the last container's start). The count is conservative: it runs
from the *answer* of the status call that first saw the container running to the *sending* of the
call that saw it again, so the container ran at least ``settle`` seconds, whatever the agent's
latency. With ``settle`` 0 a container is up as soon as it is seen running with its pid.

A container that exited, was stopped, restarted or was never started before it counted as up is a
failure: the caller raises it with the container's log tail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError

# The default of hyper_pod's wait_settle: long enough that a command which fails at once
# (``sh -c 'exit 3'``, a missing binary, a bad argument) fails the start rather than the next task,
# short enough to stay off most of the cold start's critical path (docs/benchmarks.md).
DEFAULT_SETTLE = 0.2
MAX_SETTLE = 60.0


def check_settle(value: object, option: str = "wait_settle") -> float:
    """``wait_settle`` as seconds: None → the default; a number from 0 to MAX_SETTLE, else a SpecError."""
    if value is None:
        return DEFAULT_SETTLE
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise SpecError(option, value, f"must be a number of seconds from 0 to {MAX_SETTLE:g}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= MAX_SETTLE:
        raise SpecError(option, value, f"must be a number of seconds from 0 to {MAX_SETTLE:g}")
    return round(float(value), 2)


def not_running_reason(state: Mapping[str, Any]) -> str:
    """Why a container that is neither starting nor running is not up, as the error message says it."""
    status = state.get("status")
    code = state.get("exit_code")
    exited = f"exited with code {code}" if code is not None else "exited"
    return {
        "created": "was written but never started",
        "exited": exited,
        "restarting": f"{exited} and is restarting (restart {state.get('restarts', 0)})",
        "stopped": "was stopped",
    }.get(str(status), f"is in an unknown state ({status})")


@dataclass(frozen=True)
class Verdict:
    """What one status answer says: all up, a failure, or which containers are still pending and for how long."""

    up: bool
    failed: Optional[str] = None  # the first container that failed (its state is in the answer)
    missing: bool = False  # ``failed`` is not in the answer at all
    pending: tuple[str, ...] = ()
    starting: bool = False  # one of ``pending`` has no running pid yet: poll at the caller's pace
    settle_left: float = 0.0  # otherwise: how long from the answer until the next call may confirm them all


@dataclass
class SettleWatch:
    """The settle of ``names`` across status answers (see the module's docstring)."""

    names: Sequence[str]
    settle: float
    # name -> (answer time of the first sighting, pid, restarts)
    seen: dict[str, tuple[float, int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.names = list(dict.fromkeys(self.names))

    def observe(self, states: Mapping[str, Mapping[str, Any]], sent: float, answered: float) -> Verdict:
        """One status answer: ``sent`` and ``answered`` are the host's clock around the call."""
        pending: list[str] = []
        starting = False
        settle_left = 0.0
        for name in self.names:
            state = states.get(name)
            if state is None:
                return Verdict(False, failed=name, missing=True)
            status, pid, restarts = state.get("status"), state.get("pid"), int(state.get("restarts") or 0)
            if status == "running" and isinstance(pid, int):
                first = self.seen.get(name)
                if first is None or first[1:] != (pid, restarts):
                    self.seen[name] = first = (answered, pid, restarts)
                    if self.settle <= 0:
                        continue
                elif sent - first[0] >= self.settle:
                    continue
                settle_left = max(settle_left, first[0] + self.settle - answered)
            elif status in ("starting", "running"):
                starting = True  # running without a pid: crun has not written it yet
            else:
                return Verdict(False, failed=name)
            pending.append(name)
        if not pending:
            return Verdict(True)
        return Verdict(False, pending=tuple(pending), starting=starting, settle_left=settle_left)
