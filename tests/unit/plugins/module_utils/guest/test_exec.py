# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""run_in_container against a fake guest: guest-exec answers by argv, files live in a dict."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tracemalloc
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import ContainerError, DomainNotFound, DomainNotRunning, HyperError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest import exec as ce
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import MAX_REQUEST_DATA, GuestAgent
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.fast_exec import HYPER_EXEC, without_client
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod import exec as pe
from ansible_collections.hyper.pods.plugins.module_utils._hyper.session import Session, running_pod
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.fake_agent import FakeClock, Reply, ScriptedTransport


@dataclass
class Run:
    """One guest process: exit code or signal, output, run time; ``files`` it writes when it ends."""

    rc: Optional[int] = 0
    signal: Optional[int] = None
    stdout: bytes = b""
    stderr: bytes = b""
    seconds: float = 0.0
    out_truncated: bool = False
    files: dict[str, bytes] = field(default_factory=dict)


RunStep = Union[Run, Callable[[list[str]], Run]]


@dataclass
class FakeGuest(ScriptedTransport):
    """qemu-ga with processes (by argv prefix) and files; the ``sh -c`` wrapper is interpreted here."""

    runs: dict[tuple[str, ...], list[RunStep]] = field(default_factory=dict)
    argvs: list[list[str]] = field(default_factory=list)
    stdins: list[Optional[bytes]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    reads: list[int] = field(default_factory=list)
    _procs: dict[int, tuple[Run, float]] = field(default_factory=dict)
    _handles: dict[int, tuple[str, int]] = field(default_factory=dict)
    killed: set[int] = field(default_factory=set)
    helper_calls: int = 0

    def __post_init__(self) -> None:
        for name in ("guest-exec", "guest-exec-status", "guest-file-open", "guest-file-read", "guest-file-write", "guest-file-close"):
            self.script[name] = [getattr(self, "_" + name.replace("-", "_"))]

    def run(self, prefix: tuple[str, ...], *steps: RunStep) -> FakeGuest:
        self.runs.setdefault(prefix, []).extend(steps)
        return self

    def crun_argvs(self) -> list[list[str]]:
        return [argv[8:] if argv[:3] == list(ce.SHELL_ARGV[:3]) else argv for argv in self.argvs]

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
        assert "env" not in args, "crun must keep the agent's environment"
        argv = [args["path"], *args["arg"]]
        if argv[0] == HYPER_EXEC:
            # A guest image made before the exec helper: qemu-ga cannot start it (test_fast_exec covers it).
            self.helper_calls += 1
            return Reply(error={"class": "GenericError", "desc": f'Failed to execute child process "{HYPER_EXEC}" (No such file or directory)'})
        self.argvs.append(argv)
        stdin = base64.b64decode(args["input-data"]) if "input-data" in args else None
        self.stdins.append(stdin)
        pid = 100 + len(self.argvs)
        if argv[:4] == list(ce.SHELL_ARGV):
            pid_file, in_file, out_file, err_file = argv[4:8]
            assert argv[8:10] == ["crun", "exec"]
            if in_file:
                self.stdins[-1] = self.files[in_file]
            run = self._pick(argv[8:])
            self.files[pid_file] = b"4242\n"
            if out_file and len(run.stdout) <= ce.INLINE_LIMIT and len(run.stderr) <= ce.INLINE_LIMIT:
                # The wrapper hands small streams back inline, marked, and removes the files.
                run = Run(rc=run.rc, signal=run.signal, seconds=run.seconds, stdout=run.stdout, stderr=run.stderr + ce.INLINE_MARKER.encode())
            elif out_file:
                self.files[out_file] = run.stdout
                self.files[err_file] = run.stderr
                run = Run(rc=run.rc, signal=run.signal, seconds=run.seconds)
        elif argv[:2] == ["rm", "-f"]:
            for path in argv[2:]:
                self.files.pop(path, None)
            run = Run()
        else:
            run = self._pick(argv)
        self._procs[pid] = (run, self.clock.now + run.seconds)
        return Reply({"pid": pid})

    def _guest_exec_status(self, request: dict[str, Any]) -> Reply:
        pid = request["arguments"]["pid"]
        run, ends = self._procs[pid]
        if pid in self.killed:
            return Reply({"exited": True, "exitcode": 137})  # crun reports the killed child as 128 + 9
        if self.clock.now < ends:
            return Reply({"exited": False})
        status: dict[str, Any] = {"exited": True}
        if run.signal is not None:
            status["signal"] = run.signal
        else:
            status["exitcode"] = run.rc
        if run.stdout:
            status["out-data"] = base64.b64encode(run.stdout).decode()
        if run.stderr:
            status["err-data"] = base64.b64encode(run.stderr).decode()
        if run.out_truncated:
            status["out-truncated"] = True
        return Reply(status)

    def _guest_file_open(self, request: dict[str, Any]) -> Reply:
        path, mode = request["arguments"]["path"], request["arguments"]["mode"]
        if mode == "r" and path not in self.files:
            return Reply(error={"class": "GenericError", "desc": f"failed to open file '{path}': No such file or directory"})
        if mode == "w":
            self.files[path] = b""
        handle = 1000 + len(self._handles)
        self._handles[handle] = (path, 0)
        return Reply(handle)

    def _guest_file_read(self, request: dict[str, Any]) -> Reply:
        handle, count = request["arguments"]["handle"], request["arguments"]["count"]
        path, offset = self._handles[handle]
        data = self.files[path][offset : offset + count]
        self._handles[handle] = (path, offset + len(data))
        self.reads.append(len(data))
        return Reply({"count": len(data), "buf-b64": base64.b64encode(data).decode(), "eof": offset + len(data) >= len(self.files[path])})

    def _guest_file_write(self, request: dict[str, Any]) -> Reply:
        path, _offset = self._handles[request["arguments"]["handle"]]
        data = base64.b64decode(request["arguments"]["buf-b64"])
        self.files[path] += data
        return Reply({"count": len(data), "eof": False})

    def _guest_file_close(self, request: dict[str, Any]) -> Reply:
        return Reply({})


@pytest.fixture
def guest(clock: FakeClock) -> FakeGuest:
    return FakeGuest(clock)


@pytest.fixture
def agent(guest: FakeGuest, clock: FakeClock) -> GuestAgent:
    """An agent of a guest without the exec helper: these tests are about the crun exec path."""
    agent = GuestAgent(guest, name="vm-1", clock=clock, sleep=clock.sleep)
    without_client(agent)
    return agent


def kill_on_request(guest: FakeGuest) -> Callable[[list[str]], Run]:
    def kill(argv: list[str]) -> Run:
        assert argv == ["kill", "-KILL", "4242"]
        guest.killed.update(pid for pid, (_run, _ends) in guest._procs.items() if guest.argvs[pid - 101][:1] == ["sh"])
        return Run()

    return kill


# -- argv ---------------------------------------------------------------------------------------


def test_container_rootfs() -> None:
    assert ce.container_rootfs("web") == "/run/hyper/containers/web/rootfs"
    with pytest.raises(SpecError):
        ce.container_rootfs("../etc")


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, ["crun", "exec", "web", "echo", "hi"]),
        ({"env": {"A": "1", "B": "x y"}}, ["crun", "exec", "--env", "A=1", "--env", "B=x y", "web", "echo", "hi"]),
        ({"cwd": "/tmp"}, ["crun", "exec", "--cwd", "/tmp", "web", "echo", "hi"]),
        ({"user": "1000:100"}, ["crun", "exec", "--user", "1000:100", "web", "echo", "hi"]),
        (
            {"env": {"A": "1"}, "cwd": "/", "user": "0", "pid_file": "/run/p"},
            ["crun", "exec", "--pid-file", "/run/p", "--env", "A=1", "--cwd", "/", "--user", "0", "web", "echo", "hi"],
        ),
    ],
)
def test_crun_exec_argv(kwargs: dict[str, Any], expected: list[str]) -> None:
    assert ce.crun_exec_argv("web", ["echo", "hi"], **kwargs) == expected


