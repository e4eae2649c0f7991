# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""haproxy's master CLI: ``show proc`` read as guest input, and HaproxyGuest.reload through it against a fake guest."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import GuestAgent
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.fast_exec import HYPER_EXEC, MCLI_NO_SOCKET, MCLI_NOT_SENT, MCLI_OTHER_PEER
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.replies import GuestReplyError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.haproxy import BOOST_SCRIPT, RESTORE_SCRIPT, HaproxyGuest, ServiceError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.master_cli import MASTER_SOCKET, MasterState, parse_show_proc, reload_outcome
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.fake_agent import FakeClock, Reply
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.guest.test_exec import FakeGuest, Run

# What haproxy 2.6.12 (Debian 12) answers, measured.
SHOW_PROC = (
    b"#<PID>          <type>          <reloads>       <uptime>        <version>      \n"
    b"11453           master          5 [failed: 1]   0d00h10m26s     2.6.12-1+deb12u4\n"
    b"# workers\n"
    b"26503           worker          1               0d00h00m00s     2.6.12-1+deb12u4\n"
    b"# old workers\n"
    b"26400           worker          2               0d00h00m03s     2.6.12-1+deb12u4\n"
    b"# programs\n\n"
)


def proc_text(reloads: int, failed: int, workers: tuple[int, ...] = (300,)) -> bytes:
    lines = [
        "#<PID>          <type>          <reloads>       <uptime>        <version>      ",
        f"234             master          {reloads} [failed: {failed}]   0d00h01m00s     2.6.12",
    ]
    lines += ["# workers", *(f"{pid}             worker          0               0d00h00m01s     2.6.12" for pid in workers), "# programs", ""]
    return "\n".join(lines).encode()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (SHOW_PROC, MasterState(11453, 5, 1, (26503,))),
        (proc_text(0, 0, ()), MasterState(234, 0, 0, ())),
        (proc_text(7, 2, (301, 302)), MasterState(234, 7, 2, (301, 302))),
    ],
)
def test_parse_show_proc(data: bytes, expected: MasterState) -> None:
    assert parse_show_proc(data, "show proc") == expected


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "no master line"),
        (b"Unknown command.\n", "no master line"),
        (b"\xff\xfe master", "not ASCII"),
        (b"1 master 1 [failed: 0]\n2 master 1 [failed: 0]\n", "two master lines"),
        (b"1 master 4294967295 [failed: 0]\n", "out of range"),
        (b"x" * 600 + b"\n", "over 512"),
        (b"# workers\n" * 2000, "more than 1000 lines"),
    ],
)
def test_parse_show_proc_refuses(data: bytes, match: str) -> None:
    with pytest.raises(GuestReplyError, match=match):
        parse_show_proc(data, "show proc")


@pytest.mark.parametrize(
    ("before", "after", "outcome"),
    [
        ((3, 0), (3, 0), "pending"),
        ((3, 0), (4, 0), "loaded"),
        ((3, 0), (4, 1), "failed"),
        ((4, 1), (5, 1), "loaded"),
        ((4, 1), (6, 2), "failed"),
    ],
)
def test_reload_outcome(before: tuple[int, int], after: tuple[int, int], outcome: str) -> None:
    assert reload_outcome(MasterState(1, *before, ()), MasterState(1, *after, ())) == outcome


@dataclass
class MasterGuest(FakeGuest):
    """A guest with hyper-exec and an haproxy master behind its CLI socket.

    ``reexec`` connections are refused after a reload (the master re-executing itself); a reload then
    loads unless ``broken``. ``socket`` False: the image has no master socket.
    """

    reloads: int = 3
    failed: int = 0
    reexec: int = 2
    refusing: int = 0
    refuse_reload: int = 0
    broken: bool = False
    socket: bool = True
    other_peer: bool = False
    garbage: bytes = b""

    def mcli_lines(self) -> list[str]:
        return [argv[4] for argv in self.argvs if argv[:2] == [HYPER_EXEC, "mcli"]]

    def _guest_exec(self, request: dict[str, Any]) -> Reply:
        args = request["arguments"]
        argv = [args["path"], *args["arg"]]
        if argv[:2] != [HYPER_EXEC, "mcli"]:
            return super()._guest_exec(request)
        assert argv[2:4] == ["haproxy", MASTER_SOCKET] and "env" not in args
        self.argvs.append(argv)
        pid = 100 + len(self.argvs)
        if not self.socket:
            run = Run(rc=MCLI_NO_SOCKET, stderr=b"hyper-exec mcli: /run/haproxy/master.sock in container haproxy: No such file or directory\n")
        elif self.other_peer:
            run = Run(rc=MCLI_OTHER_PEER, stderr=b"hyper-exec mcli: the peer is pid 99, not the container's process 234; nothing sent\n")
        elif self.refusing:
            self.refusing -= 1
            run = Run(rc=MCLI_NOT_SENT, stderr=b"hyper-exec mcli: /run/haproxy/master.sock in container haproxy: Connection refused\n")
        elif argv[4] == "reload" and self.refuse_reload:
            self.refuse_reload -= 1
            run = Run(rc=MCLI_NOT_SENT, stderr=b"hyper-exec mcli: /run/haproxy/master.sock in container haproxy: Connection refused\n")
        elif argv[4] == "reload":
            self.reloads += 1
            self.failed += self.broken
            self.refusing = self.reexec
            run = Run()
        else:
            run = Run(stdout=self.garbage or proc_text(self.reloads, self.failed))
        self._procs[pid] = (run, self.clock.now + 0.02)
        return Reply({"pid": pid})


