# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""GuestAgent against a scripted fake agent: replies, errors, delays, truncation, death."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import (
    AgentCommandError,
    AgentError,
    AgentTimeout,
    AgentUnavailable,
    DomainNotFound,
    DomainNotRunning,
    SpecError,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest import agent as agent_mod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import (
    MAX_CHUNK,
    MAX_REQUEST_DATA,
    PING_TIMEOUT,
    READ_CHUNK,
    ExecTimeout,
    GuestAgent,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.replies import GuestReplyError
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.fake_agent import FakeClock, Reply, ScriptedTransport


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def running() -> Reply:
    return Reply({"exited": False})


# -- command / ping / info -----------------------------------------------------------------------


def test_ping_sends_guest_ping_with_the_ping_timeout(agent: GuestAgent, transport: ScriptedTransport) -> None:
    transport.on("guest-ping", Reply({}))
    agent.ping()
    assert transport.requests == [{"execute": "guest-ping"}]
    assert transport.timeouts == [PING_TIMEOUT]


def test_command_passes_arguments_and_returns_the_return_value(agent: GuestAgent, transport: ScriptedTransport) -> None:
    transport.on("guest-info", Reply({"version": "7.2.19", "supported_commands": []}))
    assert agent.info()["version"] == "7.2.19"
    assert agent.command("guest-info", {"x": 1}) == {"version": "7.2.19", "supported_commands": []}
    assert transport.requests[1] == {"execute": "guest-info", "arguments": {"x": 1}}
    assert transport.timeouts == [agent_mod.CALL_TIMEOUT, agent_mod.CALL_TIMEOUT]


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"hello": 1}', "has no 'return'"),
    ],
)
def test_malformed_replies_are_agent_errors(agent: GuestAgent, transport: ScriptedTransport, raw: str, needle: str) -> None:
    transport.on("guest-ping", Reply(raw=raw))
    with pytest.raises(AgentError) as err:
        agent.ping()
    assert err.type in (AgentError, GuestReplyError)  # never a timeout or unavailable: nothing retries it
    assert needle in err.value.message


def test_error_reply_becomes_agent_command_error_with_class_and_desc(agent: GuestAgent, transport: ScriptedTransport) -> None:
    transport.on("guest-file-open", Reply(error={"class": "GenericError", "desc": "failed to open file '/nope': No such file or directory"}))
    with pytest.raises(AgentCommandError) as err:
        agent.read_file("/nope")
    assert err.value.command == "guest-file-open"
    assert err.value.error_class == "GenericError"
    assert err.value.desc == "failed to open file '/nope': No such file or directory"
    assert err.value.message.startswith("vm-under-test: guest agent command guest-file-open failed: failed to open file '/nope'")


def test_info_that_is_not_an_object_is_an_error(agent: GuestAgent, transport: ScriptedTransport) -> None:
    transport.on("guest-info", Reply([1]))
    with pytest.raises(AgentError, match="not an object"):
        agent.info()


# -- wait_ready ------------------------------------------------------------------------------------


def test_wait_ready_polls_with_growing_sleeps_until_the_agent_answers(agent: GuestAgent, transport: ScriptedTransport, clock: FakeClock) -> None:
    not_yet = Reply(raise_=AgentUnavailable("QEMU guest agent is not connected"))
    transport.on("guest-ping", not_yet, not_yet, not_yet, not_yet, Reply({}))
    waited = agent.wait_ready(timeout=30)
    assert transport.names() == ["guest-ping"] * 5
    assert clock.sleeps == pytest.approx([0.005, 0.0075, 0.01125, 0.016875])
    assert waited == pytest.approx(sum(clock.sleeps))


def test_wait_ready_gives_up_at_the_deadline_with_the_last_error(agent: GuestAgent, transport: ScriptedTransport, clock: FakeClock) -> None:
    transport.on("guest-ping", Reply(raise_=AgentTimeout("Guest agent not available for now")))
    start = clock.now
    with pytest.raises(AgentTimeout) as err:
        agent.wait_ready(timeout=3)
    assert "did not answer within 3s" in err.value.message
    assert "not available for now" in err.value.message
    assert clock.now - start == pytest.approx(3.0)
    assert max(clock.sleeps) == pytest.approx(0.2)
    # The per-call ping timeout never exceeds what is left (and is at least libvirt's 1 s).
    assert set(transport.timeouts) <= {1, 2}