@pytest.mark.parametrize(
    ("argv", "kwargs"),
    [
        ("echo hi", {}),
        ([], {}),
        (["echo", "a\x00b"], {}),
        (["echo"], {"env": {"A=B": "1"}}),
        (["echo"], {"cwd": "relative"}),
        (["echo"], {"user": "root"}),
    ],
)
def test_crun_exec_argv_refuses(argv: Any, kwargs: dict[str, Any]) -> None:
    with pytest.raises(SpecError):
        ce.crun_exec_argv("web", argv, **kwargs)


def test_command_argv_splits_without_a_shell() -> None:
    assert pe.command_argv(None, "echo 'a b' $HOME; ls") == ["echo", "a b", "$HOME;", "ls"]
    assert pe.command_argv(["echo", 1], None) == ["echo", "1"]
    with pytest.raises(SpecError):
        pe.command_argv(["a"], "b")
    with pytest.raises(SpecError):
        pe.command_argv(None, "   ")


# -- running ------------------------------------------------------------------------------------


def test_runs_through_the_wrapper_with_stdin_and_options(guest: FakeGuest, agent: GuestAgent) -> None:
    guest.files["/run/hyper/containers/web/config.json"] = json.dumps({"process": {"env": ["PATH=/bin", "K=old"], "args": ["sh"]}}).encode()
    guest.run(("crun", "exec"), Run(stdout=b"hi\n"))
    result = ce.run_in_container(agent, "web", ["cat"], stdin=b"in", env={"K": "v"}, cwd="/tmp", user="1")
    assert result.rc == 0 and result.signal is None and result.stdout == b"hi\n" and not result.timed_out
    wrapper = guest.argvs[0]
    assert wrapper[:4] == list(ce.SHELL_ARGV)
    pid_file = wrapper[4]
    assert wrapper[5:8] == ["", "", ""]
    # crun exec --env replaces the environment: the container's own comes first, the caller's wins.
    assert wrapper[8:] == ["crun", "exec", "--pid-file", pid_file, "--env", "PATH=/bin", "--env", "K=v", "--cwd", "/tmp", "--user", "1", "web", "cat"]
    assert guest.stdins[0] == b"in"
    assert len(guest.argvs) == 1, "a plain successful exec is one guest process"


