# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import itertools

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.waiter import Deadline, backoff, paced_polls, polls
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.fake_agent import FakeClock


def test_backoff_grows_by_half_and_caps_at_200ms() -> None:
    assert list(itertools.islice(backoff(), 12)) == pytest.approx(
        [0.005, 0.0075, 0.01125, 0.016875, 0.0253125, 0.03796875, 0.056953125, 0.0854296875, 0.12814453125, 0.192216796875, 0.2, 0.2]
    )


@pytest.mark.parametrize(
    ("first", "factor", "cap", "expected"),
    [
        (0.1, 2.0, 0.3, [0.1, 0.2, 0.3, 0.3]),
        (0.5, 1.5, 0.2, [0.2, 0.2, 0.2, 0.2]),
        (0.01, 1.0, 1.0, [0.01, 0.01, 0.01, 0.01]),
    ],
)
def test_backoff_table(first: float, factor: float, cap: float, expected: list[float]) -> None:
    assert list(itertools.islice(backoff(first, factor, cap), 4)) == pytest.approx(expected)


def test_polls_first_attempt_is_immediate_and_last_is_at_the_deadline() -> None:
    clock = FakeClock()
    start = clock.now
    times = [clock.now - start for _attempt in polls(1.0, clock=clock, sleep=clock.sleep)]
    assert times[0] == 0.0
    assert times[-1] == pytest.approx(1.0)
    assert sum(clock.sleeps) == pytest.approx(1.0)  # never sleeps past the deadline
    assert max(clock.sleeps) <= 0.2
    assert len(times) == len(clock.sleeps) + 1


def test_polls_with_zero_timeout_tries_once() -> None:
    clock = FakeClock()
    assert list(polls(0, clock=clock, sleep=clock.sleep)) == [0]
    assert clock.sleeps == []


def test_polls_counts_attempts() -> None:
    clock = FakeClock()
    attempts = list(polls(0.02, clock=clock, sleep=clock.sleep))
    # sleeps: 0.005, 0.0075, then the 0.0075 left → 4 attempts
    assert attempts == [0, 1, 2, 3]
    assert clock.sleeps == pytest.approx([0.005, 0.0075, 0.0075])


def test_deadline_on_an_injected_clock() -> None:
    clock = FakeClock()
    deadline = Deadline(5.0, clock)
    assert (deadline.elapsed, deadline.remaining, deadline.expired) == (0.0, 5.0, False)
    clock.now += 7
    assert (deadline.elapsed, deadline.remaining, deadline.expired) == (7.0, 0.0, True)


def test_paced_polls_sleep_a_tenth_of_the_time_waited() -> None:
    clock = FakeClock()
    start = clock.now
    for _attempt in itertools.islice(paced_polls(600, clock=clock, sleep=clock.sleep), 60):
        pass
    # 10 ms while less than 100 ms have passed, then 10 % of the time waited.
    assert clock.sleeps[:10] == pytest.approx([0.01] * 10)
    for before, delay in zip(itertools.accumulate([0.0, *clock.sleeps]), clock.sleeps):
        assert delay == pytest.approx(min(max(before * 0.1, 0.01), 0.5))
    assert clock.now - start < 600


def test_paced_polls_see_the_end_at_most_a_tenth_late() -> None:
    # A process that ends at t is seen at the first look at or after t: at most max(10 ms, 10 %) later.
    for ends in (0.004, 0.17, 0.195, 0.9, 4.2, 60.0):
        clock = FakeClock()
        start = clock.now
        for _attempt in paced_polls(600, clock=clock, sleep=clock.sleep):
            if clock.now - start >= ends:
                break
        late = clock.now - start - ends
        assert late <= max(0.01, 0.1 * ends) + 1e-9, (ends, late)


def test_paced_polls_settle_at_the_cap_and_end_at_the_deadline() -> None:
    clock = FakeClock()
    start = clock.now
    attempts = list(paced_polls(30, clock=clock, sleep=clock.sleep))
    assert clock.now - start == pytest.approx(30)
    assert max(clock.sleeps) == pytest.approx(0.5)
    assert attempts == list(range(len(attempts)))
