# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""A warm pool's VMs: booted, then paused, transient libvirt domains that wait for a pod.

A pool VM is a transient domain named like a pod's VM (``hyper-<8 hex>``, a VM id) whose metadata,
under the collection's namespace, says ``{"format", "pool", "key", "template", "status"}`` and has no
``spec``: the pod listing (pod/store.py ``pod_of``) skips it, so hyper_pod_info, the inventory, the
host service and the address, port and volume checks never see it. A claim (pool/claim.py) turns it
into a pod in place: it keeps its VM id, and the pod's definition, metadata and devices are given to
it. Being transient, a pool VM that stops (a host reboot, a crash) leaves nothing behind.

Its states: ``booting`` (running, its guest not yet known to be ready), ``ready`` (paused after its
guest answered and its own boot finished), ``failed`` (anything else: running unpaused though
marked ready, shut down, crashed). A claim takes the per-VM lock ``pool-<vm id>.lock`` without
waiting; a removal takes it too, so a VM being claimed is never removed.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Optional

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import AgentError, DomainNotFound, DomainNotRunning, HyperError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import AgentTransport, GuestAgent, LibvirtAgentTransport
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.data_channel import DATA_CHANNELS
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.console import console_path, console_tail
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.locks import lock_dir, try_lock
from ansible_collections.hyper.pods.plugins.module_utils._hyper.network.networks import guest_mac
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.names import VM_PREFIX
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.selfboot import SELF_BOOT_ON_REBOOT
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pool.template import POOL_HOTPLUG_SLOTS, PoolTemplate
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import Domain, LibvirtClient
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.domain_xml import DomainSpec, InterfaceSpec, render_domain_xml

POOL_META_FORMAT = 1
READY = "ready"
BOOTING = "booting"
FAILED = "failed"
TITLE_PREFIX = "hyper pool "
# The guest's own boot-time ``hyper-boot run`` (busybox init, once) finds no config disk in a pool VM and
# ends at once; it must have ended before the VM is paused, or it could find the disk a claim hot-plugs.
# The pattern is split so that the shell running it does not match itself.
QUIESCE_SCRIPT = (
    'p="hyper-boot"" run"; n=0; while [ "$n" -lt 200 ]; do busy=; for f in /proc/[0-9]*/cmdline; do '
    'case "$(tr "\\0" " " <"$f" 2>/dev/null)" in *"$p"*) busy=1 ;; esac; done; '
    '[ -z "$busy" ] && exit 0; n=$((n + 1)); sleep 0.05; done; exit 1'
)
QUIESCE_TIMEOUT = 20.0


@dataclass(frozen=True)
class PoolVm:
    """One VM of a pool as libvirt has it."""

    dom: Domain
    vm_id: str
    uuid: str
    pool: str
    key: str
    status: str

    def view(self, key: Optional[str] = None) -> dict[str, Any]:
        out: dict[str, Any] = {"vm_id": self.vm_id, "state": self.status}
        if key is not None:
            out["stale"] = self.key != key
        return out


def pool_metadata(name: str, template: PoolTemplate, status: str) -> dict[str, Any]:
    return {"format": POOL_META_FORMAT, "pool": name, "key": template.key, "template": template.to_json(), "status": status}


def parse_pool_metadata(meta: object) -> Optional[tuple[str, str, str]]:
    """``(pool, key, status)`` of a pool VM's metadata; None for anything else (a pod, a foreign domain)."""
    if not isinstance(meta, Mapping) or meta.get("format") != POOL_META_FORMAT or "spec" in meta:
        return None
    pool, key, status = meta.get("pool"), meta.get("key"), meta.get("status")
    if not all(isinstance(v, str) and v for v in (pool, key, status)):
        return None
    return str(pool), str(key), str(status)


def is_pool_metadata(meta: object) -> bool:
    return isinstance(meta, Mapping) and "pool" in meta and "spec" not in meta


def pool_vm_of(client: LibvirtClient, dom: Domain) -> Optional[PoolVm]:
    """The pool VM ``dom`` is, or None (not one, or gone meanwhile)."""
    try:
        parsed = parse_pool_metadata(client.get_metadata(dom))
        if parsed is None:
            return None
        pool, key, marked = parsed
        state = client.state(dom)
    except DomainNotFound:
        return None
    if marked == READY and state == "paused":
        status = READY
    elif marked == BOOTING and state in ("running", "blocked", "paused"):
        status = BOOTING
    else:
        status = FAILED
    return PoolVm(dom, str(dom.name()), str(dom.UUIDString()), pool, key, status)


