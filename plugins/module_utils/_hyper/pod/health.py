# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""Containers' healthchecks on the host side: their state in the ``pod`` view, and hyper_pod's ``wait_healthy``.

The guest's supervisor runs the checks (docs/containers.md, "Healthchecks"); the host only reads
their state through ``hyper-container status`` (validated in guest/health.py).
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Optional, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import ContainerError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredContainer
from ansible_collections.hyper.pods.plugins.module_utils._hyper.session import GuestPodApi
from ansible_collections.hyper.pods.plugins.module_utils._hyper.waiter import Clock, Deadline, Sleep, backoff

DEFAULT_HEALTHY_TIMEOUT = 120
MAX_HEALTHY_TIMEOUT = 86400
LOG_TAIL_LINES = 20
# A message shows this much of a check's output.
MESSAGE_OUTPUT = 1000
POLL_FIRST = 0.25
POLL_CAP = 2.0
# Container states from which it may still become healthy.
ALIVE = ("starting", "running", "restarting")


def container_health(container: StoredContainer, live: Mapping[str, Any], known: bool) -> Optional[dict[str, Any]]:
    """The ``health`` of a container in the view: None without a check or when the guest cannot say."""
    if container.options.healthcheck is None or not known:
        return None
    health = live.get("health")
    if not isinstance(health, Mapping):  # the check has not started yet (the container is starting)
        return {"status": "starting", "failing_streak": 0, "log": []}
    return {"status": health["status"], "failing_streak": health["failing_streak"], "log": [dict(r) for r in health["log"]]}


def check_healthy_timeout(value: object) -> float:
    if value is None:
        return float(DEFAULT_HEALTHY_TIMEOUT)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_HEALTHY_TIMEOUT:
        raise SpecError("wait_healthy_timeout", value, f"must be a whole number of seconds from 1 to {MAX_HEALTHY_TIMEOUT}")
    return float(value)


def _outputs(health: Optional[Mapping[str, Any]]) -> str:
    results = list((health or {}).get("log") or [])
    if not results:
        return "the check has not finished once yet"
    last = results[0]
    code = "timed out" if last["exit_code"] is None else f"exit code {last['exit_code']}"
    output = str(last["output"]).strip()[:MESSAGE_OUTPUT]
    return f"last check: {code}" + (f", output:\n{output}" if output else ", no output")


def _log_tail(guest: GuestPodApi, name: str) -> list[str]:
    try:
        return guest.logs(name, LOG_TAIL_LINES).splitlines()
    except Exception:
        return []


def wait_healthy(
    guest: GuestPodApi,
    containers: Sequence[StoredContainer],
    timeout: float,
    *,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> dict[str, str]:
    """Poll until every container with a healthcheck is ``healthy``; return ``{name: "healthy"}``.

    Fails (ContainerError with the check's last output and the container's log tail) at once when
    one turns ``unhealthy`` or its container exits, and at ``timeout`` for the ones still starting.
    """
    names = [c.name for c in containers if c.options.healthcheck is not None]
    if not names:
        return {}
    deadline = Deadline(timeout, clock)
    delays = backoff(POLL_FIRST, cap=POLL_CAP)
    pending = list(names)
    states: Mapping[str, Any] = {}
    while True:
        states = guest.status()
        pending = []
        for name in names:
            state = states.get(name)
            if state is None:
                raise ContainerError(name, "is not in the guest: it was not started since the VM booted")
            health = state.get("health")
            status = health["status"] if isinstance(health, Mapping) else "starting"
            details = {"health": dict(health) if isinstance(health, Mapping) else None, "state": state.get("status")}
            if status == "healthy":
                continue
            if status == "unhealthy":
                reason = f"is unhealthy ({health['failing_streak']} failed checks in a row); {_outputs(health)}"
                raise ContainerError(name, reason, _log_tail(guest, name), details)
            if state.get("status") not in ALIVE:
                raise ContainerError(name, f"{state.get('status')} before its healthcheck passed; {_outputs(health)}", _log_tail(guest, name), details)
            pending.append(name)
        if not pending:
            return dict.fromkeys(names, "healthy")
        if deadline.remaining <= 0:
            break
        sleep(min(next(delays), max(deadline.remaining, 0.0)))
    name = pending[0]
    health = states[name].get("health")
    others = f" (nor did {', '.join(pending[1:])})" if len(pending) > 1 else ""
    raise ContainerError(
        name,
        f"did not become healthy within {timeout:g}s{others}; {_outputs(health if isinstance(health, Mapping) else None)}",
        _log_tail(guest, name),
        {"health": dict(health) if isinstance(health, Mapping) else None, "state": states[name].get("status")},
    )
