# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The exec helper's host side against a fake guest whose hyper-exec client behaves like the real one."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Optional

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import ContainerError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest import exec as ce
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest import fast_exec as fe
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import MAX_REQUEST_DATA, ExecResult, GuestAgent
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.fake_agent import FakeClock, Reply
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.guest.test_exec import FakeGuest, Run


@dataclass
class HelperGuest(FakeGuest):
    """A guest with hyper-exec: ``helper`` is "serve" (the server answers), "unavailable", "lost" or "absent"."""

    helper: str = "serve"
    launches: int = 0

    def helper_runs(self) -> list[list[str]]:
        return [argv for argv in self.argvs if argv[:2] == [fe.HYPER_EXEC, "run"]]

    def _guest_exec(self, request: dict[str, Any]) -> Reply:
        args = request["arguments"]
        argv = [args["path"], *args["arg"]]
        if argv[0] != fe.HYPER_EXEC or self.helper == "absent":
            return super()._guest_exec(request)
        assert argv[1] in ("run", "launch") and "env" not in args
        self.argvs.append(argv)
        if argv[1] == "launch":
            assert argv[2:] == ["web"]
            self.launches += 1
            self._procs[100 + len(self.argvs)] = (Run(), self.clock.now)
            return Reply({"pid": 100 + len(self.argvs)})
        self.stdins.append(None)
        pid = 100 + len(self.argvs)
        token, _name, in_file, out_file, err_file = argv[2:7]
        command = argv[argv.index("--") + 1 :]
        if self.helper == "unavailable":
            run = Run(rc=fe.CLIENT_RC, stderr=f"hyper-exec: {token} unavailable: /run/hyper/containers/web/exec.sock: Connection refused\n".encode())
        elif self.helper == "lost":
            run = Run(rc=fe.CLIENT_RC, stderr=f"some output\nhyper-exec: {token} lost: the server went away\n".encode())
        else:
            if in_file:
                self.stdins[-1] = self.files[in_file]
            elif "input-data" in args:
                self.stdins[-1] = base64.b64decode(args["input-data"])
            run = self._pick(command)
            if out_file and len(run.stdout) <= ce.INLINE_LIMIT and len(run.stderr) <= ce.INLINE_LIMIT:
                run = Run(rc=run.rc, signal=run.signal, seconds=run.seconds, stdout=run.stdout, stderr=run.stderr + fe.INLINE_MARKER)
            elif out_file:
                self.files[out_file] = run.stdout
                self.files[err_file] = run.stderr
                run = Run(rc=run.rc, signal=run.signal, seconds=run.seconds)
        self._procs[pid] = (run, self.clock.now + run.seconds)
        return Reply({"pid": pid})


@pytest.fixture
def guest(clock: FakeClock) -> HelperGuest:
    return HelperGuest(clock)


@pytest.fixture
def agent(guest: HelperGuest, clock: FakeClock) -> GuestAgent:
    return GuestAgent(guest, name="vm-1", clock=clock, sleep=clock.sleep)


# -- pure parts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, ["T", "web", "", "", "", "--", "echo", "hi"]),
        ({"env": {"A": "1", "B": "x y"}}, ["T", "web", "", "", "", "-e", "A=1", "-e", "B=x y", "--", "echo", "hi"]),
        ({"cwd": "/tmp", "user": "1000:100"}, ["T", "web", "", "", "", "-C", "/tmp", "-u", "1000:100", "--", "echo", "hi"]),
        ({"stdin_file": "/run/i", "stdout_file": "/run/o", "stderr_file": "/run/e"}, ["T", "web", "/run/i", "/run/o", "/run/e", "--", "echo", "hi"]),
    ],
)
def test_client_argv(kwargs: dict[str, Any], expected: list[str]) -> None:
    assert fe.client_argv("T", "web", ["echo", "hi"], **kwargs) == [fe.HYPER_EXEC, "run", *expected]


def _result(rc: Optional[int], stderr: bytes, signal: Optional[int] = None) -> ExecResult:
    return ExecResult(pid=1, rc=rc, signal=signal, stdout=b"", stderr=stderr, stdout_truncated=False, stderr_truncated=False, duration=0.0)


