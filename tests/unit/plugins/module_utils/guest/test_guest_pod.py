# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""GuestPod against a fake guest: hyper-container answers by argv, files land in a dict."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, Union

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import AgentError, ContainerError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest import containers as gp
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import ExecResult, GuestAgent
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.containers import GUEST_COMMAND, GuestPod, parse_status
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.fake_agent import FakeClock, Reply, ScriptedTransport, Step

HC = GUEST_COMMAND
SERIAL = "hyper-img-0123456789"
CONFIG = {"ociVersion": "1.0.2", "root": {"path": "rootfs", "readonly": False}, "process": {"args": ["sleep", "1000"]}}


@dataclass
class Run:
    """What one guest command does: exit code, output, and how long it takes on the fake clock."""

    rc: int = 0
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0


RunStep = Union[Run, Callable[[list[str]], Run]]


@dataclass
class FakeGuest(ScriptedTransport):
    """qemu-ga of a guest with hyper-container: guest-exec answers by argv prefix, guest-file-* keep files.

    Commands scripted with ``on()`` still win, so a test can make any agent call fail.
    """

    runs: dict[tuple[str, ...], list[RunStep]] = field(default_factory=dict)
    argvs: list[list[str]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    _results: dict[int, Run] = field(default_factory=dict)
    _handles: dict[int, str] = field(default_factory=dict)
    _simulating: set[str] = field(default_factory=set)

    def run(self, prefix: tuple[str, ...], *steps: RunStep) -> FakeGuest:
        self.runs.setdefault(prefix, []).extend(steps)
        return self

    def __post_init__(self) -> None:
        for name in self._SIMULATED:
            self.script[name] = [getattr(self, "_" + name.replace("-", "_"))]
        self._simulating = set(self._SIMULATED)

    _SIMULATED = ("guest-exec", "guest-exec-status", "guest-file-open", "guest-file-write", "guest-file-close")

    def on(self, name: str, *steps: Step) -> FakeGuest:
        if name in self._simulating:  # scripted replies replace the simulation of that command
            self._simulating.discard(name)
            self.script[name] = []
        super().on(name, *steps)
        return self

    def _pick(self, argv: list[str]) -> Run:
        matches = [prefix for prefix in self.runs if tuple(argv[: len(prefix)]) == prefix]
        if not matches:
            raise AssertionError(f"unscripted guest command {argv}")
        queue = self.runs[max(matches, key=len)]
        step = queue.pop(0) if len(queue) > 1 else queue[0]
        return step(argv) if callable(step) else step

    def _guest_exec(self, request: dict[str, Any]) -> Reply:
        args = request["arguments"]
        assert isinstance(args["arg"], list), "argv lists only, never a shell string"
        argv = [args["path"], *args["arg"]]
        self.argvs.append(argv)
        pid = 100 + len(self.argvs)
        self._results[pid] = self._pick(argv)
        return Reply({"pid": pid})

    def _guest_exec_status(self, request: dict[str, Any]) -> Reply:
        run = self._results[request["arguments"]["pid"]]
        return Reply(
            {
                "exited": True,
                "exitcode": run.rc,
                "out-data": base64.b64encode(run.stdout.encode()).decode(),
                "err-data": base64.b64encode(run.stderr.encode()).decode(),
            },
            delay=run.seconds,
        )

    def _guest_file_open(self, request: dict[str, Any]) -> Reply:
        handle = 1000 + len(self._handles)
        self._handles[handle] = request["arguments"]["path"]
        self.files[request["arguments"]["path"]] = b""
        return Reply(handle)

    def _guest_file_write(self, request: dict[str, Any]) -> Reply:
        data = base64.b64decode(request["arguments"]["buf-b64"])
        self.files[self._handles[request["arguments"]["handle"]]] += data
        return Reply({"count": len(data), "eof": False})

    def _guest_file_close(self, request: dict[str, Any]) -> Reply:
        return Reply({})


@pytest.fixture
def guest(clock: FakeClock) -> FakeGuest:
    return FakeGuest(clock)


@pytest.fixture
def pod(guest: FakeGuest, clock: FakeClock) -> GuestPod:
    return GuestPod(GuestAgent(guest, name="vm-1", clock=clock, sleep=clock.sleep), clock=clock, sleep=clock.sleep)


def state(status: str, pid: int | None = None, exit_code: int | None = None, restarts: int = 0) -> dict[str, Any]:
    return {"status": status, "pid": pid, "exit_code": exit_code, "restarts": restarts}


def status_run(**containers: dict[str, Any]) -> Run:
    return Run(stdout=json.dumps(containers) + "\n")


# -- status JSON ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{}\n", {}),
        (
            '{"web":{"status":"running","pid":234,"exit_code":null,"restarts":0}}',
            {"web": state("running", 234)},
        ),
        (
            '{"a":{"status":"exited","pid":null,"exit_code":137,"restarts":3},"b":{"status":"created","pid":null,"exit_code":null,"restarts":0}}',
            {"a": state("exited", None, 137, 3), "b": state("created")},
        ),
        ('{"w":{"status":"restarting","pid":null,"exit_code":0}}', {"w": state("restarting", None, 0, 0)}),
        ('{"w":{"status":"unknown","pid":null,"exit_code":null,"restarts":0}}', {"w": state("unknown")}),
    ],
)
def test_parse_status_accepts_what_the_guest_prints(text: str, expected: dict[str, Any]) -> None:
    assert parse_status(text) == expected


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "not valid JSON"),
        ('{"web":{"status":"running"', "not valid JSON"),
        ("hyper-container: usage", "not valid JSON"),
        ("[]", "list, not a JSON object"),
        ('{"web":"running"}', "container web has 'running', not an object"),
        ('{"web":{"status":"dancing","pid":null,"exit_code":null,"restarts":0}}', "unknown status 'dancing'"),
        ('{"web":{"pid":null,"exit_code":null,"restarts":0}}', "unknown status None"),
        ('{"web":{"status":"running","pid":"12","exit_code":null,"restarts":0}}', "pid '12', not a number or null"),
        ('{"web":{"status":"running","pid":true,"exit_code":null,"restarts":0}}', "pid True"),
        ('{"web":{"status":"exited","pid":null,"exit_code":-1,"restarts":0}}', "exit_code -1"),
        ('{"web":{"status":"running","pid":1,"exit_code":null,"restarts":null}}', "restarts None, not a number"),
    ],
)
def test_parse_status_refuses_bad_output_clearly(text: str, needle: str) -> None:
    with pytest.raises(AgentError) as err:
        parse_status(text)
    assert needle in err.value.message
    assert "hyper-container status" in err.value.message


