# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""A pod's VM in libvirt: find pods by their stored name, the metadata, the domain spec, per-pod files.

libvirt is the database: a pod is a persistent domain named ``hyper-<8 hex>`` (the VM id) whose
title is the pod name and whose metadata holds ``{"format", "name", "spec", "spec_hash"}``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import DomainNotFound, HyperError, LibvirtFailure
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.data_channel import DATA_CHANNELS
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest_image.check import console_path
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest_image.manifest import GuestImage
from ansible_collections.hyper.pods.plugins.module_utils._hyper.network.networks import guest_mac
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.plan import CurrentPod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.spec import STORED_FORMAT, spec_hash
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.files import remove_pod_dir
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import Domain, LibvirtClient
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.domain_xml import DiskSpec, DomainSpec, InterfaceSpec

VM_PREFIX = "hyper-"
# libvirt states a pod reports; the rest are passed through as libvirt names them.
_POD_STATES = {"running": "running", "blocked": "running", "shutoff": "stopped", "shutdown": "stopping", "paused": "paused"}


@dataclass(frozen=True)
class FoundPod:
    dom: Domain
    current: CurrentPod


def pod_state(libvirt_state: str) -> str:
    return _POD_STATES.get(libvirt_state, libvirt_state)


def stored_metadata(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {"format": STORED_FORMAT, "name": spec["name"], "spec": dict(spec), "spec_hash": spec_hash(spec)}


def _pod_of(client: LibvirtClient, dom: Domain) -> Optional[CurrentPod]:
    """The pod a domain holds, or None for a domain that is not a pod (or vanished meanwhile)."""
    try:
        meta = client.get_metadata(dom)
        if not isinstance(meta, dict) or not isinstance(meta.get("spec"), dict) or not isinstance(meta.get("name"), str):
            return None
        state = client.state(dom)
        return CurrentPod(vm_id=str(dom.name()), uuid=str(dom.UUIDString()), spec=meta["spec"], state=pod_state(state), running=client.is_active(dom))
    except DomainNotFound:
        return None


def list_pods(client: LibvirtClient) -> list[FoundPod]:
    """Every pod on this libvirt connection, sorted by pod name then VM id."""
    found = []
    for dom in client.list_domains(prefix=VM_PREFIX):
        current = _pod_of(client, dom)
        if current is not None:
            found.append(FoundPod(dom, current))
    return sorted(found, key=lambda f: (str(f.current.spec.get("name")), f.current.vm_id))


def find_pod(client: LibvirtClient, name: str, pods: Optional[Sequence[FoundPod]] = None) -> Optional[FoundPod]:
    """The pod called ``name``; two VMs claiming one name is an error naming both."""
    matches = [f for f in (list_pods(client) if pods is None else pods) if f.current.spec.get("name") == name]
    if len(matches) > 1:
        ids = ", ".join(f.current.vm_id for f in matches)
        raise LibvirtFailure(f"pod {name}: several VMs claim this pod name ({ids}); remove the stray ones with virsh undefine")
    return matches[0] if matches else None


def new_vm_id(client: LibvirtClient) -> str:
    """A fresh ``hyper-<8 hex>`` not used by any domain."""
    for _attempt in range(16):
        vm_id = VM_PREFIX + secrets.token_hex(4)
        try:
            client.lookup(vm_id)
        except DomainNotFound:
            return vm_id
    raise LibvirtFailure("could not find an unused VM id after 16 tries")


def kernel_cmdline(image: GuestImage, spec: Mapping[str, Any]) -> str:
    """The image's kernel args, the pod's hostname for the guest init, then the user's extra args."""
    parts = [image.kernel_args.strip(), f"hyper.hostname={spec['hostname']}", str(spec.get("kernel_args") or "").strip()]
    return " ".join(part for part in parts if part)


def domain_spec(vm_id: str, spec: Mapping[str, Any], image: GuestImage, disks: Sequence[DiskSpec], root: str) -> DomainSpec:
    return DomainSpec(
        name=vm_id,
        title=str(spec["name"]),
        memory_mib=int(spec["memory"]),
        vcpus=int(spec["vcpus"]),
        accelerator=str(spec["accelerator"]),
        kernel=image.kernel,
        initrd=image.initrd,
        cmdline=kernel_cmdline(image, spec),
        console_log=console_path(root, vm_id),
        agent_channel=image.agent_channel,
        metadata=stored_metadata(spec),
        disks=tuple(disks),
        data_channels=DATA_CHANNELS,
        interfaces=tuple(InterfaceSpec(str(n["name"]), guest_mac(vm_id, i)) for i, n in enumerate(spec.get("networks") or [])),
    )


def remove_files(root: str, vm_id: str) -> None:
    """Per-pod files on the host: the console log, the injected files' copies. Image disks, the cache and volumes are never touched."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(console_path(root, vm_id))
    remove_pod_dir(root, vm_id)


def discard_vm(client: LibvirtClient, dom: Optional[Domain], root: str, vm_id: str) -> None:
    """Destroy and undefine a VM and remove its files; used on failure, so it never raises."""
    if dom is not None:
        with contextlib.suppress(HyperError):
            client.destroy(dom)
        with contextlib.suppress(HyperError):
            client.undefine(dom)
    with contextlib.suppress(OSError):
        remove_files(root, vm_id)
