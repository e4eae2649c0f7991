# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""GuestAgent's poll pace: a process's end is seen at most ``pace`` of its run time late (or the 10 ms floor)."""

from __future__ import annotations

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import GuestAgent
from ansible_collections.hyper.pods.plugins.module_utils._hyper.waiter import PACE, PACE_FLOOR
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.fake_agent import FakeClock, Reply, ScriptedTransport


def run_until(pace: float, ends_at: float) -> tuple[float, int]:
    """(seconds from the spawn until the host saw the exit, status polls) for a process that runs ``ends_at`` seconds."""
    clock = FakeClock()
    transport = ScriptedTransport(clock)
    start = clock.now
    transport.on("guest-exec", Reply({"pid": 7}))
    transport.on("guest-exec-status", lambda request: Reply({"exited": clock.now - start >= ends_at, "exitcode": 0}))
    agent = GuestAgent(transport, clock=clock, sleep=clock.sleep) if pace == PACE else GuestAgent(transport, clock=clock, sleep=clock.sleep, pace=pace)
    result = agent.exec(["true"], timeout=600)
    assert result.rc == 0
    return clock.now - start, transport.names().count("guest-exec-status")


@pytest.mark.parametrize(
    ("pace", "ends_at"),
    [
        (PACE, 0.05),
        (PACE, 2.0),
        (PACE, 30.0),
        (0.05, 0.05),
        (0.05, 2.0),
        (0.05, 30.0),
        (0.02, 2.0),
    ],
)
def test_the_end_is_seen_within_the_pace(pace: float, ends_at: float) -> None:
    seen, _polls = run_until(pace, ends_at)
    assert ends_at <= seen <= ends_at * (1 + pace) + PACE_FLOOR + 1e-9


def test_the_default_pace_is_the_waiters() -> None:
    assert GuestAgent(ScriptedTransport(FakeClock())).pace == PACE


def test_a_finer_pace_looks_more_often_and_sees_the_end_sooner() -> None:
    coarse_seen, coarse_polls = run_until(PACE, 2.05)
    fine_seen, fine_polls = run_until(0.05, 2.05)
    assert fine_seen < coarse_seen
    assert coarse_polls < fine_polls < 3 * coarse_polls
