# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""A pod's VM: its domain spec (rendered by virt/domain_xml.py), its per-pod files on the host, its removal."""

from __future__ import annotations

import contextlib
import os
from typing import Optional, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.data_channel import DATA_CHANNELS
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest_image.manifest import GuestImage
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.console import console_path
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.state import forget_desired
from ansible_collections.hyper.pods.plugins.module_utils._hyper.network.networks import guest_mac
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.store import stored_metadata
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredPod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.files import remove_pod_dir
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.scratch import remove_scratch
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import Domain, LibvirtClient
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.domain_xml import DiskSpec, DomainSpec, InterfaceSpec

# Empty PCIe ports a pod's VM keeps for disks and interfaces attached while it runs (virt/hotplug.py):
# a new container's image disk, a pooled VM's pod. A VM defined before they existed has none.
POD_HOTPLUG_SLOTS = 4


def kernel_cmdline(image: GuestImage, pod: StoredPod) -> str:
    """The image's kernel args, the pod's hostname for the guest init, then the user's extra args."""
    parts = [image.kernel_args.strip(), f"hyper.hostname={pod.hostname}"]
    if pod.log_size:  # each container's log bound (hyper-container); pods made before it keep the guest's default
        parts.append(f"hyper.log_size={int(pod.log_size)}")
    parts.append(pod.kernel_args.strip())
    return " ".join(part for part in parts if part)


def domain_spec(vm_id: str, pod: StoredPod, image: GuestImage, disks: Sequence[DiskSpec], root: str) -> DomainSpec:
    return DomainSpec(
        name=vm_id,
        title=pod.name,
        memory_mib=pod.memory,
        vcpus=pod.vcpus,
        accelerator=pod.accelerator,
        kernel=image.kernel,
        initrd=image.initrd,
        cmdline=kernel_cmdline(image, pod),
        console_log=console_path(root, vm_id),
        agent_channel=image.agent_channel,
        metadata=stored_metadata(pod.to_json()),
        disks=tuple(disks),
        data_channels=DATA_CHANNELS,
        interfaces=tuple(InterfaceSpec(n.name, guest_mac(vm_id, i)) for i, n in enumerate(pod.networks)),
        hotplug_slots=POD_HOTPLUG_SLOTS,
    )


def remove_files(root: str, vm_id: str) -> None:
    """Per-pod files on the host: the console log, the injected files' copies. Image disks, the cache and volumes are never touched."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(console_path(root, vm_id))
    forget_desired(root, vm_id)
    remove_pod_dir(root, vm_id)
    remove_scratch(root, vm_id)


def discard_vm(client: LibvirtClient, dom: Optional[Domain], root: str, vm_id: str) -> None:
    """Destroy and undefine a VM and remove its files; used on failure, so it never raises."""
    if dom is not None:
        with contextlib.suppress(HyperError):
            client.destroy(dom)
        with contextlib.suppress(HyperError):
            client.undefine(dom)
    with contextlib.suppress(OSError):
        remove_files(root, vm_id)