def list_pool_vms(client: LibvirtClient, pool: Optional[str] = None) -> list[PoolVm]:
    """The pool VMs of this host (of ``pool`` only, if given), sorted by pool then VM id."""
    found = []
    for dom in client.list_domains(prefix=VM_PREFIX):
        vm = pool_vm_of(client, dom)
        if vm is not None and (pool is None or vm.pool == pool):
            found.append(vm)
    return sorted(found, key=lambda v: (v.pool, v.vm_id))


def claim_lock_path(root: str, vm_id: str) -> str:
    return os.path.join(lock_dir(root, "a warm pool's VM"), f"pool-{vm_id}.lock")


@contextlib.contextmanager
def vm_lock(root: str, vm_id: str) -> Iterator[bool]:
    """True while this process holds the VM's claim lock; False at once when another one does."""
    path = claim_lock_path(root, vm_id)
    with try_lock(path, f"a claim of pool VM {vm_id}") as mine:
        yield mine
    if mine:
        with contextlib.suppress(OSError):
            os.unlink(path)


def pool_domain_spec(vm_id: str, name: str, template: PoolTemplate, root: str, status: str = BOOTING) -> DomainSpec:
    """The pool VM's domain: the pod's domain without disks, with the template's interfaces and more hot-plug slots."""
    return DomainSpec(
        name=vm_id,
        title=TITLE_PREFIX + name,
        memory_mib=template.memory,
        vcpus=template.vcpus,
        accelerator=template.accelerator,
        kernel=template.kernel,
        initrd=template.initrd,
        cmdline=template.kernel_args,
        console_log=console_path(root, vm_id),
        agent_channel=template.agent_channel,
        metadata=pool_metadata(name, template, status),
        data_channels=DATA_CHANNELS,
        interfaces=tuple(InterfaceSpec(net, guest_mac(vm_id, i)) for i, net in enumerate(template.networks)),
        on_reboot=SELF_BOOT_ON_REBOOT,
        hotplug_slots=POOL_HOTPLUG_SLOTS,
    )


@dataclass
class PoolBooter:
    """Boots a pool's VMs: all started at once, then each waited for, quiesced, marked ready and paused."""

    client: LibvirtClient
    root: str
    make_transport: Callable[[Any, str], AgentTransport] = LibvirtAgentTransport
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def start(self, name: str, template: PoolTemplate, vm_id: str) -> Domain:
        os.makedirs(os.path.dirname(console_path(self.root, vm_id)), mode=0o755, exist_ok=True)
        return self.client.create_transient(render_domain_xml(pool_domain_spec(vm_id, name, template, self.root)))

    def finish(self, name: str, template: PoolTemplate, dom: Domain, timeout: float) -> PoolVm:
        """Wait for the guest, let its boot end, then mark it ready and pause it; on failure the VM is gone and a HyperError says why."""
        vm_id = str(dom.name())
        try:
            agent = GuestAgent(self.make_transport(dom, vm_id), name=f"pool {name} VM {vm_id}", clock=self.clock, sleep=self.sleep)
            agent.wait_ready(timeout, is_alive=lambda: self.client.is_active(dom))
            result = agent.exec(["/bin/sh", "-c", QUIESCE_SCRIPT], timeout=QUIESCE_TIMEOUT)
            if result.rc != 0:
                raise HyperError(f"pool {name} VM {vm_id}: the guest's own boot did not end within {QUIESCE_TIMEOUT:g}s")
            self.client.suspend(dom)
            self.client.set_metadata(dom, pool_metadata(name, template, READY))
        except (HyperError, AgentError, DomainNotRunning) as err:
            tail = console_tail(console_path(self.root, vm_id))
            self.discard(dom, vm_id)
            raise HyperError(f"pool {name}: VM {vm_id} did not come up: {err.message}", {"vm_id": vm_id, "console": tail}) from None
        return PoolVm(dom, vm_id, str(dom.UUIDString()), name, template.key, READY)

    def discard(self, dom: Optional[Domain], vm_id: str) -> None:
        """Destroy a pool VM (transient: it is gone then) and its console log; never raises."""
        if dom is not None:
            with contextlib.suppress(HyperError):
                self.client.destroy(dom)
        with contextlib.suppress(OSError):
            os.unlink(console_path(self.root, vm_id))


def remove_idle(client: LibvirtClient, root: str, vm: PoolVm) -> bool:
    """Remove a pool VM unless a claim holds it (or it has become a pod meanwhile); True when removed."""
    with vm_lock(root, vm.vm_id) as mine:
        if not mine or pool_vm_of(client, vm.dom) is None:
            return False
        client.destroy(vm.dom)  # transient: gone with it
    with contextlib.suppress(OSError):
        os.unlink(console_path(root, vm.vm_id))
    return True