@pytest.mark.parametrize(
    ("rc", "stderr", "expected"),
    [
        (125, b"hyper-exec: tok unavailable: no socket\n", ("unavailable", "no socket")),
        (125, b"out of the command\nhyper-exec: tok lost: gone\n", ("lost", "gone")),
        # Only the client's own words, with the token of this call, count.
        (125, b"hyper-exec: other unavailable: no socket\n", None),
        (125, b"command said\nhyper-exec: tok unavailable: no socket\n", None),
        (125, b"hyper-exec: tok unavailable: no socket\nmore\n", None),
        (125, b"hyper-exec: tok unavailable: no socket", None),
        (0, b"hyper-exec: tok unavailable: no socket\n", None),
        (None, b"hyper-exec: tok unavailable: no socket\n", None),
        (125, b"", None),
    ],
)
def test_client_verdict(rc: Optional[int], stderr: bytes, expected: Optional[tuple[str, str]]) -> None:
    assert fe.client_verdict(_result(rc, stderr), "tok") == expected


def test_tokens_differ() -> None:
    assert len({fe.new_token() for _count in range(50)}) == 50


# -- run_in_container through the helper ---------------------------------------------------------


def test_fast_path_is_one_guest_exec(guest: HelperGuest, agent: GuestAgent) -> None:
    guest.run(("echo",), Run(stdout=b"hi\n"))
    result = ce.run_in_container(agent, "web", ["echo", "hi"])
    assert (result.rc, result.signal, result.stdout, result.timed_out) == (0, None, b"hi\n", False)
    assert guest.names() == ["guest-exec", "guest-exec-status"]
    assert not any(argv[0] == "crun" for argv in guest.argvs)


def test_env_cwd_user_go_to_the_helper_and_no_config_is_read(guest: HelperGuest, agent: GuestAgent) -> None:
    guest.run(("id",), Run())
    ce.run_in_container(agent, "web", ["id"], env={"A": "1"}, cwd="/srv", user="1000:1000")
    argv = guest.helper_runs()[0]
    assert argv[7:] == ["-e", "A=1", "-C", "/srv", "-u", "1000:1000", "--", "id"]
    assert "guest-file-open" not in guest.names()


def test_signal_death_is_reported_as_the_signal(guest: HelperGuest, agent: GuestAgent) -> None:
    guest.run(("sh",), Run(rc=None, signal=11))
    result = ce.run_in_container(agent, "web", ["sh", "-c", "kill -SEGV $$"])
    assert (result.rc, result.signal) == (None, 11)


@pytest.mark.parametrize("code", [0, 1, 125, 128, 137, 255])
def test_exit_codes_pass_through(guest: HelperGuest, agent: GuestAgent, code: int) -> None:
    """125 from the command itself is its exit code: the token is missing from its stderr."""
    guest.run(("x",), Run(rc=code, stderr=b"hyper-exec: guess unavailable: faked\n"))
    result = ce.run_in_container(agent, "web", ["x"])
    assert (result.rc, result.signal) == (code, None)
    assert not any(argv[0] == "crun" for argv in guest.argvs), "never run twice"


def test_large_output_inline(guest: HelperGuest, agent: GuestAgent) -> None:
    guest.run(("cat",), Run(stdout=b"o", stderr=b"e"))
    result = ce.run_in_container(agent, "web", ["cat"], large_output=True)
    assert (result.stdout, result.stderr) == (b"o", b"e")
    assert guest.names() == ["guest-exec", "guest-exec-status"]
    argv = guest.helper_runs()[0]
    assert argv[5].endswith(".out") and argv[6].endswith(".err") and argv[5].startswith("/run/hyper/exec-")


def test_large_output_through_files_read_and_removed(guest: HelperGuest, agent: GuestAgent) -> None:
    big = b"x" * (ce.INLINE_LIMIT + 1)
    guest.run(("cat",), Run(stdout=big, stderr=b"e"))
    result = ce.run_in_container(agent, "web", ["cat"], large_output=True)
    assert (result.stdout, result.stderr) == (big, b"e")
    assert guest.argvs[-1][:2] == ["rm", "-f"]
    assert not any(path.startswith("/run/hyper/exec-") for path in guest.files)


