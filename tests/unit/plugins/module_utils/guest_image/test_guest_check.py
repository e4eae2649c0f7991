# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""check_guest with a fake libvirt client and the scripted agent: results, failures, cleanup."""

from __future__ import annotations

import base64
import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import AgentUnavailable, BootError, HyperError, LibvirtFailure
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest_image.check import GuestCheckRequest, check_guest
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.console import console_tail
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.fake_agent import FakeClock, Reply, ScriptedTransport


class FakeDomain:
    def __init__(self, xml: str) -> None:
        self.xml = xml
        root = ET.fromstring(xml)
        self.vm_name = root.findtext("name") or ""
        self.console = root.find("devices/serial/source").get("path") or ""  # type: ignore[union-attr]
        self.active = True


class FakeClient:
    def __init__(self, console_lines: int = 0, create_error: Exception | None = None, dies: bool = False) -> None:
        self.domains: list[FakeDomain] = []
        self.destroyed: list[str] = []
        self.closed = False
        self.console_lines = console_lines
        self.create_error = create_error
        self.dies = dies

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed = True

    def create_transient(self, xml: str) -> FakeDomain:
        if self.create_error is not None:
            raise self.create_error
        dom = FakeDomain(xml)
        with open(dom.console, "w", encoding="utf-8") as handle:
            handle.writelines(f"console line {n}\r\n" for n in range(self.console_lines))
        dom.active = not self.dies
        self.domains.append(dom)
        return dom

    def is_active(self, dom: FakeDomain) -> bool:
        return dom.active

    def destroy(self, dom: FakeDomain) -> bool:
        self.destroyed.append(dom.vm_name)
        was, dom.active = dom.active, False
        return was


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "host.json").write_text('{"accelerator": "tcg", "format": 1}')
    image = tmp_path / "images" / "default"
    image.mkdir(parents=True)
    (image / "vmlinuz").write_bytes(b"k")
    (image / "initrd.img").write_bytes(b"i")
    (image / "manifest.json").write_text(
        json.dumps({"kernel_args": "console=ttyS0", "kernel": {"version": "6.1.0-test"}, "agent_channel": "org.qemu.guest_agent.0"})
    )
    return tmp_path


def run(root: Path, client: FakeClient, transport: ScriptedTransport, clock: FakeClock, **request: Any) -> dict[str, Any]:
    return check_guest(
        GuestCheckRequest(root=str(root), **request),
        open_client=lambda uri: client,  # type: ignore[arg-type,return-value]
        make_transport=lambda dom, name: transport,
        clock=clock,
        sleep=clock.sleep,
    )


def script_good_boot(transport: ScriptedTransport, rc: int = 0) -> None:
    not_yet = Reply(raise_=AgentUnavailable("QEMU guest agent is not connected"), delay=1.0)
    transport.on("guest-ping", not_yet, not_yet, Reply({}, delay=0.003))
    transport.on("guest-info", Reply({"version": "7.2.19"}))
    transport.on("guest-exec", Reply({"pid": 77}, delay=0.01))
    out = base64.b64encode(b"crun version 1.8.1\n").decode()
    err = base64.b64encode(b"oops\n" if rc else b"").decode()
    transport.on("guest-exec-status", Reply({"exited": True, "exitcode": rc, "out-data": out, "err-data": err}, delay=0.02))


def test_successful_check_reports_timings_and_cleans_up(root: Path, transport: ScriptedTransport, clock: FakeClock) -> None:
    client = FakeClient(console_lines=3)
    script_good_boot(transport)
    result = run(root, client, transport, clock)
    vm_id = result["vm_id"]
    assert re.fullmatch(r"hyper-check-[0-9a-f]{8}", vm_id)
    assert result["changed"] is False
    assert (result["accelerator"], result["agent_version"], result["image"], result["kernel_version"]) == ("tcg", "7.2.19", "default", "6.1.0-test")
    assert (result["rc"], result["signal"], result["stdout"], result["stderr"]) == (0, None, "crun version 1.8.1\n", "")
    assert result["boot_seconds"] == pytest.approx(2.003 + 0.005 + 0.0075, abs=0.001)
    assert result["exec_seconds"] == pytest.approx(0.03, abs=0.001)
    assert transport.names() == ["guest-ping"] * 3 + ["guest-info", "guest-exec", "guest-exec-status"]
    assert transport.requests[4]["arguments"]["path"] == "crun"
    dom = client.domains[0]
    assert dom.vm_name == vm_id
    assert ET.fromstring(dom.xml).findtext("title") == "hyper guest check of image default"
    assert dom.console == str(root / "run" / f"{vm_id}.console.log")
    assert client.destroyed == [vm_id]
    assert not os.path.exists(dom.console)
    assert client.closed


def test_guest_that_dies_fails_with_the_console_tail(root: Path, transport: ScriptedTransport, clock: FakeClock) -> None:
    client = FakeClient(console_lines=45, dies=True)
    transport.on("guest-ping", Reply(raise_=AgentUnavailable("QEMU guest agent is not connected")))
    with pytest.raises(BootError) as err:
        run(root, client, transport, clock)
    assert err.value.console_tail == [f"console line {n}" for n in range(15, 45)]
    assert err.value.details["console_tail"] == err.value.console_tail
    assert "did not come up" in err.value.message
    assert "image default, tcg" in err.value.message
    assert client.destroyed == [client.domains[0].vm_name]
    assert not os.path.exists(client.domains[0].console)


def test_boot_timeout_is_a_boot_error(root: Path, transport: ScriptedTransport, clock: FakeClock) -> None:
    client = FakeClient(console_lines=2)
    transport.on("guest-ping", Reply(raise_=AgentUnavailable("QEMU guest agent is not connected")))
    with pytest.raises(BootError, match="did not answer within 5s") as err:
        run(root, client, transport, clock, timeout=5)
    assert err.value.console_tail == ["console line 0", "console line 1"]
    assert len(client.destroyed) == 1


def test_failing_command_fails_with_its_output_after_cleanup(root: Path, transport: ScriptedTransport, clock: FakeClock) -> None:
    client = FakeClient()
    script_good_boot(transport, rc=2)
    with pytest.raises(HyperError) as err:
        run(root, client, transport, clock, command=("crun", "nonsense"))
    assert "crun nonsense ended with rc 2: oops" in err.value.message
    assert err.value.details["rc"] == 2
    assert err.value.details["stderr"] == "oops\n"
    assert "changed" not in err.value.details
    assert len(client.destroyed) == 1


def test_create_failure_leaves_no_console_log(root: Path, transport: ScriptedTransport, clock: FakeClock) -> None:
    client = FakeClient(create_error=LibvirtFailure("creating a transient domain: Cannot access storage file"))
    with pytest.raises(LibvirtFailure, match="Cannot access storage file"):
        run(root, client, transport, clock)
    assert client.destroyed == []
    assert os.listdir(root / "run") == []
    assert transport.requests == []


def test_console_tail_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    assert console_tail(str(tmp_path / "none.log")) == []


def test_console_tail_reads_only_the_end_of_a_big_log(tmp_path: Path) -> None:
    log = tmp_path / "c.log"
    log.write_bytes(b"x" * 1_000_000 + b"\nlast one\n")
    assert console_tail(str(log), lines=1) == ["last one"]
