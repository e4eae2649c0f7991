# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""GuestAgent.spawn/wait and GuestPod.stop_many against a fake agent whose processes run side by side."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import AgentError, AgentUnavailable, ContainerError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import KILL_ARGV, ExecTimeout, GuestAgent
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.containers import GUEST_COMMAND, STOP_GRACE, GuestPod
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.fake_agent import FakeClock, Reply, ScriptedTransport

HC = GUEST_COMMAND


@dataclass
class Proc:
    """A guest process: when it ends on the fake clock (None: never), and how."""

    argv: list[str]
    ends: Optional[float]
    rc: int = 0
    stdout: str = ""
    stderr: str = ""


@dataclass
class ProcessGuest(ScriptedTransport):
    """qemu-ga with real concurrency on the fake clock: a spawned process ends ``seconds`` after its spawn.

    ``behaviour(argv)`` gives (seconds or None for never, rc, stdout, stderr). ``events`` records
    ("spawn", argv) and ("status", pid) in order; a kill (KILL_ARGV) ends its target at once.
    """

    behaviour: Callable[[list[str]], tuple[Optional[float], int, str, str]] = lambda argv: (0.0, 0, "", "")
    procs: dict[int, Proc] = field(default_factory=dict)
    events: list[tuple[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.script.setdefault("guest-exec", [self._exec])
        self.script.setdefault("guest-exec-status", [self._status])

    def _exec(self, request: dict[str, Any]) -> Reply:
        args = request["arguments"]
        argv = [args["path"], *args["arg"]]
        self.events.append(("spawn", argv))
        pid = 200 + len(self.procs)
        if tuple(argv[: len(KILL_ARGV)]) == KILL_ARGV:
            self.procs[int(argv[-1])].ends = self.clock.now
            self.procs[int(argv[-1])].rc = 137
            self.procs[pid] = Proc(argv, self.clock.now)
        else:
            seconds, rc, out, err = self.behaviour(argv)
            self.procs[pid] = Proc(argv, None if seconds is None else self.clock.now + seconds, rc, out, err)
        return Reply({"pid": pid})

    def _status(self, request: dict[str, Any]) -> Reply:
        pid = request["arguments"]["pid"]
        self.events.append(("status", pid))
        proc = self.procs[pid]
        if proc.ends is None or self.clock.now < proc.ends:
            return Reply({"exited": False})
        return Reply(
            {
                "exited": True,
                "exitcode": proc.rc,
                "out-data": base64.b64encode(proc.stdout.encode()).decode(),
                "err-data": base64.b64encode(proc.stderr.encode()).decode(),
            }
        )

    def spawned(self) -> list[list[str]]:
        return [argv for kind, argv in self.events if kind == "spawn"]


@pytest.fixture
def guest(clock: FakeClock) -> ProcessGuest:
    return ProcessGuest(clock)


@pytest.fixture
def pa(guest: ProcessGuest, clock: FakeClock) -> GuestAgent:
    return GuestAgent(guest, name="vm-under-test", clock=clock, sleep=clock.sleep)


@pytest.fixture
def pod(pa: GuestAgent, clock: FakeClock) -> GuestPod:
    return GuestPod(pa, clock=clock, sleep=clock.sleep)


def stops(table: dict[str, tuple[Optional[float], int, str]]) -> Callable[[list[str]], tuple[Optional[float], int, str, str]]:
    """hyper-container stop NAME ... takes table[NAME] = (seconds, rc, stderr); prints "stopped" on success."""

    def behaviour(argv: list[str]) -> tuple[Optional[float], int, str, str]:
        assert argv[:2] == [HC, "stop"], argv
        seconds, rc, err = table[argv[2]]
        return seconds, rc, "stopped\n" if rc == 0 else "", err

    return behaviour


# -- GuestAgent.spawn / wait -----------------------------------------------------------------------


def test_spawn_returns_the_pid_without_waiting(pa: GuestAgent, guest: ProcessGuest) -> None:
    guest.behaviour = lambda argv: (5.0, 0, "", "")
    assert pa.spawn(["sleep", "5"], env={"A": "1"}) == 200
    assert guest.names() == ["guest-exec"]
    assert guest.requests[0]["arguments"] == {"path": "sleep", "arg": ["5"], "capture-output": True, "env": ["A=1"]}


def test_spawn_checks_argv_before_any_request(pa: GuestAgent, guest: ProcessGuest) -> None:
    with pytest.raises(SpecError):
        pa.spawn([])
    assert guest.requests == []


def test_wait_collects_the_result_with_duration_from_the_wait(pa: GuestAgent, guest: ProcessGuest, clock: FakeClock) -> None:
    guest.behaviour = lambda argv: (2.0, 3, "out", "err")
    pid = pa.spawn(["work"])
    clock.now += 1.0  # something else happened in between
    result = pa.wait(pid, 10)
    assert (result.pid, result.rc, result.stdout, result.stderr) == (pid, 3, b"out", b"err")
    assert result.duration == pytest.approx(1.0, abs=0.25)  # the process had 1 s left when the wait began


def test_spawned_processes_overlap(pa: GuestAgent, guest: ProcessGuest, clock: FakeClock) -> None:
    guest.behaviour = lambda argv: (float(argv[1]), 0, "", "")
    start = clock.now
    pids = [pa.spawn(["sleep", "4"]), pa.spawn(["sleep", "6"])]
    results = [pa.wait(pid, 10) for pid in pids]
    assert [r.rc for r in results] == [0, 0]
    assert clock.now - start == pytest.approx(6.0, abs=0.25)  # max, not sum


def test_wait_kills_on_timeout_and_names_the_process(pa: GuestAgent, guest: ProcessGuest) -> None:
    guest.behaviour = lambda argv: (None, 0, "", "")
    pid = pa.spawn(["hang"])
    with pytest.raises(ExecTimeout) as err:
        pa.wait(pid, 2, what="hang")
    assert err.value.killed is True and err.value.result is not None and err.value.result.rc == 137
    assert f"hang (pid {pid}) ran longer than 2s and killed" in err.value.message
    assert guest.spawned()[-1] == [*KILL_ARGV, str(pid)]


def test_wait_without_kill_leaves_the_process_alone(pa: GuestAgent, guest: ProcessGuest) -> None:
    guest.behaviour = lambda argv: (None, 0, "", "")
    pid = pa.spawn(["sync"])
    with pytest.raises(ExecTimeout) as err:
        pa.wait(pid, 3, kill=False)
    assert err.value.killed is False and err.value.result is None
    assert "process (pid 200) ran longer than 3s; left running" in err.value.message
    assert guest.spawned() == [["sync"]]


def test_exec_is_spawn_then_wait_with_duration_from_the_spawn(clock: FakeClock) -> None:
    def run(use_exec: bool) -> tuple[list[dict[str, Any]], float]:
        guest = ProcessGuest(clock, behaviour=lambda argv: (1.5, 0, "x", ""))
        guest.script["guest-exec"] = [lambda request: Reply(guest._exec(request).value, delay=0.5)]  # a slow guest-exec reply
        agent = GuestAgent(guest, name="vm", clock=clock, sleep=clock.sleep)
        result = agent.exec(["work", "a"], timeout=7) if use_exec else agent.wait(agent.spawn(["work", "a"]), 7)
        return guest.requests, result.duration

    exec_requests, exec_duration = run(True)
    split_requests, split_duration = run(False)
    assert exec_requests == split_requests
    assert exec_duration == pytest.approx(split_duration + 0.5)  # exec counts the guest-exec round trip too


# -- GuestPod.stop_many ----------------------------------------------------------------------------


def test_stop_many_spawns_every_stop_before_waiting_for_any(pod: GuestPod, guest: ProcessGuest, clock: FakeClock) -> None:
    guest.behaviour = stops({"web": (10.0, 0, ""), "sleeper": (10.0, 0, ""), "db": (2.5, 0, "")})
    start = clock.now
    pod.stop_many([("web", 10), ("sleeper", 10), ("db", None)])
    kinds = [kind for kind, _argv in guest.events]
    assert kinds[:3] == ["spawn"] * 3 and "spawn" not in kinds[3:]
    assert guest.spawned() == [[HC, "stop", "web", "10"], [HC, "stop", "sleeper", "10"], [HC, "stop", "db"]]
    assert {pid for kind, pid in guest.events if kind == "status"} == {200, 201, 202}  # every one collected
    assert clock.now - start == pytest.approx(10.0, abs=0.55)  # the longest (seen at most PACE_CAP late), not 22.5


def test_stop_many_of_nothing_does_nothing(pod: GuestPod, guest: ProcessGuest) -> None:
    pod.stop_many([])
    assert guest.requests == []


def test_stop_many_checks_every_item_before_any_request(pod: GuestPod, guest: ProcessGuest) -> None:
    with pytest.raises(SpecError):
        pod.stop_many([("web", 10), ("Bad Name", 10)])
    with pytest.raises(SpecError):
        pod.stop_many([("web", 10), ("sleeper", -1)])
    assert guest.requests == []


def test_one_failed_stop_is_the_same_error_as_stop(pod: GuestPod, guest: ProcessGuest) -> None:
    guest.behaviour = stops({"web": (1.0, 1, "hyper-container: crun kill web: no such container\n"), "sleeper": (1.0, 0, "")})
    with pytest.raises(ContainerError) as err:
        pod.stop_many([("web", 10), ("sleeper", 10)])
    assert err.value.container == "web"
    assert err.value.message == "container web: stop failed in vm-under-test: crun kill web: no such container"
    assert {pid for kind, pid in guest.events if kind == "status"} == {200, 201}  # sleeper was still waited for


def test_failures_are_aggregated_naming_every_container(pod: GuestPod, guest: ProcessGuest, clock: FakeClock) -> None:
    guest.behaviour = stops({"web": (1.0, 1, "hyper-container: umount failed\n"), "db": (1.0, 0, ""), "sleeper": (None, 0, "")})
    start = clock.now
    with pytest.raises(ContainerError) as err:
        pod.stop_many([("web", 10), ("db", 10), ("sleeper", 2)])
    assert err.value.container == "web, sleeper"
    assert err.value.details["containers"] == ["web", "sleeper"]
    assert "web: stop failed in vm-under-test: umount failed" in err.value.message
    assert f"sleeper: stop did not finish in vm-under-test within {2 + STOP_GRACE:g}s" in err.value.message
    assert "db" not in err.value.message
    # The hung stop was killed at its own bound (2 s + grace from its spawn), not later.
    assert guest.spawned()[-1] == [*KILL_ARGV, "202"]
    assert clock.now - start == pytest.approx(2 + STOP_GRACE, abs=0.25)


def test_each_wait_is_bounded_from_its_own_spawn(pod: GuestPod, guest: ProcessGuest, clock: FakeClock) -> None:
    # web takes 15 s; sleeper hangs with a bound of 1 + grace: waiting for web must not extend sleeper's bound.
    guest.behaviour = stops({"web": (15.0, 0, ""), "sleeper": (None, 0, "")})
    start = clock.now
    with pytest.raises(ContainerError) as err:
        pod.stop_many([("web", 15), ("sleeper", 1)])
    assert err.value.container == "sleeper"
    assert clock.now - start == pytest.approx(max(15.0, 1 + STOP_GRACE), abs=0.25)


def test_a_guest_without_hyper_container_is_named(pod: GuestPod, guest: ProcessGuest) -> None:
    guest.script["guest-exec"] = [Reply(error={"class": "GenericError", "desc": "Guest agent command failed, error was 'No such file or directory'"})]
    with pytest.raises(AgentError) as err:
        pod.stop_many([("web", 10)])
    assert "rebuild its image with the hyper.pods.guest_image role" in err.value.message


def test_an_agent_lost_while_waiting_is_raised_at_once(pod: GuestPod, guest: ProcessGuest) -> None:
    guest.behaviour = stops({"web": (5.0, 0, ""), "sleeper": (5.0, 0, "")})
    guest.script["guest-exec-status"] = [Reply(raise_=AgentUnavailable("vm-under-test: guest agent is not connected"))]
    with pytest.raises(AgentUnavailable):
        pod.stop_many([("web", 10), ("sleeper", 10)])
    assert guest.names() == ["guest-exec", "guest-exec", "guest-exec-status"]
