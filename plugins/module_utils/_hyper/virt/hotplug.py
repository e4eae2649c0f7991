# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""Disks and interfaces attached to, and detached from, a running hyper VM.

q35 hot-plugs PCIe devices only into empty ``pcie-root-port`` controllers; a domain gets them from
``DomainSpec.hotplug_slots``. With QEMU 7.2's q35 the guest's kernel is told of the device by
ACPI PCI hot-plug (acpiphp; QEMU keeps native pciehp off by default), and virtio probes it like a
boot-time one. Both the Debian cloud kernel and the pod kernel have acpiphp built in (checked
2026-12). A detach is a request the guest completes
(it releases the device); ``detach_disk`` waits until the device has left the live XML.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from typing import Callable

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import LibvirtFailure
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import Domain, LibvirtClient
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.domain_xml import DiskSpec, InterfaceSpec, disk_element, interface_element

DETACH_TIMEOUT = 20.0


def render_disk_xml(disk: DiskSpec) -> str:
    """The ``<disk>`` element of ``disk``, as attach_device takes it (same form as in the domain XML)."""
    return ET.tostring(disk_element(None, disk), encoding="unicode")


def render_interface_xml(interface: InterfaceSpec) -> str:
    """The ``<interface>`` element of ``interface``, as attach_device takes it."""
    return ET.tostring(interface_element(None, interface), encoding="unicode")


def _bus(address: ET.Element) -> int | None:
    value = address.get("bus")
    if address.get("type") != "pci" or value is None:
        return None
    try:
        return int(value, 0)
    except ValueError:
        return None


def free_slots(domain_xml: str) -> int:
    """How many pcie-root-ports of ``domain_xml`` (libvirt's live XML, with addresses) hold no device."""
    root = ET.fromstring(domain_xml)
    devices = root.find("devices")
    if devices is None:
        return 0
    ports: set[int] = set()
    used: set[int] = set()
    for element in devices:
        if element.tag == "controller" and element.get("type") == "pci" and element.get("model") == "pcie-root-port":
            index = element.get("index")
            if index is not None and index.isdigit():
                ports.add(int(index))
        for address in element.findall("address"):
            bus = _bus(address)
            if bus is not None:
                used.add(bus)
    return len(ports - used)


def disk_targets(domain_xml: str) -> dict[str, str]:
    """target dev → serial of the disks in ``domain_xml``."""
    root = ET.fromstring(domain_xml)
    found: dict[str, str] = {}
    for disk in root.iterfind("devices/disk"):
        target = disk.find("target")
        if target is not None and target.get("dev"):
            found[str(target.get("dev"))] = (disk.findtext("serial") or "").strip()
    return found


def free_target(domain_xml: str, prefix: str = "vd") -> str:
    """The first virtio target name (``vdb``, ``vdc`` …) not used by a disk of ``domain_xml``."""
    used = set(disk_targets(domain_xml))
    for letter in "bcdefghijklmnopqrstuvwxyz":
        if prefix + letter not in used:
            return prefix + letter
    raise LibvirtFailure("no free virtio disk target name left (vdb..vdz all in use)")


def _need_slot(client: LibvirtClient, dom: Domain, what: str) -> None:
    if free_slots(client.xml_desc(dom)) < 1:
        raise LibvirtFailure(
            f"cannot attach {what} to domain {dom.name()}: it has no free PCIe hot-plug slot "
            "(a VM created before hot-plug slots existed, or all in use): the VM must be recreated"
        )


def attach_disk(client: LibvirtClient, dom: Domain, disk: DiskSpec, persistent: bool = True) -> None:
    """Attach ``disk`` to the running ``dom``; fails before any change when no slot is free."""
    _need_slot(client, dom, f"disk {disk.serial}")
    client.attach_device(dom, render_disk_xml(disk), persistent)


def attach_interface(client: LibvirtClient, dom: Domain, interface: InterfaceSpec, persistent: bool = True) -> None:
    """Attach ``interface`` to the running ``dom``; fails before any change when no slot is free."""
    _need_slot(client, dom, f"interface {interface.mac}")
    client.attach_device(dom, render_interface_xml(interface), persistent)


def detach_disk(
    client: LibvirtClient,
    dom: Domain,
    disk: DiskSpec,
    persistent: bool = True,
    timeout: float = DETACH_TIMEOUT,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Detach ``disk`` (found by its target) and wait until it is gone from the live XML.

    The guest must have released it (unmounted); a guest that never does keeps the disk, and
    this fails after ``timeout`` naming it (the saved definition has dropped it already when
    ``persistent``, so the next boot goes without it).
    """
    if disk.target not in disk_targets(client.xml_desc(dom)):
        return
    client.detach_device(dom, render_disk_xml(disk), persistent)
    deadline = clock() + timeout
    while disk.target in disk_targets(client.xml_desc(dom)):
        if clock() >= deadline:
            raise LibvirtFailure(f"disk {disk.serial} ({disk.target}) of domain {dom.name()} was not released by the guest within {timeout:g} s")
        sleep(0.05)
