# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""HaproxyGuest against the fake guest agent: argv lists, atomic files, validation, reload verdicts."""

from __future__ import annotations

import json

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import AgentError, ContainerError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import GuestAgent
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.fast_exec import without_client
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.safe_files import SAFE_IO_ARGV
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.haproxy import (
    ADD_VIPS_SCRIPT,
    REMOVE_VIPS_SCRIPT,
    RESIGNAL_SECONDS,
    HaproxyGuest,
    ServiceError,
)
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.fake_agent import FakeClock
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.guest.test_exec import FakeGuest, Run

ROOTFS = "/run/hyper/containers/haproxy/rootfs"
LOG = "/run/hyper/containers/haproxy/log"
CHILDREN = "/proc/234/task/234/children"


@pytest.fixture
def fake(clock: FakeClock) -> FakeGuest:
    guest = FakeGuest(clock)
    guest.run(("crun", "state", "haproxy"), Run(stdout=json.dumps({"status": "running", "pid": 234}).encode()))
    guest.run(("mv", "-f"), lambda argv: _mv(guest, argv))
    guest.run(SAFE_IO_ARGV, lambda argv: _safe_io(guest, argv))
    return guest


def _safe_io(guest: FakeGuest, argv: list[str]) -> Run:
    """The guest step of ContainerFiles (guest/scripts/safe_io.py), on the fake's files."""
    root, op, *args = argv[len(SAFE_IO_ARGV) :]
    files = guest.files
    if op == "read":
        path = f"{root}/{args[0]}"
        if path not in files:
            return Run(rc=2)
        offset, count = int(args[1]), int(args[2])
        return Run(stdout=files[path][offset : offset + count])
    if op == "write":
        files[f"{root}/{args[1]}"] = guest.stdins[-1] or b""
        return Run()
    if op == "rename":
        if f"{root}/{args[0]}" not in files:
            return Run(rc=2)
        files[f"{root}/{args[1]}"] = files.pop(f"{root}/{args[0]}")
        return Run()
    files.pop(f"{root}/{args[0]}", None)
    return Run()


def _mv(guest: FakeGuest, argv: list[str]) -> Run:
    guest.files[argv[3]] = guest.files.pop(argv[2])
    return Run()


@pytest.fixture
def haproxy(fake: FakeGuest, clock: FakeClock) -> HaproxyGuest:
    agent = GuestAgent(fake, name="pod web", clock=clock, sleep=clock.sleep)
    without_client(agent)  # haproxy -c through crun exec here; test_fast_exec covers the exec helper
    return HaproxyGuest(agent, "haproxy", reload_timeout=30, clock=clock, sleep=clock.sleep)


def test_missing_container(fake: FakeGuest, haproxy: HaproxyGuest) -> None:
    fake.runs[("crun", "state", "haproxy")] = [Run(rc=1, stderr=b"crun: container `haproxy` does not exist")]
    with pytest.raises(ContainerError, match="haproxy_image"):
        haproxy.check_running()


def test_stopped_container(fake: FakeGuest, haproxy: HaproxyGuest) -> None:
    fake.runs[("crun", "state", "haproxy")] = [Run(stdout=b'{"status": "stopped", "pid": 0}')]
    with pytest.raises(ContainerError, match="is stopped"):
        haproxy.check_running()


def test_state_file(fake: FakeGuest, haproxy: HaproxyGuest) -> None:
    assert haproxy.read_state() is None
    fake.files[f"{ROOTFS}/etc/haproxy/hyper-services.json"] = b"{not json"
    with pytest.raises(ServiceError, match=r"pod web: /etc/haproxy/hyper-services\.json in container haproxy: not valid JSON"):
        haproxy.read_state()
    fake.files[f"{ROOTFS}/etc/haproxy/hyper-services.json"] = b'{"services": "x"}'
    with pytest.raises(ServiceError, match="not a hyper_service state file"):
        haproxy.read_state()
    haproxy.write_state({"format": 1, "services": [], "vips": []})
    assert haproxy.read_state() == {"format": 1, "services": [], "vips": []}
    assert f"{ROOTFS}/etc/haproxy/hyper-services.json.hyper-new" not in fake.files  # written beside, renamed over


def test_validate_runs_haproxy_c_in_the_container(fake: FakeGuest, haproxy: HaproxyGuest) -> None:
    fake.run(("crun", "exec"), Run(stdout=b"Configuration file is valid\n"))
    haproxy.validate("global\n")
    assert fake.files[f"{ROOTFS}/etc/haproxy/haproxy.cfg.hyper-new"] == b"global\n"
    assert fake.crun_argvs()[-1][-4:] == ["/usr/sbin/haproxy", "-c", "-f", "/etc/haproxy/haproxy.cfg.hyper-new"]
    haproxy.install_config()
    assert fake.files[f"{ROOTFS}/etc/haproxy/haproxy.cfg"] == b"global\n"


def test_validation_error_carries_haproxy_words_and_removes_the_candidate(fake: FakeGuest, haproxy: HaproxyGuest) -> None:
    alert = b"[ALERT]    (7) : config : parsing [/etc/haproxy/haproxy.cfg.hyper-new:6] : unknown keyword 'bogus' in 'global' section\n"
    fake.run(("crun", "exec"), Run(rc=1, stdout=b"[NOTICE] something\n" + alert))
    with pytest.raises(ServiceError, match="unknown keyword 'bogus'") as err:
        haproxy.validate("global\n    bogus\n")
    assert "[NOTICE]" not in err.value.message
    assert f"{ROOTFS}/etc/haproxy/haproxy.cfg.hyper-new" not in fake.files