def test_status_is_one_guest_command(pod: GuestPod, guest: FakeGuest) -> None:
    guest.run((HC, "status"), status_run(web=state("running", 7)))
    assert pod.status() == {"web": state("running", 7)}
    assert guest.argvs == [[HC, "status"]]


def test_status_with_bad_json_names_the_command_and_the_output(pod: GuestPod, guest: FakeGuest) -> None:
    guest.run((HC, "status"), Run(stdout="{oops"))
    with pytest.raises(AgentError, match=r"hyper-container status: not valid JSON .*\{oops"):
        pod.status()


def test_status_failure_carries_the_guest_reason(pod: GuestPod, guest: FakeGuest) -> None:
    guest.run((HC, "status"), Run(rc=1, stderr="hyper-container: something broke\n"))
    with pytest.raises(AgentError, match=r"vm-1: hyper-container status failed: something broke$"):
        pod.status()


def test_a_guest_without_hyper_container_says_to_rebuild_the_image(pod: GuestPod, guest: FakeGuest) -> None:
    desc = "Failed to execute child process \u201c/usr/sbin/hyper-container\u201d (No such file or directory)"
    guest.on("guest-exec", Reply(error={"class": "GenericError", "desc": desc}))
    with pytest.raises(AgentError, match=re.escape("the guest has no /usr/sbin/hyper-container; rebuild its image with the hyper.pods.guest_image role")):
        pod.status()


