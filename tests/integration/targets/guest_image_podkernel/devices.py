# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the pod kernel must do for VMs beyond a pod start: PCI hot-plug and pvpanic.

Boots one throwaway VM (``pk-dev-<hex>``) from the image given, with two free PCIe root ports
and the ISA pvpanic device of every pod's domain (``on_crash`` preserve), and checks in order, through the guest agent:

1. a virtio-blk disk attached live appears in the guest with its serial and its bytes, and is
   gone from guest and domain after a live detach (ACPI eject answered by the guest);
2. a virtio-net interface attached live appears in the guest with its MAC;
3. the pvpanic driver is bound, and a kernel panic (``vm.panic_on_oom`` and three 100 MiB buffers
   in a 256 MiB guest) stops the VM as ``crashed (panicked)``: the host learnt of the panic
   through pvpanic (without it, ``panic=-1`` would reboot and ``on_reboot`` destroy the VM).

The VM, its disk file and its console log are removed in every case. Prints one line per
check; exits 1 with the failed check's message. Usage: devices.py <root> <image> <network>
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from typing import Callable

from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import GuestAgent, LibvirtAgentTransport
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest_image.manifest import load_image
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.console import console_path, console_tail
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.info import resolve_accelerator
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import LibvirtClient, import_libvirt
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.domain_xml import DomainSpec, render_domain_xml

WAIT = 30.0
MARK = b"hyper-hotplug-mark\n"


class CheckFailed(Exception):
    pass


def wait_for(what: str, probe: Callable[[], bool], timeout: float = WAIT) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if probe():
            return time.monotonic() - start
        time.sleep(0.2)
    raise CheckFailed(f"{what}: not within {timeout:g} s")


def domain_xml(spec: DomainSpec) -> str:
    """The image's usual domain XML (with its ISA pvpanic device) plus two free PCIe root ports and on_crash preserve."""
    domain = ET.fromstring(render_domain_xml(spec))
    crash = domain.find("on_crash")
    assert crash is not None
    crash.text = "preserve"
    devices = domain.find("devices")
    assert devices is not None
    # Without an index libvirt numbers controllers in order: the root complex has to be the first.
    ET.SubElement(devices, "controller", {"type": "pci", "index": "0", "model": "pcie-root"})
    for _port in range(2):
        ET.SubElement(devices, "controller", {"type": "pci", "model": "pcie-root-port"})
    if devices.find("panic") is None:
        raise CheckFailed("render_domain_xml gave no <panic> device: the pvpanic check needs one")
    return ET.tostring(domain, encoding="unicode")


def sh(agent: GuestAgent, script: str) -> str:
    return agent.run(["/bin/sh", "-c", script], "sh -c " + script[:40], timeout=20).stdout.decode(errors="replace")


def check(root: str, image_name: str, network: str) -> None:
    image = load_image(root, image_name)
    name = "pk-dev-" + secrets.token_hex(4)
    console = console_path(root, name)
    os.makedirs(os.path.dirname(console), exist_ok=True)
    serial = "pkhot" + secrets.token_hex(3)
    mac = "52:54:00:" + ":".join(f"{byte:02x}" for byte in secrets.token_bytes(3))
    spec = DomainSpec(
        name=name,
        title="guest_image_podkernel device checks",
        memory_mib=256,
        vcpus=1,
        accelerator=resolve_accelerator("auto", root),
        kernel=image.kernel,
        initrd=image.initrd,
        cmdline=image.kernel_args,
        console_log=console,
        agent_channel=image.agent_channel,
    )
    libvirt = import_libvirt()[0]
    live = libvirt.VIR_DOMAIN_AFFECT_LIVE
    with LibvirtClient.open() as client, tempfile.TemporaryDirectory(prefix="pk-dev-") as scratch:
        dom = client.create_transient(domain_xml(spec))
        try:
            agent = GuestAgent(LibvirtAgentTransport(dom, name), name=name)
            agent.wait_ready(120, is_alive=lambda: client.is_active(dom))
            print(f"booted {name} on {image.kernel} ({image.kernel_version})", flush=True)

            # 1. disk: attach, see serial and bytes, detach, see it gone
            os.chmod(scratch, 0o755)  # QEMU does not run as root
            disk_file = os.path.join(scratch, "hotplug.img")
            with open(disk_file, "wb") as handle:
                handle.write(MARK.ljust(1 << 20, b"\0"))
            disk = (
                f"<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{disk_file}'/>"
                f"<target dev='vdz' bus='virtio'/><serial>{serial}</serial><readonly/></disk>"
            )
            dom.attachDeviceFlags(disk, live)
            find = f'for d in /sys/block/vd*; do [ "$(cat $d/serial 2>/dev/null)" = {serial} ] && echo ${{d##*/}}; done; true'
            seconds = wait_for("hot-plugged disk in the guest", lambda: bool(sh(agent, find).strip()))
            dev = sh(agent, find).strip()
            head = sh(agent, f"head -c {len(MARK)} /dev/{dev}")
            if head.encode() != MARK:
                raise CheckFailed(f"hot-plugged disk /dev/{dev}: read {head!r}, wrote {MARK!r}")
            print(f"disk attached live: /dev/{dev} serial {serial} after {seconds:.1f} s, contents read back", flush=True)
            dom.detachDeviceFlags(disk, live)
            seconds = wait_for("hot-unplugged disk gone from the guest", lambda: not sh(agent, find).strip())
            wait_for("hot-unplugged disk gone from the domain", lambda: serial not in client.xml_desc(dom))
            print(f"disk detached live: gone from guest and domain after {seconds:.1f} s", flush=True)

            # 2. interface: attach, see the MAC
            nic = f"<interface type='network'><mac address='{mac}'/><source network='{network}'/><model type='virtio'/></interface>"
            dom.attachDeviceFlags(nic, live)
            seconds = wait_for("hot-plugged interface in the guest", lambda: mac in sh(agent, "cat /sys/class/net/*/address"))
            print(f"interface attached live: {mac} in the guest after {seconds:.1f} s", flush=True)

            # 3. pvpanic, then a real kernel panic
            bound = sh(agent, "ls /sys/bus/platform/drivers/pvpanic-mmio/ 2>/dev/null; ls /sys/bus/pci/drivers/pvpanic-pci/ 2>/dev/null; true")
            if "QEMU0001" not in bound:
                raise CheckFailed(f"pvpanic driver not bound to the ISA device (QEMU0001): {bound.split()}")
            # Fire and forget: the guest dies under it (no guest-exec-status will answer).
            hog = "echo 1 > /proc/sys/vm/panic_on_oom; for i in 1 2 3; do dd if=/dev/zero of=/dev/null bs=100M count=100 & done; wait"
            agent.spawn(["/bin/sh", "-c", hog], capture=False)
            wait_for("guest crashed after the panic", lambda: dom.state() == [libvirt.VIR_DOMAIN_CRASHED, libvirt.VIR_DOMAIN_CRASHED_PANICKED], 60)
            tail = "\n".join(console_tail(console, 60))
            if "Kernel panic" not in tail:
                raise CheckFailed(f"domain crashed, but the console shows no kernel panic: {tail[-800:]}")
            print("panic: pvpanic told libvirt, domain is crashed (panicked); console has the kernel panic", flush=True)
        except CheckFailed:
            print("\n".join(console_tail(console, 30)), file=sys.stderr)
            raise
        finally:
            client.destroy(dom)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(console)


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        check(*sys.argv[1:])
    except CheckFailed as err:
        print(f"FAILED: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