def test_without_env_no_config_is_read(guest: FakeGuest, agent: GuestAgent) -> None:
    guest.run(("crun", "exec"), Run())
    ce.run_in_container(agent, "web", ["true"])
    assert guest.names() == ["guest-exec", "guest-exec-status"]


def test_env_of_an_unknown_container(guest: FakeGuest, agent: GuestAgent) -> None:
    guest.run(("crun", "state"), Run(rc=1, stderr=b"error opening file `/run/crun/nope/status`: No such file or directory\n"))
    with pytest.raises(ContainerError, match=r"container nope: is not a container of vm-1"):
        ce.run_in_container(agent, "nope", ["true"], env={"A": "1"})
    assert not [argv for argv in guest.argvs if argv[:1] == ["sh"]]


def test_argv_is_never_in_the_script(guest: FakeGuest, agent: GuestAgent) -> None:
    guest.run(("crun", "exec"), Run())
    ce.run_in_container(agent, "web", ["sh", "-c", "echo $0; rm -rf /"], large_output=True)
    assert guest.argvs[0][2] == ce.WRAPPER_SCRIPT


def test_signal_death(guest: FakeGuest, agent: GuestAgent) -> None:
    guest.run(("crun", "exec"), Run(rc=137))
    result = ce.run_in_container(agent, "web", ["sh", "-c", "kill -9 $$"])
    assert (result.rc, result.signal, result.timed_out) == (None, 9, False)


def test_nonzero_rc_is_a_result(guest: FakeGuest, agent: GuestAgent) -> None:
    guest.run(("crun", "exec"), Run(rc=3, stderr=b"oops\n"))
    result = ce.run_in_container(agent, "web", ["false"])
    assert (result.rc, result.signal, result.stderr) == (3, None, b"oops\n")


def test_command_not_found_is_a_result(guest: FakeGuest, agent: GuestAgent) -> None:
    guest.run(("crun", "exec"), Run(rc=255, stderr=b"executable file `nosuch` not found in $PATH: No such file or directory\n"))
    result = ce.run_in_container(agent, "web", ["nosuch"])
    assert result.rc == 255 and b"not found" in result.stderr


def test_unknown_container(guest: FakeGuest, agent: GuestAgent) -> None:
    # crun 1.8 prints its errors without a "crun:" prefix
    guest.run(("crun", "exec"), Run(rc=1, stderr=b"error opening file `/run/crun/nope/status`: No such file or directory\n"))
    guest.run(("crun", "state"), Run(rc=1, stderr=b"error opening file `/run/crun/nope/status`: No such file or directory\n"))
    with pytest.raises(ContainerError, match=r"container nope: is not a container of vm-1"):
        ce.run_in_container(agent, "nope", ["true"])


