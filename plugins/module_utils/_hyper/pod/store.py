# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""libvirt as the database: find pods by their stored name, read and write their metadata.

A pod is a persistent domain named ``hyper-<8 hex>`` (the VM id) whose title is the pod name and
whose metadata holds ``{"format", "name", "spec", "spec_hash"}``. This file stays light (no image,
storage or network code): hyper_exec, the connection and the inventory load it.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import DomainNotFound, LibvirtFailure
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.names import VM_PREFIX
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import STORED_FORMAT, StoredPod, spec_hash
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import Domain, LibvirtClient

# libvirt states a pod reports; the rest are passed through as libvirt names them.
_POD_STATES = {"running": "running", "blocked": "running", "shutoff": "stopped", "shutdown": "stopping", "paused": "paused"}


@dataclass(frozen=True)
class CurrentPod:
    """A pod as libvirt has it: its VM, run state and the spec stored in the metadata (JSON, and typed as ``pod``)."""

    vm_id: str
    uuid: str
    spec: Mapping[str, Any]
    state: str
    running: bool

    @functools.cached_property
    def pod(self) -> StoredPod:
        return StoredPod.from_json(self.spec)

    @property
    def name(self) -> str:
        return str(self.spec.get("name"))


@dataclass(frozen=True)
class FoundPod:
    dom: Domain
    current: CurrentPod


def pod_state(libvirt_state: str) -> str:
    return _POD_STATES.get(libvirt_state, libvirt_state)


def stored_metadata(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {"format": STORED_FORMAT, "name": spec["name"], "spec": dict(spec), "spec_hash": spec_hash(spec)}


def pod_of(client: LibvirtClient, dom: Domain) -> Optional[CurrentPod]:
    """The pod a domain holds, or None for a domain that is not a pod (or vanished meanwhile)."""
    try:
        meta = client.get_metadata(dom)
        if not isinstance(meta, dict) or not isinstance(meta.get("spec"), dict) or not isinstance(meta.get("name"), str):
            return None  # a warm pool's VM (metadata with "pool", no "spec": pool/vms.py) is not a pod either
        if "pool" in meta:
            return None
        state = client.state(dom)
        return CurrentPod(vm_id=str(dom.name()), uuid=str(dom.UUIDString()), spec=meta["spec"], state=pod_state(state), running=client.is_active(dom))
    except DomainNotFound:
        return None


def list_pods(client: LibvirtClient) -> list[FoundPod]:
    """Every pod on this libvirt connection, sorted by pod name then VM id."""
    found = []
    for dom in client.list_domains(prefix=VM_PREFIX):
        current = pod_of(client, dom)
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
