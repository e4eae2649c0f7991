# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""DomainSpec and render_domain_xml: the libvirt domain XML of a hyper VM, built with ElementTree."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, Optional

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import METADATA_ELEMENT, METADATA_KEY, METADATA_NS

AGENT_CHANNEL = "org.qemu.guest_agent.0"
# q35: create → first guest-ping under TCG, 256 MiB, gzip initrd, median of 5 (bench-gzip, 2026-11):
# q35 2.90 s, pc (i440fx) 3.29 s; without ACPI pc 2.70 s, q35 3.07 s. ACPI stays on (ACPI shutdown, hotplug).
# microvm is refused by libvirt 9.0 ("No PCI buses available"), and virtio-serial needs PCI here.
MACHINE = "q35"
ACCELERATORS = ("kvm", "tcg")
# pcie-root-ports sit on pcie.0's slots (with multifunction, libvirt packs 8 per slot); 16 is plenty for a pod.
MAX_HOTPLUG_SLOTS = 16


@dataclass(frozen=True)
class DiskSpec:
    """An extra virtio-blk disk; the guest finds it by ``serial`` (/dev/disk/by-id/virtio-<serial>)."""

    path: str
    target: str
    serial: str
    readonly: bool = True
    format: str = "raw"
    # The guest's discards free the host file's blocks (a sparse scratch disk stays small).
    discard: bool = False


@dataclass(frozen=True)
class FilesystemSpec:
    """A host directory shared with virtio-fs (libvirt starts virtiofsd); the guest mounts it by ``tag``."""

    source: str
    tag: str


@dataclass(frozen=True)
class InterfaceSpec:
    """A virtio-net interface on a libvirt network; the guest finds it by ``mac``."""

    network: str
    mac: str


@dataclass(frozen=True)
class DomainSpec:
    """Everything the domain XML says; plain values only, checked by render_domain_xml."""

    name: str
    title: str
    memory_mib: int
    vcpus: int
    accelerator: str
    kernel: str
    initrd: str
    cmdline: str
    console_log: str
    agent_channel: str = AGENT_CHANNEL
    uuid: Optional[str] = None
    metadata: Optional[Any] = None
    disks: tuple[DiskSpec, ...] = field(default_factory=tuple)
    # Any filesystem makes the guest memory shared (memfd): virtiofsd maps it.
    filesystems: tuple[FilesystemSpec, ...] = field(default_factory=tuple)
    interfaces: tuple[InterfaceSpec, ...] = field(default_factory=tuple)
    machine: str = MACHINE
    on_reboot: str = "destroy"
    # Extra virtio-serial ports with a unix socket on the host (bulk file copies, data_channel.py).
    data_channels: tuple[str, ...] = ()
    # A guest panic ends the VM (on_crash destroy) with a CRASHED lifecycle event the host service acts on;
    # None leaves the device out. libvirt 9.0 calls QEMU's ISA pvpanic device "isa" (it refuses "pvpanic").
    # Checked on this host (2026-12): a domain with it starts, and QEMU killed with SIGKILL ends in STOPPED/FAILED.
    panic: Optional[str] = "isa"
    # Empty pcie-root-port controllers: each takes one disk or interface attached to the running VM
    # (virt/hotplug.py). q35 has no hot-pluggable slot without them; libvirt adds ports only for the
    # devices the XML names.
    hotplug_slots: int = 0


def _check(spec: DomainSpec) -> None:
    if not spec.name:
        raise SpecError("name", spec.name, "must not be empty")
    if spec.accelerator not in ACCELERATORS:
        raise SpecError("accelerator", spec.accelerator, f"must be one of {', '.join(ACCELERATORS)}")
    if spec.memory_mib < 64:
        raise SpecError("memory", spec.memory_mib, "must be at least 64 MiB")
    if spec.vcpus < 1:
        raise SpecError("vcpus", spec.vcpus, "must be at least 1")
    if not 0 <= spec.hotplug_slots <= MAX_HOTPLUG_SLOTS:
        raise SpecError("hotplug_slots", spec.hotplug_slots, f"must be between 0 and {MAX_HOTPLUG_SLOTS}")


def _sub(parent: ET.Element, tag: str, text: Optional[str] = None, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib)
    if text is not None:
        element.text = text
    return element