def test_stopped_container(guest: FakeGuest, agent: GuestAgent) -> None:
    guest.run(("crun", "exec"), Run(rc=1, stderr=b"crun: the container `web` is not in 'running' state\n"))
    guest.run(("crun", "state"), Run(stdout=b'{"id":"web","status":"stopped"}'))
    with pytest.raises(ContainerError, match=r"is stopped in vm-1"):
        ce.run_in_container(agent, "web", ["true"])


def test_timeout_kills_the_container_process(guest: FakeGuest, agent: GuestAgent, clock: FakeClock) -> None:
    guest.run(("crun", "exec"), Run(seconds=30))
    guest.run(("kill",), kill_on_request(guest))
    start = clock.now
    result = ce.run_in_container(agent, "web", ["sleep", "30"], timeout=2)
    assert result.timed_out and result.rc is None and result.signal == 9
    assert clock.now - start < 10
    assert ["kill", "-KILL", "4242"] in guest.argvs
    assert guest.argvs[-1][:2] == ["rm", "-f"]
    assert not [path for path in guest.files if path.startswith("/run/hyper/exec-")]


def test_truncation_flags_pass_through(guest: FakeGuest, agent: GuestAgent) -> None:
    guest.run(("crun", "exec"), Run(stdout=b"x" * 10, out_truncated=True))
    result = ce.run_in_container(agent, "web", ["yes"])
    assert result.stdout_truncated and not result.stderr_truncated


def test_large_output_read_in_chunks_and_removed(guest: FakeGuest, agent: GuestAgent) -> None:
    big = bytes(range(256)) * (5 * 1024 * 4)  # 5 MiB, more than one reply carries
    guest.run(("crun", "exec"), Run(stdout=big, stderr=b"warn\n"))
    result = ce.run_in_container(agent, "web", ["dd", "if=/dev/zero"], large_output=True)
    assert result.stdout == big and result.stderr == b"warn\n" and not result.stdout_truncated
    wrapper = guest.argvs[0]
    assert wrapper[6].endswith(".out") and wrapper[7].endswith(".err")
    assert len([n for n in guest.reads if n]) >= 10, "read in chunks"
    assert max(guest.reads) <= 512 * 1024
    assert guest.argvs[-1] == ["rm", "-f", *wrapper[4:8]] or guest.argvs[-1][:2] == ["rm", "-f"]
    assert not [path for path in guest.files if path.startswith("/run/hyper/exec-")]


def test_large_output_mode_with_small_output_comes_back_inline(guest: FakeGuest, agent: GuestAgent) -> None:
    guest.run(("crun", "exec"), Run(rc=2, stdout=b"out \xff\n", stderr=b"err\n"))
    result = ce.run_in_container(agent, "web", ["ls"], large_output=True)
    assert (result.rc, result.stdout, result.stderr) == (2, b"out \xff\n", b"err\n")
    # No file read and no rm: one guest-exec and its status polls.
    assert {r["execute"] for r in guest.requests} == {"guest-exec", "guest-exec-status"}
    assert len(guest.argvs) == 1


def test_large_output_just_over_the_inline_limit_goes_through_files(guest: FakeGuest, agent: GuestAgent) -> None:
    big = b"z" * (ce.INLINE_LIMIT + 1)
    guest.run(("crun", "exec"), Run(stdout=b"small", stderr=big))
    result = ce.run_in_container(agent, "web", ["ls"], large_output=True)
    assert (result.stdout, result.stderr) == (b"small", big)
    assert "guest-file-read" in {r["execute"] for r in guest.requests}
    assert not [path for path in guest.files if path.startswith("/run/hyper/exec-")]


def _run_wrapper(tmp_path: Any, script: str, large: bool) -> tuple[subprocess.CompletedProcess[bytes], list[str]]:
    """WRAPPER_SCRIPT run by a real POSIX sh, with ``sh -c script`` in place of crun exec."""
    files = [str(tmp_path / name) for name in ("pid", "out", "err")]
    (tmp_path / "pid").write_text("1")
    argv = [*ce.SHELL_ARGV, files[0], "", files[1] if large else "", files[2] if large else "", "sh", "-c", script]
    return subprocess.run(argv, capture_output=True, check=False), files


