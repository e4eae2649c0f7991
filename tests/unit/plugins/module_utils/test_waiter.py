# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import itertools

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.waiter import Deadline, backoff, polls
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