def disk_element(parent: Optional[ET.Element], disk: DiskSpec) -> ET.Element:
    """The ``<disk>`` of ``disk`` (under ``parent``, or standalone for an attach)."""
    element = ET.Element("disk", type="file", device="disk") if parent is None else _sub(parent, "disk", type="file", device="disk")
    _sub(element, "driver", name="qemu", type=disk.format, **({"discard": "unmap"} if disk.discard else {}))
    _sub(element, "source", file=disk.path)
    _sub(element, "target", dev=disk.target, bus="virtio")
    _sub(element, "serial", disk.serial)
    if disk.readonly:
        _sub(element, "readonly")
    return element


def interface_element(parent: Optional[ET.Element], interface: InterfaceSpec) -> ET.Element:
    """The ``<interface>`` of ``interface`` (under ``parent``, or standalone for an attach)."""
    element = ET.Element("interface", type="network") if parent is None else _sub(parent, "interface", type="network")
    _sub(element, "mac", address=interface.mac)
    _sub(element, "source", network=interface.network)
    _sub(element, "model", type="virtio")
    return element


def _pcie_devices(spec: DomainSpec) -> int:
    """How many root ports the domain's own devices take: each disk, virtio-fs share and interface, and the virtio-serial controller."""
    return len(spec.disks) + len(spec.filesystems) + len(spec.interfaces) + 1


def render_domain_xml(spec: DomainSpec) -> str:
    """The domain XML for ``spec``: direct kernel boot, serial console to a file, agent channel, no extras."""
    _check(spec)
    domain = ET.Element("domain", {"type": "kvm" if spec.accelerator == "kvm" else "qemu"})
    _sub(domain, "name", spec.name)
    if spec.uuid:
        _sub(domain, "uuid", spec.uuid)
    _sub(domain, "title", spec.title)
    if spec.metadata is not None:
        # libvirt keys metadata by namespace; the prefix is the key setMetadata() uses.
        meta = _sub(_sub(domain, "metadata"), f"{METADATA_KEY}:{METADATA_ELEMENT}", **{f"xmlns:{METADATA_KEY}": METADATA_NS})
        meta.text = json.dumps(spec.metadata, sort_keys=True, separators=(",", ":"))
    _sub(domain, "memory", str(spec.memory_mib), unit="MiB")
    _sub(domain, "vcpu", str(spec.vcpus))
    if spec.filesystems:
        backing = _sub(domain, "memoryBacking")
        _sub(backing, "source", type="memfd")
        _sub(backing, "access", mode="shared")

    os_ = _sub(domain, "os")
    _sub(os_, "type", "hvm", arch="x86_64", machine=spec.machine)
    _sub(os_, "kernel", spec.kernel)
    _sub(os_, "initrd", spec.initrd)
    _sub(os_, "cmdline", spec.cmdline)
    _sub(_sub(domain, "features"), "acpi")
    if spec.accelerator == "kvm":
        _sub(domain, "cpu", mode="host-passthrough")
    _sub(domain, "clock", offset="utc")
    _sub(domain, "on_poweroff", "destroy")
    _sub(domain, "on_reboot", spec.on_reboot)
    _sub(domain, "on_crash", "destroy")

    devices = _sub(domain, "devices")
    _sub(devices, "controller", type="usb", model="none")
    if spec.hotplug_slots:
        # Once the XML names a PCI controller, libvirt wants pcie-root (index 0) named too. libvirt
        # puts the domain's own PCIe devices on the named ports first and adds ports only when they
        # run out: name one for each of them and hotplug_slots more, which stay empty.
        _sub(devices, "controller", type="pci", index="0", model="pcie-root")
        for _slot in range(spec.hotplug_slots + _pcie_devices(spec)):
            _sub(devices, "controller", type="pci", model="pcie-root-port")
    for disk in spec.disks:
        disk_element(devices, disk)
    for share in spec.filesystems:
        element = _sub(devices, "filesystem", type="mount", accessmode="passthrough")
        _sub(element, "driver", type="virtiofs")
        _sub(element, "source", dir=share.source)
        _sub(element, "target", dir=share.tag)
    for interface in spec.interfaces:
        interface_element(devices, interface)
    serial = _sub(devices, "serial", type="file")
    _sub(serial, "source", path=spec.console_log, append="off")
    _sub(serial, "target", port="0")
    channel = _sub(devices, "channel", type="unix")
    _sub(channel, "source", mode="bind")
    _sub(channel, "target", type="virtio", name=spec.agent_channel)
    for name in spec.data_channels:
        data = _sub(devices, "channel", type="unix")
        _sub(data, "source", mode="bind")
        _sub(data, "target", type="virtio", name=name)
    if spec.panic:
        _sub(devices, "panic", model=spec.panic)
    _sub(devices, "memballoon", model="none")

    ET.indent(domain, space="  ")
    return ET.tostring(domain, encoding="unicode") + "\n"