def test_large_stdin_through_a_file(guest: HelperGuest, agent: GuestAgent) -> None:
    data = b"y" * (MAX_REQUEST_DATA + 1)
    guest.run(("cat",), Run())
    ce.run_in_container(agent, "web", ["cat"], stdin=data)
    assert guest.stdins[0] == data
    assert guest.helper_runs()[0][4].endswith(".in")
    assert guest.argvs[-1][:2] == ["rm", "-f"]
    assert not any(path.startswith("/run/hyper/exec-") for path in guest.files)


def test_small_stdin_inline(guest: HelperGuest, agent: GuestAgent) -> None:
    guest.run(("cat",), Run())
    ce.run_in_container(agent, "web", ["cat"], stdin=b"abc")
    assert guest.stdins[0] == b"abc" and guest.helper_runs()[0][4] == ""


def test_timeout_kills_the_client(guest: HelperGuest, agent: GuestAgent) -> None:
    guest.run(("sleep",), Run(seconds=1000))

    def kill(argv: list[str]) -> Run:
        client = guest.argvs.index(guest.helper_runs()[0]) + 101
        assert argv == ["kill", "-KILL", str(client)]
        guest._procs[client] = (Run(rc=None, signal=9), guest.clock.now)
        return Run()

    guest.run(("kill",), kill)
    result = ce.run_in_container(agent, "web", ["sleep", "1000"], timeout=2, large_output=True)
    assert (result.timed_out, result.rc, result.signal) == (True, None, 9)
    assert guest.argvs[-1][:2] == ["rm", "-f"], "the output files are removed"


# -- the fallback ---------------------------------------------------------------------------------


def test_unavailable_falls_back_to_crun_exec(guest: HelperGuest, agent: GuestAgent) -> None:
    guest.helper = "unavailable"
    guest.run(("crun", "exec"), Run(stdout=b"from crun"))
    result = ce.run_in_container(agent, "web", ["echo"], large_output=True)
    assert result.stdout == b"from crun"
    assert len(guest.helper_runs()) == 1 and guest.crun_argvs()[-1][:2] == ["crun", "exec"]
    assert guest.launches == 1, "the helper is started for the next commands"
    assert guest.argvs.index([fe.HYPER_EXEC, "launch", "web"]) < len(guest.argvs) - 1, "before the crun exec"


def test_image_without_client_falls_back_and_is_remembered(guest: HelperGuest, agent: GuestAgent) -> None:
    guest.helper = "absent"
    guest.run(("crun", "exec"), Run(stdout=b"from crun"))
    assert ce.run_in_container(agent, "web", ["echo"]).stdout == b"from crun"
    assert ce.run_in_container(agent, "web", ["echo"]).stdout == b"from crun"
    assert guest.helper_calls == 1, "asked once per agent"


def test_a_failed_launch_does_not_fail_the_command(guest: HelperGuest, agent: GuestAgent, clock: FakeClock) -> None:
    guest.helper = "unavailable"
    guest.run(("crun", "exec"), Run(stdout=b"from crun"))
    original = guest._guest_exec

    def failing_launch(request: dict[str, Any]) -> Reply:
        if request["arguments"]["arg"][:1] == ["launch"]:
            return Reply(error={"class": "GenericError", "desc": "Failed to execute child process"})
        return original(request)

    guest.script["guest-exec"] = [failing_launch]
    assert ce.run_in_container(agent, "web", ["echo"]).stdout == b"from crun"


def test_exec_helper_false_uses_crun_exec(guest: HelperGuest, agent: GuestAgent) -> None:
    guest.run(("crun", "exec"), Run())
    ce.run_in_container(agent, "web", ["true"], exec_helper=False)
    assert guest.helper_runs() == []


@pytest.mark.parametrize(("status", "match"), [("running", "went away while the command ran"), ("stopped", "is stopped")])
def test_lost_is_an_error_never_a_retry(guest: HelperGuest, agent: GuestAgent, status: str, match: str) -> None:
    guest.helper = "lost"
    guest.run(("crun", "state"), Run(stdout=json.dumps({"status": status}).encode()))
    with pytest.raises(ContainerError, match=match):
        ce.run_in_container(agent, "web", ["true"], large_output=True)
    assert not any(argv[:2] == ["crun", "exec"] for argv in guest.crun_argvs())
    assert [argv[0] for argv in guest.argvs] == [fe.HYPER_EXEC, "rm", "crun"], "its files are removed, then the state asked"