# -- argv of each command --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "argv", "exec_timeout"),
    [
        (lambda p: p.start("web"), [HC, "start", "web"], gp.COMMAND_TIMEOUT),
        (lambda p: p.stop("web"), [HC, "stop", "web"], gp.MAX_STOP_TIMEOUT + gp.STOP_GRACE),
        (lambda p: p.stop("web", 10), [HC, "stop", "web", "10"], 10 + gp.STOP_GRACE),
        (lambda p: p.stop("web", 10.0), [HC, "stop", "web", "10"], 10 + gp.STOP_GRACE),
        (lambda p: p.stop("web", 2.5), [HC, "stop", "web", "2.5"], 2.5 + gp.STOP_GRACE),
        (lambda p: p.stop("db.1", 0.25), [HC, "stop", "db.1", "0.25"], 0.25 + gp.STOP_GRACE),
        (lambda p: p.stop("web", 0.001), [HC, "stop", "web", "0"], gp.STOP_GRACE),
        (lambda p: p.stop("web", 0), [HC, "stop", "web", "0"], gp.STOP_GRACE),
        (lambda p: p.remove("a_b-c"), [HC, "remove", "a_b-c"], gp.MAX_STOP_TIMEOUT + gp.STOP_GRACE),
        (lambda p: p.remove("web", 3), [HC, "remove", "web", "3"], 3 + gp.STOP_GRACE),
        (lambda p: p.logs("web"), [HC, "logs", "web", "50"], gp.COMMAND_TIMEOUT),
        (lambda p: p.logs("web", 7), [HC, "logs", "web", "7"], gp.COMMAND_TIMEOUT),
        (lambda p: p.status(), [HC, "status"], gp.COMMAND_TIMEOUT),
    ],
)
def test_each_call_is_one_argv(
    pod: GuestPod, guest: FakeGuest, monkeypatch: pytest.MonkeyPatch, call: Callable[[GuestPod], Any], argv: list[str], exec_timeout: float
) -> None:
    guest.run((HC,), Run(stdout="{}\n"))
    timeouts: list[float] = []
    real_exec = pod.agent.exec

    def spy(argv: Sequence[str], **kwargs: Any) -> ExecResult:
        timeouts.append(kwargs["timeout"])
        return real_exec(argv, **kwargs)

    monkeypatch.setattr(pod.agent, "exec", spy)
    call(pod)
    assert guest.argvs == [argv]
    assert timeouts == [pytest.approx(exec_timeout)]
    exec_request = guest.requests[0]
    assert exec_request["execute"] == "guest-exec"
    assert exec_request["arguments"]["path"] == HC
    assert exec_request["arguments"]["arg"] == argv[1:]


@pytest.mark.parametrize(("stdout", "started"), [("started\n", True), ("running\n", False)])
def test_start_says_whether_it_started(pod: GuestPod, guest: FakeGuest, stdout: str, started: bool) -> None:
    guest.run((HC, "start"), Run(stdout=stdout))
    assert pod.start("web") is started


@pytest.mark.parametrize(("stdout", "removed"), [("removed\n", True), ("absent\n", False)])
def test_remove_says_whether_there_was_something(pod: GuestPod, guest: FakeGuest, stdout: str, removed: bool) -> None:
    guest.run((HC, "remove"), Run(stdout=stdout))
    assert pod.remove("web") is removed


@pytest.mark.parametrize(
    ("call", "stderr", "message"),
    [
        (
            lambda p: p.start("web"),
            "hyper-container: container web: no disk with serial hyper-img-0123456789\n",
            "container web: start failed in vm-1: container web: no disk",
        ),
        (lambda p: p.stop("web", 1), "hyper-container: no container web in this guest\n", "container web: stop failed in vm-1: no container web in this guest"),
        (lambda p: p.remove("web"), "", "container web: remove failed in vm-1: hyper-container ended with exit code 1"),
        (lambda p: p.logs("web"), "hyper-container: no container web in this guest\n", "container web: cannot read its log in vm-1: no container web"),
    ],
)
def test_guest_failures_become_container_errors(pod: GuestPod, guest: FakeGuest, call: Callable[[GuestPod], Any], stderr: str, message: str) -> None:
    guest.run((HC,), Run(rc=1, stderr=stderr))
    with pytest.raises(ContainerError) as err:
        call(pod)
    assert err.value.message.startswith(message)
    assert err.value.container == "web"
    assert err.value.details["container"] == "web"


@pytest.mark.parametrize("name", ["", "Web", "-web", ".web", "_web", "a b", "a/b", "../x", "web;reboot", "web\n", "x" * 64, 5, None])
@pytest.mark.parametrize(
    "call",
    [
        lambda p, n: p.start(n),
        lambda p, n: p.stop(n, 1),
        lambda p, n: p.remove(n),
        lambda p, n: p.logs(n),
        lambda p, n: p.write_container(n, CONFIG, {"serial": SERIAL}),
        lambda p, n: p.wait_running([n], 1),
    ],
)
def test_invalid_names_never_reach_the_guest(pod: GuestPod, guest: FakeGuest, name: Any, call: Callable[[GuestPod, Any], Any]) -> None:
    with pytest.raises(SpecError, match="container names use a-z"):
        call(pod, name)
    assert guest.requests == []