def test_wait_ready_fails_fast_when_the_domain_dies(agent: GuestAgent, transport: ScriptedTransport, clock: FakeClock) -> None:
    transport.on("guest-ping", Reply(raise_=AgentUnavailable("not connected")))
    alive = iter([True, True, False])
    with pytest.raises(DomainNotRunning) as err:
        agent.wait_ready(timeout=120, is_alive=lambda: next(alive))
    assert len(transport.requests) == 3
    assert "stopped before its guest agent answered" in err.value.message
    assert clock.now - 1000.0 < 1


@pytest.mark.parametrize("error", [DomainNotFound("domain vanished"), DomainNotRunning("domain is not running")])
def test_wait_ready_does_not_retry_a_dead_domain(agent: GuestAgent, transport: ScriptedTransport, error: Exception) -> None:
    transport.on("guest-ping", Reply(raise_=error))  # type: ignore[arg-type]
    with pytest.raises(type(error)):
        agent.wait_ready(timeout=120)
    assert len(transport.requests) == 1


# -- exec ------------------------------------------------------------------------------------------


def test_exec_success_sends_one_guest_exec_and_polls_status(agent: GuestAgent, transport: ScriptedTransport, clock: FakeClock) -> None:
    transport.on("guest-exec", Reply({"pid": 42}))
    transport.on(
        "guest-exec-status",
        running(),
        running(),
        Reply({"exited": True, "exitcode": 0, "out-data": b64(b"crun version 1.8.1\n"), "err-data": b64(b"warn\n")}, delay=0.01),
    )
    result = agent.exec(["crun", "--version"], env={"PATH": "/bin", "LANG": "C"}, stdin=b"input\x00bytes")
    assert result.rc == 0
    assert result.signal is None
    assert result.stdout == b"crun version 1.8.1\n"
    assert result.stderr == b"warn\n"
    assert (result.stdout_truncated, result.stderr_truncated) == (False, False)
    assert result.pid == 42
    assert result.duration == pytest.approx(0.01 + 0.01 + 0.01)  # two paced sleeps of 10 ms, then the reply delay
    exec_request = transport.requests[0]
    assert exec_request == {
        "execute": "guest-exec",
        "arguments": {
            "path": "crun",
            "arg": ["--version"],
            "capture-output": True,
            "env": ["PATH=/bin", "LANG=C"],
            "input-data": b64(b"input\x00bytes"),
        },
    }
    assert transport.names() == ["guest-exec"] + ["guest-exec-status"] * 3
    assert all(r["arguments"] == {"pid": 42} for r in transport.requests[1:])


def test_exec_without_capture_and_env_sends_only_what_is_needed(agent: GuestAgent, transport: ScriptedTransport) -> None:
    transport.on("guest-exec", Reply({"pid": 7}))
    transport.on("guest-exec-status", Reply({"exited": True, "exitcode": 3}))
    result = agent.exec(["/bin/false"], capture=False)
    assert transport.requests[0]["arguments"] == {"path": "/bin/false", "arg": [], "capture-output": False}
    assert (result.rc, result.stdout, result.stderr) == (3, b"", b"")


def test_exec_killed_by_signal_has_no_rc(agent: GuestAgent, transport: ScriptedTransport) -> None:
    transport.on("guest-exec", Reply({"pid": 9}))
    transport.on("guest-exec-status", Reply({"exited": True, "signal": 15}))
    result = agent.exec(["sleep", "100"])
    assert result.rc is None
    assert result.signal == 15


@pytest.mark.parametrize(("out", "err"), [(True, False), (False, True), (True, True)])
def test_exec_reports_truncated_streams(agent: GuestAgent, transport: ScriptedTransport, out: bool, err: bool) -> None:
    transport.on("guest-exec", Reply({"pid": 5}))
    transport.on("guest-exec-status", Reply({"exited": True, "exitcode": 0, "out-data": b64(b"x" * 10), "out-truncated": out, "err-truncated": err}))
    result = agent.exec(["yes"])
    assert (result.stdout_truncated, result.stderr_truncated) == (out, err)
    assert result.stdout == b"x" * 10