@pytest.mark.parametrize("large", [True, False])
def test_wrapper_script_small_output(tmp_path: Any, large: bool) -> None:
    done, files = _run_wrapper(tmp_path, "printf 'out\\n'; printf 'err' >&2; exit 3", large)
    assert done.returncode == 3
    assert done.stdout == b"out\n"
    assert done.stderr == (b"err" + ce.INLINE_MARKER.encode() if large else b"err")
    assert not any(os.path.exists(path) for path in files), "pid file (and the streams' files) removed"


def test_wrapper_script_large_output_stays_in_files(tmp_path: Any) -> None:
    done, files = _run_wrapper(tmp_path, f"head -c {ce.INLINE_LIMIT + 1} /dev/zero; echo warn >&2", True)
    assert done.returncode == 0
    assert (done.stdout, done.stderr) == (b"", b"")  # no marker: the host reads the files
    assert os.path.getsize(files[1]) == ce.INLINE_LIMIT + 1
    with open(files[2], "rb") as err:
        assert err.read() == b"warn\n"


def test_large_stdin_goes_through_a_file(guest: FakeGuest, agent: GuestAgent) -> None:
    data = b"y" * (MAX_REQUEST_DATA + 1)
    guest.run(("crun", "exec"), Run())
    ce.run_in_container(agent, "web", ["cat"], stdin=data)
    assert guest.stdins[0] == data
    assert guest.argvs[0][5].endswith(".in")
    assert not [path for path in guest.files if path.startswith("/run/hyper/exec-")]


def test_invalid_utf8_is_replaced() -> None:
    result = ce.ContainerExecResult(
        rc=0, signal=None, stdout=b"ok \xff\xfe\n\n", stderr=b"\xc3", stdout_truncated=False, stderr_truncated=False, duration=0.1, timed_out=False
    )
    out = pe.result_dict(result)
    assert out["stdout"] == "ok \ufffd\ufffd" and out["stderr"] == "\ufffd"
    assert out["stdout_lines"] == ["ok \ufffd\ufffd"]
    assert pe.result_dict(result, strip_empty_ends=False)["stdout"].endswith("\n\n")


def test_binary_output_stays_bytes(guest: FakeGuest, agent: GuestAgent) -> None:
    guest.run(("crun", "exec"), Run(stdout=b"\x00\xff\x80"))
    assert ce.run_in_container(agent, "web", ["cat"]).stdout == b"\x00\xff\x80"


# -- finding the pod ----------------------------------------------------------------------------


class FakeDom:
    def __init__(self, name: str) -> None:
        self._name = name

    def name(self) -> str:
        return self._name

    def UUIDString(self) -> str:
        return "00000000-0000-0000-0000-000000000000"


class FakeClient:
    uri = "test:///"

    def __init__(self, pods: dict[str, tuple[str, bool]]) -> None:
        self.doms = {vm_id: (FakeDom(vm_id), name, running) for name, (vm_id, running) in pods.items()}

    def list_domains(self, prefix: str = "") -> list[FakeDom]:
        return [dom for dom, _name, _running in self.doms.values()]

    def get_metadata(self, dom: FakeDom) -> dict[str, Any]:
        name = self.doms[dom.name()][1]
        return {"name": name, "spec": {"name": name}}

    def state(self, dom: FakeDom) -> str:
        return "running" if self.doms[dom.name()][2] else "shutoff"

    def is_active(self, dom: FakeDom) -> bool:
        return self.doms[dom.name()][2]

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def test_find_running_pod() -> None:
    client: Any = FakeClient({"web": ("hyper-00000001", True), "db": ("hyper-00000002", False)})
    found = running_pod(client, "web")
    dom, vm_id = found.dom, found.current.vm_id
    assert vm_id == "hyper-00000001" and dom.name() == vm_id
    with pytest.raises(DomainNotFound, match="pod nope does not exist"):
        running_pod(client, "nope")
    with pytest.raises(DomainNotRunning, match=r"pod db is stopped: start it with hyper\.pods\.hyper_pod state=started"):
        running_pod(client, "db")


# -- the module's call --------------------------------------------------------------------------


def module_deps(guest: FakeGuest, clock: FakeClock) -> Session:
    client = FakeClient({"web": ("hyper-00000001", True)})
    return Session(  # type: ignore[arg-type]
        open_client=lambda _uri: client,  # type: ignore[arg-type,return-value]
        make_transport=lambda _dom, _vm_id: guest,
        clock=clock,
        sleep=clock.sleep,
    )


