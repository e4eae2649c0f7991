# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""hyper_pod's wait_healthy against a scripted guest: waits, fails at once when unhealthy or exited, times out naming the rest."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import ContainerError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.container_options import ContainerOptions, Healthcheck
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.health import check_healthy_timeout, container_health, wait_healthy
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredContainer

CHECK = ContainerOptions(healthcheck=Healthcheck(("true",), 1.0, 1.0, 3, 0.0))


def stored(name: str, options: ContainerOptions = CHECK) -> StoredContainer:
    return StoredContainer(name, "busybox", "busybox", None, None, None, (), None, None, "never", "SIGTERM", 10, options=options)


def entry(status: str = "running", health: Optional[str] = None, output: str = "", code: Optional[int] = 1) -> dict[str, Any]:
    out: dict[str, Any] = {"status": status, "pid": 5, "exit_code": None, "restarts": 0}
    if health is not None:
        log = [{"exit_code": code, "duration": 0.1, "age": 0.5, "output": output}] if output else []
        out["health"] = {"status": health, "failing_streak": 3 if health == "unhealthy" else 0, "log": log}
    return out


class Guest:
    def __init__(self, replies: Sequence[dict[str, Any]]) -> None:
        self.replies = list(replies)
        self.calls = 0

    def status(self) -> dict[str, Any]:
        self.calls += 1
        return self.replies[min(self.calls, len(self.replies)) - 1]

    def logs(self, name: str, lines: int) -> str:
        return f"{name} log line\n"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def run(replies: Sequence[dict[str, Any]], containers: Sequence[StoredContainer], timeout: float = 10.0) -> tuple[dict[str, str], Guest]:
    guest, clock = Guest(replies), Clock()
    return wait_healthy(guest, containers, timeout, clock=clock, sleep=clock.sleep), guest  # type: ignore[arg-type]


def test_waits_until_every_checked_container_is_healthy() -> None:
    replies = [
        {"web": entry(), "db": entry(health="starting"), "plain": entry()},
        {"web": entry(health="starting"), "db": entry(health="healthy", output="ok", code=0), "plain": entry()},
        {"web": entry(health="healthy"), "db": entry(health="healthy"), "plain": entry(status="exited")},
    ]
    result, guest = run(replies, [stored("web"), stored("db"), stored("plain", ContainerOptions())])
    assert result == {"web": "healthy", "db": "healthy"} and guest.calls == 3


def test_nothing_to_wait_for_asks_nobody() -> None:
    result, guest = run([], [stored("plain", ContainerOptions())])
    assert result == {} and guest.calls == 0


def test_unhealthy_fails_at_once_with_the_output_and_the_log() -> None:
    with pytest.raises(ContainerError) as failed:
        run([{"web": entry(health="unhealthy", output="connection refused\n")}], [stored("web")])
    err = failed.value
    assert "container web: is unhealthy (3 failed checks in a row); last check: exit code 1, output:\nconnection refused" in err.message
    assert err.details["log_tail"] == ["web log line"] and err.details["health"]["status"] == "unhealthy"


def test_an_exited_container_fails() -> None:
    with pytest.raises(ContainerError, match="container web: exited before its healthcheck passed; the check has not finished once yet"):
        run([{"web": entry(status="exited", health="starting")}], [stored("web")])


def test_a_timeout_names_the_containers_still_starting() -> None:
    with pytest.raises(ContainerError, match=r"container web: did not become healthy within 5s \(nor did db\); last check: timed out, output:\nslow"):
        run([{"web": entry(health="starting", output="slow", code=None), "db": entry(health="starting")}], [stored("web"), stored("db")], 5.0)


def test_a_container_the_guest_does_not_know_fails() -> None:
    with pytest.raises(ContainerError, match="container web: is not in the guest"):
        run([{}], [stored("web")])


def test_the_view() -> None:
    assert container_health(stored("plain", ContainerOptions()), entry(health="healthy"), True) is None
    assert container_health(stored("web"), entry(health="healthy"), False) is None
    assert container_health(stored("web"), entry(), True) == {"status": "starting", "failing_streak": 0, "log": []}
    assert container_health(stored("web"), entry(health="unhealthy", output="x"), True)["log"][0]["output"] == "x"  # type: ignore[index]


@pytest.mark.parametrize("value", [0, -1, "10", True, 86401])
def test_bad_timeouts(value: Any) -> None:
    with pytest.raises(SpecError, match="wait_healthy_timeout"):
        check_healthy_timeout(value)
    assert check_healthy_timeout(None) == 120.0 and check_healthy_timeout(30) == 30.0
