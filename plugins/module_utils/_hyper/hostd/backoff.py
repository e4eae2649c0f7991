# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""Restart back-off: doubling delays, capped, reset after a stable run. Pure (times are passed in)."""

from __future__ import annotations

from dataclasses import dataclass

INITIAL_DELAY = 1.0
MAX_DELAY = 60.0
# A run at least this long counts as stable: the next failure starts again at INITIAL_DELAY.
STABLE_RUN = 120.0


def delay_for(attempt: int, initial: float = INITIAL_DELAY, cap: float = MAX_DELAY) -> float:
    """The wait before restart attempt (1, 2, ...): initial, twice, four times, ... up to cap."""
    if attempt < 1:
        raise ValueError(f"attempt must be at least 1, not {attempt}")
    return float(min(cap, initial * (2 ** min(attempt - 1, 62))))


@dataclass
class Backoff:
    """One pod's restart attempts since its last stable run."""

    attempt: int = 0
    started_at: float | None = None
    initial: float = INITIAL_DELAY
    cap: float = MAX_DELAY
    stable: float = STABLE_RUN

    def started(self, now: float) -> None:
        self.started_at = now

    def next(self, now: float) -> tuple[int, float]:
        """After a stop at now: the attempt number and the delay of the restart to make."""
        if self.started_at is not None and now - self.started_at >= self.stable:
            self.attempt = 0
        self.started_at = None
        self.attempt += 1
        return self.attempt, delay_for(self.attempt, self.initial, self.cap)