def test_exec_in_pod_result(guest: FakeGuest, clock: FakeClock) -> None:
    guest.run(("crun", "exec"), Run(stdout=b"a b\n\n", stderr=b"w\n"))
    out = pe.exec_in_pod({"pod": "web", "container": "app", "command": "echo 'a b'", "stdin": "x"}, session=module_deps(guest, clock))
    assert out["changed"] is True and out["failed"] is False
    assert (out["rc"], out["stdout"], out["stdout_lines"], out["stderr"], out["cmd"]) == (0, "a b", ["a b"], "w", ["echo", "a b"])
    wrapper = guest.argvs[0]
    assert wrapper[6].endswith(".out"), "the module always reads the output from files"
    assert wrapper[-3:] == ["app", "echo", "a b"]
    assert guest.stdins[0] == b"x\n"


@pytest.mark.parametrize(
    ("run", "message"),
    [(Run(rc=3), "failed with exit code 3"), (Run(rc=137), "killed by signal 9")],
)
def test_exec_in_pod_fails_on_rc(guest: FakeGuest, clock: FakeClock, run: Run, message: str) -> None:
    guest.run(("crun", "exec"), run)
    with pytest.raises(pe.CommandFailed, match=message) as caught:
        pe.exec_in_pod({"pod": "web", "container": "app", "argv": ["x"]}, session=module_deps(guest, clock))
    assert caught.value.details["rc"] == run.rc if run.rc == 3 else caught.value.details["signal"] == 9
    guest.argvs.clear()
    out = pe.exec_in_pod({"pod": "web", "container": "app", "argv": ["x"], "fail_on_rc": False}, session=module_deps(guest, clock))
    assert out["failed"] is False


def test_exec_in_pod_timeout_fails(guest: FakeGuest, clock: FakeClock) -> None:
    guest.run(("crun", "exec"), Run(seconds=30))
    guest.run(("kill",), kill_on_request(guest))
    with pytest.raises(pe.CommandFailed, match=r"ran longer than 2s and was killed") as caught:
        pe.exec_in_pod({"pod": "web", "container": "app", "argv": ["sleep", "30"], "timeout": 2}, session=module_deps(guest, clock))
    assert caught.value.details["timed_out"] is True


def test_exec_in_pod_unknown_pod(guest: FakeGuest, clock: FakeClock) -> None:
    with pytest.raises(DomainNotFound, match="pod db does not exist"):
        pe.exec_in_pod({"pod": "db", "container": "app", "argv": ["x"]}, session=module_deps(guest, clock))


def test_exec_in_pod_stdin_secret_is_sent_like_stdin(guest: FakeGuest, clock: FakeClock) -> None:
    guest.run(("crun", "exec"), Run(stdout=b"ok\n"))
    pe.exec_in_pod({"pod": "web", "container": "app", "argv": ["cat"], "stdin_secret": "s3cret"}, session=module_deps(guest, clock))
    assert guest.stdins[0] == b"s3cret\n"


def test_exec_in_pod_output_over_the_limit_names_the_option(guest: FakeGuest, clock: FakeClock) -> None:
    guest.run(("crun", "exec"), Run(stdout=b"0123456789"))
    with pytest.raises(HyperError, match=r"stdout of x in container app is larger than the limit of 4 bytes: raise output_limit \(4\)"):
        pe.exec_in_pod({"pod": "web", "container": "app", "argv": ["x"], "output_limit": 4}, session=module_deps(guest, clock))
    with pytest.raises(SpecError, match="output_limit"):
        pe.exec_in_pod({"pod": "web", "container": "app", "argv": ["x"], "output_limit": 0}, session=module_deps(guest, clock))


def test_output_beyond_the_limit_is_refused_in_bounded_memory(agent: GuestAgent, guest: FakeGuest) -> None:
    """A command whose output file is far larger than output_limit: refused, the controller holds about the limit."""
    limit = 4 * 1024 * 1024
    guest.run(("crun", "exec"), Run(stdout=b"z" * (40 * 1024 * 1024)))  # read back from the guest file, chunk by chunk
    tracemalloc.start()
    try:
        with pytest.raises(ce.OutputLimitError, match="larger than the limit of 4194304 bytes"):
            ce.run_in_container(agent, "app", ["yes"], large_output=True, output_limit=limit)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * limit
    assert sum(guest.reads) <= limit + 2 * 512 * 1024  # it stopped reading at the limit
