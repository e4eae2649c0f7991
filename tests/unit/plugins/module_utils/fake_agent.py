# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A scripted stand-in for qemu-ga behind libvirt, and a fake clock that sleeps instantly."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Union

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError


class FakeClock:
    """Monotonic time that only moves when someone sleeps (or a scripted step takes time)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


# A step answers one request: a reply value (sent as {"return": value}), an error object
# ({"class", "desc"} sent as {"error": ...}), an exception to raise, or a callable(request) -> step.
@dataclass
class Reply:
    value: Any = None
    error: dict[str, str] | None = None
    raise_: HyperError | None = None
    delay: float = 0.0
    raw: str | None = None


Step = Union[Reply, Callable[[dict[str, Any]], Reply]]


@dataclass
class ScriptedTransport:
    """Replies to each command name from a queue; records every request and its timeout."""

    clock: FakeClock
    script: dict[str, list[Step]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    timeouts: list[int] = field(default_factory=list)
    max_requests: int = 10000  # a runaway poll loop fails the test instead of hanging it

    def on(self, name: str, *steps: Step) -> ScriptedTransport:
        self.script.setdefault(name, []).extend(steps)
        return self

    def names(self) -> list[str]:
        return [r["execute"] for r in self.requests]

    def send(self, json_text: str, timeout: int) -> str:
        request = json.loads(json_text)
        if len(self.requests) >= self.max_requests:
            raise AssertionError(f"more than {self.max_requests} agent requests: a poll loop does not stop")
        self.requests.append(request)
        self.timeouts.append(timeout)
        queue = self.script.get(request["execute"])
        if not queue:
            raise AssertionError(f"unscripted agent command {request['execute']}: {json_text}")
        step = queue.pop(0) if len(queue) > 1 else queue[0]  # the last step repeats
        reply = step(request) if callable(step) else step
        self.clock.now += reply.delay
        if reply.raise_ is not None:
            raise reply.raise_
        if reply.raw is not None:
            return reply.raw
        if reply.error is not None:
            return json.dumps({"error": reply.error})
        return json.dumps({"return": reply.value})