def test_vip_scripts_take_addresses_as_parameters(fake: FakeGuest, haproxy: HaproxyGuest) -> None:
    fake.run(("sh", "-c"), Run())
    haproxy.add_vips(["10.96.0.10", "fd00::10"])
    haproxy.remove_vips(["10.96.0.11"])
    haproxy.add_vips([])
    assert fake.argvs[-2:] == [
        ["sh", "-c", ADD_VIPS_SCRIPT, "sh", "10.96.0.10/32", "fd00::10/128"],
        ["sh", "-c", REMOVE_VIPS_SCRIPT, "sh", "10.96.0.11/32"],
    ]


def test_vip_failure_names_the_addresses(fake: FakeGuest, haproxy: HaproxyGuest) -> None:
    fake.run(("sh", "-c"), Run(rc=1, stderr=b"ip: RTNETLINK answers: Operation not permitted"))
    with pytest.raises(AgentError, match=r"adding 10\.96\.0\.10 to lo failed: ip: RTNETLINK answers: Operation not permitted"):
        haproxy.add_vips(["10.96.0.10"])


def _reload_script(fake: FakeGuest, log_after: bytes, new_worker_after: int) -> None:
    """The master forks a new worker once it has been signalled ``new_worker_after`` times (0: never)."""
    fake.files[CHILDREN] = b"300 "
    fake.files[LOG] = b"old lines\n"
    fake.run(("wc", "-c"), Run(stdout=b"10 " + LOG.encode() + b"\n"))
    fake.run(("tail", "-c", "+11"), lambda argv: Run(stdout=log_after if fake.argvs.count(["kill", "-USR2", "234"]) else b""))

    def kill(argv: list[str]) -> Run:
        if new_worker_after and fake.argvs.count(argv) >= new_worker_after:
            fake.files[CHILDREN] = b"300 301 "
        return Run()

    fake.run(("kill", "-USR2", "234"), kill)


def test_reload_done_when_a_new_worker_exists(fake: FakeGuest, haproxy: HaproxyGuest, clock: FakeClock) -> None:
    log = b"[NOTICE] Reloading HAProxy\n[NOTICE] New worker (9) forked\n[NOTICE] Loading success.\n[NOTICE] path to executable is /usr/sbin/haproxy\n"
    _reload_script(fake, log, new_worker_after=1)
    start = clock.now
    haproxy.reload()
    assert fake.argvs.count(["kill", "-USR2", "234"]) == 1
    assert clock.now - start < 1  # the master was back from its re-execution at once


def test_reload_waits_for_the_master_to_settle_but_never_fails(fake: FakeGuest, haproxy: HaproxyGuest, clock: FakeClock) -> None:
    _reload_script(fake, b"[NOTICE] Loading success.\n", new_worker_after=1)
    start = clock.now
    haproxy.reload()
    assert 10 <= clock.now - start < 12


def test_reload_signal_sent_again_when_lost(fake: FakeGuest, haproxy: HaproxyGuest, clock: FakeClock) -> None:
    _reload_script(fake, b"", new_worker_after=2)
    start = clock.now
    haproxy.reload()
    assert fake.argvs.count(["kill", "-USR2", "234"]) == 2
    assert clock.now - start >= RESIGNAL_SECONDS


def test_reload_waits_for_the_first_worker_of_a_starting_master(fake: FakeGuest, clock: FakeClock) -> None:
    """A master still starting has no worker (nor master socket: reload() goes by signal); a signal then is lost and its first worker is no reload."""
    log = b"[NOTICE] Reloading HAProxy\n[NOTICE] New worker (9) forked\n[NOTICE] Loading success.\n[NOTICE] path to executable is /usr/sbin/haproxy\n"
    _reload_script(fake, log, new_worker_after=0)
    fake.files[CHILDREN] = b""

    def kill(argv: list[str]) -> Run:
        if fake.files[CHILDREN]:  # only a master with a worker acts on the signal
            fake.files[CHILDREN] += b"301 "
        return Run()

    fake.runs[("kill", "-USR2", "234")] = [kill]

    def sleep(seconds: float) -> None:
        fake.files[CHILDREN] = fake.files[CHILDREN] or b"300 "  # the first worker is forked meanwhile
        clock.sleep(seconds)

    haproxy = HaproxyGuest(GuestAgent(fake, name="pod web", clock=clock, sleep=clock.sleep), "haproxy", reload_timeout=30, clock=clock, sleep=sleep)
    haproxy.reload()
    assert fake.files[CHILDREN] == b"300 301 "  # the reload's own worker, not the first one
    assert fake.argvs.count(["kill", "-USR2", "234"]) == 1


def test_reload_failure_carries_the_alerts(fake: FakeGuest, haproxy: HaproxyGuest) -> None:
    log = (
        b"[NOTICE]   (1) : Reloading HAProxy\n"
        b"[ALERT]    (1) : Binding [/etc/haproxy/haproxy.cfg:10] for proxy web: cannot bind socket (Cannot assign requested address) for [10.96.0.99:80]\n"
        b"[WARNING]  (1) : Loading failure!\n"
    )
    _reload_script(fake, log, new_worker_after=0)
    with pytest.raises(ServiceError, match="Cannot assign requested address") as err:
        haproxy.reload()
    assert "previous one keeps serving" in err.value.message
    assert err.value.details["haproxy_output"][-1].endswith("Loading failure!")


def test_reload_timeout(fake: FakeGuest, haproxy: HaproxyGuest, clock: FakeClock) -> None:
    _reload_script(fake, b"", new_worker_after=0)
    with pytest.raises(ServiceError, match="did not finish its reload within 30s"):
        haproxy.reload()
    assert clock.now >= 1030
