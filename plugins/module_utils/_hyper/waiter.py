# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""Deadlines on the monotonic clock and short, growing sleeps between polls."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

# Polls start fast (an agent round trip is a few ms) and back off so a slow guest is not hammered.
FIRST_SLEEP = 0.005
SLEEP_FACTOR = 1.5
MAX_SLEEP = 0.2
# paced_polls: the interval is this fraction of the time waited so far, within [floor, cap].
PACE = 0.1
PACE_FLOOR = 0.01
PACE_CAP = 0.5

Clock = Callable[[], float]
Sleep = Callable[[float], None]


@dataclass
class Deadline:
    """A point in time ``seconds`` from now on ``clock``; never goes backwards with wall-clock changes."""

    seconds: float
    clock: Clock = time.monotonic
    start: float = field(init=False)

    def __post_init__(self) -> None:
        self.start = self.clock()

    @property
    def elapsed(self) -> float:
        return self.clock() - self.start

    @property
    def remaining(self) -> float:
        return max(0.0, self.seconds - self.elapsed)

    @property
    def expired(self) -> bool:
        return self.elapsed >= self.seconds


def backoff(first: float = FIRST_SLEEP, factor: float = SLEEP_FACTOR, cap: float = MAX_SLEEP) -> Iterator[float]:
    """Endless sleep lengths: first, first*factor, ... capped at ``cap``."""
    delay = first
    while True:
        yield min(delay, cap)
        delay = min(delay * factor, cap)


def polls(
    seconds: float,
    *,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
    first: float = FIRST_SLEEP,
    factor: float = SLEEP_FACTOR,
    cap: float = MAX_SLEEP,
) -> Iterator[int]:
    """Yield attempt numbers (0, 1, 2 ...) until ``seconds`` have passed, sleeping between attempts.

    The first attempt comes at once. A sleep never runs past the deadline, and one last attempt
    is made at the deadline itself, so a caller never gives up without a final look.
    """
    deadline = Deadline(seconds, clock)
    yield 0
    attempt = 1
    for delay in backoff(first, factor, cap):
        remaining = deadline.remaining
        if remaining <= 0:
            return
        if delay >= remaining:
            # Sleep to the deadline, look once more, stop (no float dust keeps us looping).
            sleep(remaining)
            yield attempt
            return
        sleep(delay)
        yield attempt
        attempt += 1


def paced_polls(
    seconds: float,
    *,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
    fraction: float = PACE,
    floor: float = PACE_FLOOR,
    cap: float = PACE_CAP,
) -> Iterator[int]:
    """Like ``polls``, with sleeps of ``fraction`` of the time waited so far, within [floor, cap].

    For waits whose length is unknown and often short (a guest process): the end is seen at most
    ``fraction`` late (or ``floor`` for short ones), where a doubling backoff can be 50 % late; a
    long wait settles at one look per ``cap`` seconds.
    """
    deadline = Deadline(seconds, clock)
    yield 0
    attempt = 1
    while True:
        remaining = deadline.remaining
        if remaining <= 0:
            return
        delay = min(max(deadline.elapsed * fraction, floor), cap)
        if delay >= remaining:
            sleep(remaining)
            yield attempt
            return
        sleep(delay)
        yield attempt
        attempt += 1
