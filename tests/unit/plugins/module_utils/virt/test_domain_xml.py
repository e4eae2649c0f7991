# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Domain XML against golden files (regenerate with HYPER_UPDATE_GOLDEN=1 and review the diff)."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import METADATA_NS
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.domain_xml import DiskSpec, DomainSpec, InterfaceSpec, render_domain_xml

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")

BASE = DomainSpec(
    name="hyper-check-0badcafe",
    title="hyper guest check of image default",
    memory_mib=256,
    vcpus=1,
    accelerator="tcg",
    kernel="/var/lib/hyper/images/default/vmlinuz",
    initrd="/var/lib/hyper/images/default/initrd.img",
    cmdline="console=ttyS0 panic=-1 quiet",
    console_log="/var/lib/hyper/run/hyper-check-0badcafe.console.log",
)

SPECS = {
    "tcg_minimal": BASE,
    "kvm_pod": replace(
        BASE,
        name="hyper-3f9c2a1b",
        title="web",
        uuid="6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        accelerator="kvm",
        memory_mib=512,
        vcpus=2,
        console_log="/var/lib/hyper/run/hyper-3f9c2a1b.console.log",
        metadata={"pod": "web", "spec_hash": "abc123", "containers": [{"name": "nginx"}]},
        disks=(DiskSpec(path="/var/lib/hyper/disks/sha256-aa.img", target="vdb", serial="hyper-aa"),),
    ),
    "hotplug_pod": replace(
        BASE,
        name="hyper-5e6f7a8b",
        title="hot",
        hotplug_slots=2,
        disks=(DiskSpec(path="/var/lib/hyper/disks/scratch.qcow2", target="vdc", serial="hyper-scratch", readonly=False, format="qcow2", discard=True),),
        interfaces=(InterfaceSpec(network="hyper-net", mac="52:54:00:aa:bb:cc"),),
    ),
    "hostile_values": replace(
        BASE,
        title="a <pod> & \"quotes\" 'too'",
        cmdline='console=ttyS0 x="<&>"',
        metadata={"note": "</hyper:pod><evil/>"},
    ),
}


@pytest.mark.parametrize("case", sorted(SPECS))
def test_domain_xml_matches_golden(case: str) -> None:
    xml = render_domain_xml(SPECS[case])
    path = os.path.join(GOLDEN, f"{case}.xml")
    if os.environ.get("HYPER_UPDATE_GOLDEN"):
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(xml)
    with open(path, encoding="utf-8") as handle:
        assert xml == handle.read()


def test_user_values_survive_as_data_not_markup() -> None:
    root = ET.fromstring(render_domain_xml(SPECS["hostile_values"]))
    assert root.findtext("title") == "a <pod> & \"quotes\" 'too'"
    assert root.findtext("os/cmdline") == 'console=ttyS0 x="<&>"'
    assert root.find("metadata")[0].tag == f"{{{METADATA_NS}}}pod"  # type: ignore[index]
    assert root.find("metadata")[0].text == '{"note":"</hyper:pod><evil/>"}'  # type: ignore[index]
    assert root.find("devices/evil") is None


@pytest.mark.parametrize(
    ("accelerator", "domain_type", "cpu_mode"),
    [("tcg", "qemu", None), ("kvm", "kvm", "host-passthrough")],
)
def test_accelerator_picks_domain_type_and_cpu(accelerator: str, domain_type: str, cpu_mode: str | None) -> None:
    root = ET.fromstring(render_domain_xml(replace(BASE, accelerator=accelerator)))
    assert root.get("type") == domain_type
    cpu = root.find("cpu")
    assert (cpu.get("mode") if cpu is not None else None) == cpu_mode


def test_agent_channel_console_and_no_extras() -> None:
    root = ET.fromstring(render_domain_xml(replace(BASE, agent_channel="org.example.agent")))
    assert root.find("devices/channel/target").attrib == {"type": "virtio", "name": "org.example.agent"}  # type: ignore[union-attr]
    assert root.find("devices/serial").get("type") == "file"  # type: ignore[union-attr]
    assert root.find("devices/serial/source").get("path") == BASE.console_log  # type: ignore[union-attr]
    assert root.find("devices/memballoon").get("model") == "none"  # type: ignore[union-attr]
    assert root.find("devices/controller[@type='usb']").get("model") == "none"  # type: ignore[union-attr]
    assert root.find("devices/graphics") is None
    assert root.find("devices/video") is None
    assert [root.findtext(t) for t in ("on_poweroff", "on_reboot", "on_crash")] == ["destroy", "destroy", "destroy"]


@pytest.mark.parametrize(
    ("change", "option"),
    [
        ({"name": ""}, "name"),
        ({"accelerator": "hvf"}, "accelerator"),
        ({"accelerator": "auto"}, "accelerator"),
        ({"memory_mib": 16}, "memory"),
        ({"vcpus": 0}, "vcpus"),
        ({"hotplug_slots": -1}, "hotplug_slots"),
        ({"hotplug_slots": 17}, "hotplug_slots"),
    ],
)
def test_invalid_specs_name_the_option(change: dict[str, object], option: str) -> None:
    with pytest.raises(SpecError) as err:
        render_domain_xml(replace(BASE, **change))  # type: ignore[arg-type]
    assert err.value.option == option
    assert repr(change[next(iter(change))]) in err.value.message


def test_hotplug_slots_are_empty_root_ports() -> None:
    root = ET.fromstring(render_domain_xml(replace(BASE, hotplug_slots=3)))
    # libvirt puts the domain's own devices on the named ports first: the virtio-serial controller
    # here, so one port more than the slots (on a real VM: 4 ports, 3 free, checked 2026-12-03).
    ports = root.findall("devices/controller[@model='pcie-root-port']")
    assert len(ports) == 3 + 1
    assert all(port.get("type") == "pci" and port.find("address") is None for port in ports)
    assert root.find("devices/controller[@model='pcie-root']").get("index") == "0"  # type: ignore[union-attr]
    with_devices = replace(
        BASE,
        hotplug_slots=2,
        disks=(DiskSpec(path="/a", target="vdb", serial="a"),),
        interfaces=(InterfaceSpec(network="n", mac="52:54:00:00:00:01"),),
    )
    assert len(ET.fromstring(render_domain_xml(with_devices)).findall("devices/controller[@model='pcie-root-port']")) == 2 + 3
    assert not ET.fromstring(render_domain_xml(BASE)).findall("devices/controller[@model='pcie-root-port']")
