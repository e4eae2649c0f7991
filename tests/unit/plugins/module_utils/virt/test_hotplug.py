# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""virt/hotplug.py against a scripted libvirt: slots counted from the live XML, attach refused
before any change when no slot is free, detach waits for the guest, device XML as in a domain."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import LibvirtFailure
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt import hotplug
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.domain_xml import DiskSpec, DomainSpec, InterfaceSpec, render_domain_xml

DISK = DiskSpec(path="/var/lib/hyper/disks/sha256-bb.img", target="vdc", serial="hyper-bb")
NIC = InterfaceSpec(network="hyper-net", mac="52:54:00:12:34:56")

# What libvirt 9.0 reports for a running q35 domain with two hot-plug ports and one boot disk:
# every device has an address; pcie-root-ports are buses 1.. and a device on a port has bus=N.
LIVE = """<domain type='qemu'><name>hyper-x</name><devices>
<controller type='pci' index='0' model='pcie-root'/>
<controller type='pci' index='1' model='pcie-root-port'><address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x0'/></controller>
<controller type='pci' index='2' model='pcie-root-port'><address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x1'/></controller>
<controller type='pci' index='3' model='pcie-root-port'><address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x2'/></controller>
<disk type='file' device='disk'><source file='/a.img'/><target dev='vdb' bus='virtio'/><serial>hyper-aa</serial>
<address type='pci' domain='0x0000' bus='0x03' slot='0x00' function='0x0'/></disk>
</devices></domain>"""


class FakeDomain:
    def name(self) -> str:
        return "hyper-x"


class FakeClient:
    """xml_desc answers from a list of live XMLs (the last one repeats); attach/detach are recorded."""

    def __init__(self, *xmls: str) -> None:
        self.xmls = list(xmls)
        self.calls: list[tuple[str, str, bool]] = []

    def xml_desc(self, dom: Any) -> str:
        return self.xmls.pop(0) if len(self.xmls) > 1 else self.xmls[0]

    def attach_device(self, dom: Any, xml: str, persistent: bool = True) -> None:
        self.calls.append(("attach", xml, persistent))

    def detach_device(self, dom: Any, xml: str, persistent: bool = True) -> None:
        self.calls.append(("detach", xml, persistent))


def _with_disk_on(bus: int, target: str = "vdc") -> str:
    extra = (
        f"<disk type='file' device='disk'><source file='/b.img'/><target dev='{target}' bus='virtio'/><serial>hyper-bb</serial>"
        f"<address type='pci' domain='0x0000' bus='0x{bus:02x}' slot='0x00' function='0x0'/></disk>"
    )
    return LIVE.replace("</devices>", extra + "</devices>")


def test_free_slots_counts_ports_without_a_device() -> None:
    assert hotplug.free_slots(LIVE) == 2
    assert hotplug.free_slots(_with_disk_on(1)) == 1
    assert hotplug.free_slots("<domain><devices/></domain>") == 0
    assert hotplug.free_slots("<domain/>") == 0


def test_free_slots_of_a_fresh_definition_are_all_its_ports() -> None:
    spec = DomainSpec(
        name="hyper-y",
        title="y",
        memory_mib=256,
        vcpus=1,
        accelerator="tcg",
        kernel="/k",
        initrd="/i",
        cmdline="console=ttyS0",
        console_log="/c.log",
        hotplug_slots=4,
    )
    # The rendered XML has no indexes yet (libvirt assigns them), so nothing is counted as a port:
    # free_slots is for the live XML only.
    assert hotplug.free_slots(render_domain_xml(spec)) == 0