def test_exec_timeout_kills_the_process_and_never_resends_the_command(agent: GuestAgent, transport: ScriptedTransport, clock: FakeClock) -> None:
    transport.on("guest-exec", Reply({"pid": 100}), Reply({"pid": 101}))
    killed = {"done": False}

    def status(request: dict[str, Any]) -> Reply:
        pid = request["arguments"]["pid"]
        if pid == 101:  # the kill itself
            killed["done"] = True
            return Reply({"exited": True, "exitcode": 0})
        if killed["done"]:
            return Reply({"exited": True, "signal": 9, "out-data": b64(b"partial")})
        return running()

    transport.on("guest-exec-status", status)
    with pytest.raises(ExecTimeout) as err:
        agent.exec(["sleep", "1000"], timeout=2)
    exec_requests = [r for r in transport.requests if r["execute"] == "guest-exec"]
    assert [r["arguments"]["path"] for r in exec_requests] == ["sleep", "kill"]
    assert exec_requests[1]["arguments"]["arg"] == ["-KILL", "100"]
    assert err.value.killed is True
    assert err.value.result is not None
    assert err.value.result.signal == 9
    assert err.value.result.stdout == b"partial"
    assert err.value.details == {"killed": True, "rc": None, "signal": 9, "stdout": "partial", "stderr": ""}
    assert "ran longer than 2s and killed" in err.value.message
    assert isinstance(err.value, AgentTimeout)


def test_exec_timeout_when_the_kill_fails(agent: GuestAgent, transport: ScriptedTransport) -> None:
    transport.on("guest-exec", Reply({"pid": 100}), Reply(error={"class": "GenericError", "desc": "Failed to execute child process kill"}))
    transport.on("guest-exec-status", running())
    with pytest.raises(ExecTimeout) as err:
        agent.exec(["sleep", "1000"], timeout=1)
    assert err.value.killed is False
    assert err.value.result is None
    assert "could not be killed" in err.value.message


def test_guest_exec_without_answer_is_not_retried(agent: GuestAgent, transport: ScriptedTransport) -> None:
    transport.on("guest-exec", Reply(raise_=AgentTimeout("Guest agent not available for now"), delay=10))
    with pytest.raises(AgentTimeout, match="may or may not have run"):
        agent.exec(["touch", "/x"])
    assert transport.names() == ["guest-exec"]


def test_a_status_poll_that_times_out_is_repeated(agent: GuestAgent, transport: ScriptedTransport) -> None:
    transport.on("guest-exec", Reply({"pid": 1}))
    transport.on("guest-exec-status", Reply(raise_=AgentTimeout("slow"), delay=1), Reply({"exited": True, "exitcode": 0}))
    assert agent.exec(["true"]).rc == 0
    assert transport.names() == ["guest-exec", "guest-exec-status", "guest-exec-status"]


def test_agent_dying_during_exec_surfaces_as_unavailable(agent: GuestAgent, transport: ScriptedTransport) -> None:
    transport.on("guest-exec", Reply({"pid": 1}))
    transport.on("guest-exec-status", running(), Reply(raise_=DomainNotRunning("domain is not running")))
    with pytest.raises(AgentUnavailable):
        agent.exec(["sleep", "5"])


@pytest.mark.parametrize(
    ("argv", "stdin", "option"),
    [
        ([], None, "command"),
        ([""], None, "command"),
        (["cat"], b"x" * (MAX_REQUEST_DATA + 1), "stdin"),
    ],
)
def test_exec_rejects_bad_input_before_sending_anything(
    agent: GuestAgent, transport: ScriptedTransport, argv: list[str], stdin: bytes | None, option: str
) -> None:
    with pytest.raises(SpecError) as err:
        agent.exec(argv, stdin=stdin)
    assert err.value.option == option
    assert transport.requests == []