@pytest.mark.parametrize(
    ("call", "option"),
    [
        (lambda p: p.stop("web", -1), "timeout"),
        (lambda p: p.stop("web", 3601), "timeout"),
        (lambda p: p.stop("web", float("nan")), "timeout"),
        (lambda p: p.stop("web", True), "timeout"),
        (lambda p: p.remove("web", "10"), "timeout"),
        (lambda p: p.logs("web", 0), "lines"),
        (lambda p: p.logs("web", "5"), "lines"),
    ],
)
def test_invalid_values_never_reach_the_guest(pod: GuestPod, guest: FakeGuest, call: Callable[[GuestPod], Any], option: str) -> None:
    with pytest.raises(SpecError) as err:
        call(pod)
    assert err.value.option == option
    assert guest.requests == []


# -- write_container ---------------------------------------------------------------------------------


def test_write_container_makes_the_directory_and_writes_both_files(pod: GuestPod, guest: FakeGuest) -> None:
    guest.run(("mkdir",), Run())
    pod.write_container("web", CONFIG, {"serial": SERIAL, "restart_policy": "always", "stop_timeout": 2.5})
    assert guest.argvs == [["mkdir", "-p", "/run/hyper/containers/web"]]
    assert json.loads(guest.files["/run/hyper/containers/web/config.json"]) == CONFIG
    meta = guest.files["/run/hyper/containers/web/container.json"]
    assert json.loads(meta) == {"name": "web", "serial": SERIAL, "restart_policy": "always", "stop_signal": "SIGTERM", "stop_timeout": 2.5}
    assert b"\n" not in meta, "one line: the guest reads it with sed"


@pytest.mark.parametrize(
    ("meta", "expected"),
    [
        ({"serial": SERIAL}, {"restart_policy": "never", "stop_signal": "SIGTERM", "stop_timeout": 10}),
        (
            {"serial": SERIAL, "name": "web", "stop_signal": "SIGKILL", "stop_timeout": 0},
            {"restart_policy": "never", "stop_signal": "SIGKILL", "stop_timeout": 0},
        ),
        (
            {"serial": SERIAL, "restart_policy": "on-failure", "stop_signal": 15, "stop_timeout": 30.0},
            {"restart_policy": "on-failure", "stop_signal": "15", "stop_timeout": 30},
        ),
        ({"serial": SERIAL, "stop_signal": "TERM", "stop_timeout": 0.123}, {"restart_policy": "never", "stop_signal": "TERM", "stop_timeout": 0.12}),
    ],
)
def test_container_meta_fills_defaults(meta: dict[str, Any], expected: dict[str, Any]) -> None:
    assert gp.container_meta("web", meta) == {"name": "web", "serial": SERIAL, **expected}


@pytest.mark.parametrize(
    ("meta", "option"),
    [
        ({}, "meta.serial"),
        ({"serial": "hyper-img-XYZ"}, "meta.serial"),
        ({"serial": SERIAL + "0"}, "meta.serial"),
        ({"serial": SERIAL, "name": "db"}, "meta.name"),
        ({"serial": SERIAL, "restart_policy": "unless-stopped"}, "restart_policy"),
        ({"serial": SERIAL, "stop_signal": "SIGTERM; reboot"}, "stop_signal"),
        ({"serial": SERIAL, "stop_signal": "sigterm"}, "stop_signal"),
        ({"serial": SERIAL, "stop_signal": 0}, "stop_signal"),
        ({"serial": SERIAL, "stop_timeout": -1}, "stop_timeout"),
        ({"serial": SERIAL, "stop_timeout": "10"}, "stop_timeout"),
        ({"serial": SERIAL, "stop_timeout": float("inf")}, "stop_timeout"),
        ({"serial": SERIAL, "image": "busybox"}, "meta"),
    ],
)
def test_bad_meta_never_reaches_the_guest(pod: GuestPod, guest: FakeGuest, meta: dict[str, Any], option: str) -> None:
    with pytest.raises(SpecError) as err:
        pod.write_container("web", CONFIG, meta)
    assert err.value.option == option
    assert guest.requests == []