def test_device_xml_is_the_domain_xml_form() -> None:
    disk = ET.fromstring(hotplug.render_disk_xml(replace(DISK, readonly=False, format="qcow2", discard=True)))
    assert disk.tag == "disk"
    assert disk.find("driver").attrib == {"name": "qemu", "type": "qcow2", "discard": "unmap"}  # type: ignore[union-attr]
    assert disk.find("target").attrib == {"dev": "vdc", "bus": "virtio"}  # type: ignore[union-attr]
    assert disk.findtext("serial") == "hyper-bb"
    assert disk.find("readonly") is None
    assert ET.fromstring(hotplug.render_disk_xml(DISK)).find("readonly") is not None
    nic = ET.fromstring(hotplug.render_interface_xml(NIC))
    assert (nic.tag, nic.get("type")) == ("interface", "network")
    assert nic.find("mac").get("address") == NIC.mac  # type: ignore[union-attr]
    assert nic.find("source").get("network") == "hyper-net"  # type: ignore[union-attr]


def test_hostile_serial_stays_data() -> None:
    disk = ET.fromstring(hotplug.render_disk_xml(replace(DISK, serial="x</serial><evil/>")))
    assert disk.findtext("serial") == "x</serial><evil/>"
    assert disk.find("evil") is None


def test_targets_and_the_next_free_one() -> None:
    assert hotplug.disk_targets(LIVE) == {"vdb": "hyper-aa"}
    assert hotplug.free_target(LIVE) == "vdc"
    assert hotplug.free_target(_with_disk_on(1)) == "vdd"
    every = LIVE.replace(
        "</devices>",
        "".join(f"<disk><target dev='vd{c}'/></disk>" for c in "cdefghijklmnopqrstuvwxyz") + "</devices>",
    )
    with pytest.raises(LibvirtFailure, match="no free virtio disk target"):
        hotplug.free_target(every)


def test_attach_disk_and_interface() -> None:
    client = FakeClient(LIVE)
    hotplug.attach_disk(client, FakeDomain(), DISK)  # type: ignore[arg-type]
    hotplug.attach_interface(client, FakeDomain(), NIC, persistent=False)  # type: ignore[arg-type]
    assert [(c[0], ET.fromstring(c[1]).tag, c[2]) for c in client.calls] == [("attach", "disk", True), ("attach", "interface", False)]


def test_attach_without_a_free_slot_changes_nothing() -> None:
    full = _with_disk_on(1).replace("</devices>", "<interface type='network'><address type='pci' bus='0x02'/></interface></devices>")
    client = FakeClient(full)
    with pytest.raises(LibvirtFailure, match=r"no free PCIe hot-plug slot.*must be recreated"):
        hotplug.attach_disk(client, FakeDomain(), replace(DISK, target="vdd"))  # type: ignore[arg-type]
    with pytest.raises(LibvirtFailure, match="interface 52:54:00:12:34:56"):
        hotplug.attach_interface(client, FakeDomain(), NIC)  # type: ignore[arg-type]
    assert client.calls == []


def test_detach_waits_until_the_guest_released_the_disk() -> None:
    attached = _with_disk_on(1)
    client = FakeClient(attached, attached, attached, LIVE)
    sleeps: list[float] = []
    hotplug.detach_disk(client, FakeDomain(), DISK, sleep=sleeps.append, clock=lambda: 0.0)  # type: ignore[arg-type]
    assert [c[0] for c in client.calls] == ["detach"]
    assert len(sleeps) == 2


def test_detach_of_an_absent_disk_is_a_no_op() -> None:
    client = FakeClient(LIVE)
    hotplug.detach_disk(client, FakeDomain(), DISK)  # type: ignore[arg-type]
    assert client.calls == []


def test_detach_the_guest_never_completes_fails_naming_the_disk() -> None:
    client = FakeClient(_with_disk_on(1))
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += 1.0

    with pytest.raises(LibvirtFailure, match=r"disk hyper-bb \(vdc\) of domain hyper-x was not released by the guest within 3 s"):
        hotplug.detach_disk(client, FakeDomain(), DISK, timeout=3, clock=lambda: now[0], sleep=sleep)  # type: ignore[arg-type]