def test_bad_base64_in_output_is_an_error(agent: GuestAgent, transport: ScriptedTransport) -> None:
    transport.on("guest-exec", Reply({"pid": 1}))
    transport.on("guest-exec-status", Reply({"exited": True, "exitcode": 0, "out-data": "!!!not base64"}))
    with pytest.raises(AgentError, match="invalid base64 in out-data"):
        agent.exec(["true"])


# -- files -----------------------------------------------------------------------------------------


def test_read_file_reads_in_chunks_and_closes(agent: GuestAgent, transport: ScriptedTransport) -> None:
    transport.on("guest-file-open", Reply(7))
    transport.on(
        "guest-file-read",
        Reply({"count": 4, "buf-b64": b64(b"abcd"), "eof": False}),
        Reply({"count": 4, "buf-b64": b64(b"efgh"), "eof": False}),
        Reply({"count": 1, "buf-b64": b64(b"i"), "eof": True}),
    )
    transport.on("guest-file-close", Reply({}))
    assert agent.read_file("/etc/hostname", chunk_size=4) == b"abcdefghi"
    assert transport.names() == ["guest-file-open"] + ["guest-file-read"] * 3 + ["guest-file-close"]
    assert transport.requests[0]["arguments"] == {"path": "/etc/hostname", "mode": "r"}
    assert {json.dumps(r["arguments"]) for r in transport.requests[1:4]} == {'{"handle": 7, "count": 4}'}
    assert transport.requests[-1]["arguments"] == {"handle": 7}


def test_read_file_stops_on_an_empty_chunk_without_eof(agent: GuestAgent, transport: ScriptedTransport) -> None:
    transport.on("guest-file-open", Reply(1))
    transport.on("guest-file-read", Reply({"count": 2, "buf-b64": b64(b"ab"), "eof": False}), Reply({"count": 0, "buf-b64": "", "eof": False}))
    transport.on("guest-file-close", Reply({}))
    assert agent.read_file("/proc/x", chunk_size=2) == b"ab"


@pytest.mark.parametrize(
    ("reply", "limit", "needle"),
    [
        ({"count": 5, "buf-b64": b64(b"abcd"), "eof": True}, None, "agent said 5 bytes, sent 4"),
        ({"count": 4, "buf-b64": b64(b"abcd"), "eof": False}, 6, "larger than the limit of 6 bytes"),
    ],
)
def test_read_file_errors_still_close_the_handle(
    agent: GuestAgent, transport: ScriptedTransport, reply: dict[str, Any], limit: int | None, needle: str
) -> None:
    transport.on("guest-file-open", Reply(3))
    transport.on("guest-file-read", Reply(reply))
    transport.on("guest-file-close", Reply(error={"class": "GenericError", "desc": "close failed too"}))
    with pytest.raises(AgentError) as err:
        agent.read_file("/big", chunk_size=4, limit=limit)
    assert needle in err.value.message  # the close error does not hide the cause
    assert transport.names()[-1] == "guest-file-close"


def test_close_error_after_a_good_read_is_reported(agent: GuestAgent, transport: ScriptedTransport) -> None:
    transport.on("guest-file-open", Reply(3))
    transport.on("guest-file-read", Reply({"count": 1, "buf-b64": b64(b"a"), "eof": True}))
    transport.on("guest-file-close", Reply(error={"class": "GenericError", "desc": "failed to close handle"}))
    with pytest.raises(AgentCommandError, match="failed to close handle"):
        agent.read_file("/f")


def test_write_file_writes_counted_chunks_and_closes(agent: GuestAgent, transport: ScriptedTransport) -> None:
    transport.on("guest-file-open", Reply(11))
    transport.on("guest-file-write", lambda request: Reply({"count": request["arguments"]["count"], "eof": False}))
    transport.on("guest-file-close", Reply({}))
    data = bytes(range(10))
    assert agent.write_file("/tmp/f", data, chunk_size=4) == 10
    writes = [r["arguments"] for r in transport.requests if r["execute"] == "guest-file-write"]
    assert [w["count"] for w in writes] == [4, 4, 2]
    assert b"".join(base64.b64decode(w["buf-b64"]) for w in writes) == data
    assert transport.requests[0]["arguments"] == {"path": "/tmp/f", "mode": "w"}
    assert transport.names()[-1] == "guest-file-close"