@pytest.mark.parametrize("root", [None, {}, {"path": "/rootfs"}, {"path": "bundle/rootfs"}, "rootfs"])
def test_config_must_use_the_overlay_root(pod: GuestPod, guest: FakeGuest, root: Any) -> None:
    config = {**CONFIG, "root": root}
    with pytest.raises(SpecError) as err:
        pod.write_container("web", config, {"serial": SERIAL})
    assert err.value.option == "config.root.path"
    assert guest.requests == []


def test_write_container_reports_a_failed_mkdir(pod: GuestPod, guest: FakeGuest) -> None:
    guest.run(("mkdir",), Run(rc=1, stderr="mkdir: can't create directory '/run/hyper/containers/web': No space left on device\n"))
    with pytest.raises(ContainerError, match=r"container web: cannot create /run/hyper/containers/web in vm-1: mkdir: .*No space left"):
        pod.write_container("web", CONFIG, {"serial": SERIAL})
    assert guest.files == {}


# -- wait_running --------------------------------------------------------------------------------------


def test_wait_running_polls_until_every_container_has_a_pid(pod: GuestPod, guest: FakeGuest) -> None:
    guest.run(
        (HC, "status"),
        status_run(web=state("starting"), db=state("starting")),
        status_run(web=state("running", 10), db=state("starting")),
        status_run(web=state("running", 10), db=state("running", None)),  # running, pid not recorded yet
        status_run(web=state("running", 10), db=state("running", 11), other=state("exited", None, 1)),
    )
    result = pod.wait_running(["web", "db", "web"], timeout=30, settle=0)
    assert result == {"web": state("running", 10), "db": state("running", 11)}
    assert guest.argvs == [[HC, "status"]] * 4


def test_wait_running_returns_at_once_when_all_run(pod: GuestPod, guest: FakeGuest, clock: FakeClock) -> None:
    guest.run((HC, "status"), status_run(web=state("running", 10, 137, 2)))
    assert pod.wait_running(["web"], timeout=30, settle=0) == {"web": state("running", 10, 137, 2)}
    assert clock.sleeps == []


def test_wait_running_fails_a_container_that_exits_right_after_being_seen_running(pod: GuestPod, guest: FakeGuest) -> None:
    guest.run(
        (HC, "status"),
        status_run(quitter=state("running", 10)),
        status_run(quitter=state("exited", None, 3)),
    )
    guest.run((HC, "logs"), Run(stdout="going away\n"))
    with pytest.raises(ContainerError, match="container quitter: exited with code 3"):
        pod.wait_running(["quitter"], timeout=30)


def test_wait_running_counts_a_container_up_after_the_settle_time_with_one_pid(pod: GuestPod, guest: FakeGuest, clock: FakeClock) -> None:
    guest.run((HC, "status"), *[status_run(web=state("running", 10))] * 10)
    assert pod.wait_running(["web"], timeout=30, settle=0.5) == {"web": state("running", 10)}
    assert 0.5 <= sum(clock.sleeps) < 1.0
    assert len(guest.argvs) >= 2


def test_wait_running_looks_again_when_the_settle_time_is_up(pod: GuestPod, guest: FakeGuest, clock: FakeClock) -> None:
    # Backoff while starting; once running, one sleep to the end of the settle time, not past it.
    guest.run((HC, "status"), status_run(web=state("starting")), *[status_run(web=state("running", 10))] * 3)
    assert pod.wait_running(["web"], timeout=30, settle=0.5) == {"web": state("running", 10)}
    assert clock.sleeps == [pytest.approx(0.05), pytest.approx(0.5)]
    assert len(guest.argvs) == 3


def test_wait_running_starts_the_settle_time_again_when_the_pid_changes(pod: GuestPod, guest: FakeGuest, clock: FakeClock) -> None:
    guest.run(
        (HC, "status"),
        status_run(web=state("running", 10)),
        *[status_run(web=state("running", 12, None, 1))] * 10,
    )
    pod.wait_running(["web"], timeout=30, settle=0.5)
    assert sum(clock.sleeps) >= 0.5 + 0.05