@pytest.fixture
def master(clock: FakeClock) -> MasterGuest:
    guest = MasterGuest(clock)
    guest.run(("crun", "state", "haproxy"), Run(stdout=json.dumps({"status": "running", "pid": 234}).encode()))
    guest.files["/run/hyper/containers/haproxy/log"] = b"[NOTICE] old\n"
    guest.run(("sh", "-c", BOOST_SCRIPT, "sh", "/run/hyper/containers/haproxy/pid", "-10"), Run(stdout=b"234\n"))
    guest.run(("sh", "-c", RESTORE_SCRIPT, "sh", "234"), Run())
    guest.run(
        ("tail", "-c"),
        Run(stdout=b"[NOTICE] old\n[NOTICE]   (234) : Reloading HAProxy\n[ALERT]    (234) : config : parsing [h.cfg:14] : unknown keyword 'bogus'\n"),
    )
    return guest


def haproxy_of(guest: FakeGuest, clock: FakeClock) -> HaproxyGuest:
    return HaproxyGuest(GuestAgent(guest, name="pod web", clock=clock, sleep=clock.sleep), "haproxy", reload_timeout=30, clock=clock, sleep=clock.sleep)


def test_reload_through_the_master_cli(master: MasterGuest, clock: FakeClock) -> None:
    start = clock.now
    haproxy_of(master, clock).reload()
    # show proc, reload, refused twice while the master re-executes itself, show proc with the new count
    assert master.mcli_lines() == ["show proc", "reload", "show proc", "show proc", "show proc"]
    assert master.reloads == 4
    assert not [argv for argv in master.argvs if argv[0] == "kill" or argv[:2] == ["crun", "kill"]], "no signal"
    assert clock.now - start < 1
    # the master reloads at a higher priority, and it and its workers get theirs back afterwards
    boost, restore = master.argvs.index(["sh", "-c", BOOST_SCRIPT, "sh", "/run/hyper/containers/haproxy/pid", "-10"]), len(master.argvs) - 1
    assert master.argvs[restore] == ["sh", "-c", RESTORE_SCRIPT, "sh", "234"]
    assert master.argvs[boost + 1][4] == "reload"


def test_priority_given_back_after_a_failed_reload(master: MasterGuest, clock: FakeClock) -> None:
    master.broken = True
    with pytest.raises(ServiceError):
        haproxy_of(master, clock).reload()
    assert ["sh", "-c", RESTORE_SCRIPT, "sh", "234"] in master.argvs


@pytest.mark.parametrize("boost", [Run(rc=1), Run(stdout=b"1\n"), Run(stdout=b"not a pid\n")])
def test_reload_without_the_priority_boost(master: MasterGuest, clock: FakeClock, boost: Run) -> None:
    master.runs[("sh", "-c", BOOST_SCRIPT, "sh", "/run/hyper/containers/haproxy/pid", "-10")] = [boost]
    haproxy_of(master, clock).reload()
    assert master.reloads == 4
    assert not [argv for argv in master.argvs if argv[:3] == ["sh", "-c", RESTORE_SCRIPT]]


def test_reload_sent_again_only_when_refused(master: MasterGuest, clock: FakeClock) -> None:
    master.refuse_reload = 2  # refused: nothing was sent, so sending again is safe
    haproxy_of(master, clock).reload()
    assert master.reloads == 4 and master.mcli_lines().count("reload") == 3


def test_failed_reload_names_haproxys_reason(master: MasterGuest, clock: FakeClock) -> None:
    master.broken = True
    with pytest.raises(ServiceError, match="unknown keyword 'bogus'") as caught:
        haproxy_of(master, clock).reload()
    assert "previous one keeps serving" in caught.value.message
    assert master.mcli_lines().count("reload") == 1


def test_reload_times_out_when_the_master_never_comes_back(master: MasterGuest, clock: FakeClock) -> None:
    master.reexec = 10**6
    with pytest.raises(ServiceError, match="did not finish its reload within 30s"):
        haproxy_of(master, clock).reload()
    assert master.mcli_lines().count("reload") == 1, "a sent reload is never sent again"


def test_hostile_show_proc_is_an_error(master: MasterGuest, clock: FakeClock) -> None:
    master.garbage = b"\x00" * 10
    with pytest.raises(GuestReplyError, match=r"not ASCII|no master line"):
        haproxy_of(master, clock).reload()
    assert "reload" not in master.mcli_lines()


@pytest.mark.parametrize("why", ["no socket", "another peer"])
def test_no_usable_master_socket_falls_back_on_the_signal(master: MasterGuest, clock: FakeClock, why: str) -> None:
    master.socket = why != "no socket"
    master.other_peer = why == "another peer"
    children = "/proc/234/task/234/children"
    master.files[children] = b"300 "
    master.run(("wc", "-c"), Run(stdout=b"10 /run/hyper/containers/haproxy/log\n"))
    master.run(("tail", "-c", "+11"), Run(stdout=b"[NOTICE] Loading success.\n[NOTICE] path to executable is /usr/sbin/haproxy\n"))

    def kill(argv: list[str]) -> Run:
        master.files[children] = b"300 301 "
        return Run()

    master.run(("kill", "-USR2", "234"), kill)
    haproxy_of(master, clock).reload()
    assert master.mcli_lines() == ["show proc"]
    assert ["kill", "-USR2", "234"] in master.argvs