def test_write_file_append_and_mode(agent: GuestAgent, transport: ScriptedTransport) -> None:
    transport.on("guest-file-open", Reply(2))
    transport.on("guest-file-write", lambda request: Reply({"count": request["arguments"]["count"], "eof": False}))
    transport.on("guest-file-close", Reply({}))
    transport.on("guest-exec", Reply({"pid": 8}))
    transport.on("guest-exec-status", Reply({"exited": True, "exitcode": 0}))
    agent.write_file("/etc/motd", b"hi", mode=0o644, append=True)
    assert transport.requests[0]["arguments"]["mode"] == "a"
    chmod = next(r for r in transport.requests if r["execute"] == "guest-exec")
    assert chmod["arguments"]["path"] == "chmod"
    assert chmod["arguments"]["arg"] == ["644", "/etc/motd"]


def test_write_file_short_write_is_an_error_and_closes(agent: GuestAgent, transport: ScriptedTransport) -> None:
    transport.on("guest-file-open", Reply(4))
    transport.on("guest-file-write", Reply({"count": 3, "eof": False}))
    transport.on("guest-file-close", Reply({}))
    with pytest.raises(AgentError, match="short write at byte 0 \\(3 of 4\\)"):
        agent.write_file("/f", b"abcdefgh", chunk_size=4)
    assert transport.names() == ["guest-file-open", "guest-file-write", "guest-file-close"]


def test_write_file_of_nothing_truncates(agent: GuestAgent, transport: ScriptedTransport) -> None:
    transport.on("guest-file-open", Reply(4))
    transport.on("guest-file-close", Reply({}))
    assert agent.write_file("/f", b"") == 0
    assert transport.names() == ["guest-file-open", "guest-file-close"]


@pytest.mark.parametrize("chunk_size", [0, -1, MAX_CHUNK + 1])
def test_read_chunk_bounds(agent: GuestAgent, transport: ScriptedTransport, chunk_size: int) -> None:
    with pytest.raises(SpecError):
        agent.read_file("/f", chunk_size=chunk_size)
    assert transport.requests == []


@pytest.mark.parametrize("chunk_size", [0, -1, MAX_REQUEST_DATA + 1, MAX_CHUNK])
def test_write_chunk_bounds(agent: GuestAgent, transport: ScriptedTransport, chunk_size: int) -> None:
    with pytest.raises(SpecError):
        agent.write_file("/f", b"x", chunk_size=chunk_size)
    assert transport.requests == []


def test_default_chunks(agent: GuestAgent, transport: ScriptedTransport) -> None:
    transport.on("guest-file-open", Reply(1))
    transport.on("guest-file-read", Reply({"count": 0, "buf-b64": "", "eof": True}))
    transport.on("guest-file-write", lambda request: Reply({"count": request["arguments"]["count"], "eof": False}))
    transport.on("guest-file-close", Reply({}))
    agent.read_file("/f")
    agent.write_file("/g", b"y" * (MAX_REQUEST_DATA + 1))
    assert transport.requests[1]["arguments"]["count"] == READ_CHUNK
    assert [r["arguments"]["count"] for r in transport.requests if r["execute"] == "guest-file-write"] == [MAX_REQUEST_DATA, 1]


def test_a_full_read_chunk_fits_in_one_libvirt_string() -> None:
    # libvirtd refuses RPC strings above 4 MiB; a maximal read reply must fit.
    reply = json.dumps({"return": {"count": MAX_CHUNK, "buf-b64": b64(b"\xff" * MAX_CHUNK), "eof": False}})
    assert len(reply) < 4 * 1024 * 1024
    assert MAX_CHUNK > 3 * 1024 * 1024 - 128 * 1024  # and we do not waste much of it


def test_a_full_write_request_stays_below_the_measured_request_limit() -> None:
    # Requests of ~220 KB failed against qemu-ga 7.2 (see agent.py); stay well below.
    data = b"\xff" * MAX_REQUEST_DATA
    request = json.dumps({"execute": "guest-file-write", "arguments": {"handle": 123456789, "buf-b64": b64(data), "count": MAX_REQUEST_DATA}})
    assert len(request) < 200_000