def test_wait_running_counts_each_containers_settle_from_its_own_sighting(pod: GuestPod, guest: FakeGuest, clock: FakeClock) -> None:
    # db runs 0.05 s after web: the wait ends 0.5 s after db was first seen, not 0.5 s after web plus 0.5 s more.
    guest.run(
        (HC, "status"),
        status_run(web=state("running", 10), db=state("starting")),
        *[status_run(web=state("running", 10), db=state("running", 11))] * 5,
    )
    start = clock.now
    pod.wait_running(["web", "db"], timeout=30, settle=0.5)
    assert clock.now - start == pytest.approx(0.55, abs=0.01)
    assert len(guest.argvs) == 3


def test_wait_running_with_no_settle_returns_at_the_first_sighting(pod: GuestPod, guest: FakeGuest, clock: FakeClock) -> None:
    # wait_settle: 0 (docs/runtime.md): a container that exits just after is not this task's failure.
    guest.run((HC, "status"), status_run(quitter=state("running", 10)), status_run(quitter=state("exited", None, 3)))
    assert pod.wait_running(["quitter"], timeout=30, settle=0) == {"quitter": state("running", 10)}
    assert len(guest.argvs) == 1


@pytest.mark.parametrize(
    ("late", "reason"),
    [
        (state("exited", None, 3), "container db: exited with code 3"),
        (state("exited"), "container db: exited"),
        (state("restarting", None, 1, 2), "container db: exited with code 1 and is restarting (restart 2)"),
        (state("stopped", None, 137), "container db: was stopped"),
        (state("created"), "container db: was written but never started"),
        (state("unknown"), "container db: is in an unknown state (unknown)"),
    ],
)
def test_wait_running_fails_with_the_log_tail_when_a_container_exits(pod: GuestPod, guest: FakeGuest, late: dict[str, Any], reason: str) -> None:
    guest.run((HC, "status"), status_run(web=state("running", 10), db=state("starting")), status_run(web=state("running", 10), db=late))
    guest.run((HC, "logs", "db"), Run(stdout="boom\nhyper-container: db exited with code 3\n"))
    with pytest.raises(ContainerError) as err:
        pod.wait_running(["web", "db"], timeout=30)
    assert err.value.message == reason
    assert err.value.container == "db"
    assert err.value.log_tail == ["boom", "hyper-container: db exited with code 3"]
    assert err.value.details["log_tail"] == err.value.log_tail
    assert err.value.details["state"] == late
    assert guest.argvs[-1] == [HC, "logs", "db", str(gp.LOG_TAIL_LINES)]


def test_a_log_that_cannot_be_read_does_not_hide_the_exit(pod: GuestPod, guest: FakeGuest) -> None:
    guest.run((HC, "status"), status_run(db=state("exited", None, 2)))
    guest.run((HC, "logs"), Run(rc=1, stderr="hyper-container: no container db in this guest\n"))
    with pytest.raises(ContainerError) as err:
        pod.wait_running(["db"], timeout=30)
    assert err.value.message == "container db: exited with code 2"
    assert err.value.log_tail == []


def test_wait_running_fails_at_once_for_an_unknown_container(pod: GuestPod, guest: FakeGuest) -> None:
    guest.run((HC, "status"), status_run(web=state("running", 10)))
    with pytest.raises(ContainerError, match="container db: is not in vm-1: write and start it first"):
        pod.wait_running(["web", "db"], timeout=30)
    assert len(guest.argvs) == 1


def test_wait_running_times_out_naming_the_container_with_its_log(pod: GuestPod, guest: FakeGuest, clock: FakeClock) -> None:
    guest.run((HC, "status"), status_run(web=state("starting"), db=state("starting"), ok=state("running", 5)))
    guest.run((HC, "logs", "web"), Run(stdout="pulling the slow lever\n"))
    start = clock.now
    with pytest.raises(ContainerError) as err:
        pod.wait_running(["ok", "web", "db"], timeout=5)
    assert err.value.message == "container web: did not reach running within 5s: still starting (nor did db)"
    assert err.value.log_tail == ["pulling the slow lever"]
    assert clock.now - start == pytest.approx(5)
    assert max(clock.sleeps) <= gp.POLL_CAP
    # polls grow from POLL_FIRST to POLL_CAP: a handful of status calls, not hundreds
    assert 5 < guest.argvs.count([HC, "status"]) < 30


def test_wait_running_on_nothing_is_one_status_call(pod: GuestPod, guest: FakeGuest) -> None:
    guest.run((HC, "status"), status_run())
    assert pod.wait_running([], timeout=5) == {}
    assert guest.argvs == [[HC, "status"]]
