# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""A pod start from a warm pool: take one ready VM atomically, give it the pod, resume it, let its guest bring the pod up.

The pod's identity: a pool VM is already named like a pod's VM (``hyper-<8 hex>``), and a pod is found
by the name in its metadata, never by the domain name (pod/store.py). So the claimed VM keeps its
name and UUID and becomes the pod's VM in place: hyper_pod defines it with the pod's own domain XML
(same name and UUID; a running transient domain becomes persistent, and its next boot is exactly a
cold pod's), sets the pod's metadata and title on the running VM, and hot-plugs the pod's disks
(virt/hotplug.py). From then on lookup, removal, the host service's recovery and restart_policy see
an ordinary pod (its files under its VM id, its desired state, its journal).

The claim: ``take_ready`` tries the per-VM lock (pool/vms.py ``vm_lock``) of each ready VM of the
pod's template without waiting, and checks again under it that the VM is still a ready pool VM (a
claim that finished meanwhile has turned it into a pod). The lock is held until the pod's metadata is
on the VM; two tasks never get the same VM, and a VM is used by one pod only, ever (it is never given
back: a failed claim destroys it).

In the guest: the boot-time part that depends on the pod (its hostname, log bound, scratch disk:
rc's work at boot) is done by ``BRING_UP`` through the agent once the hot-plugged disks are probed,
then the same ``hyper-boot run`` the guest's init runs at boot brings the pod up from the config disk,
and the host waits with ``hyper-boot wait`` as for a cold start (pod/selfboot.py). The guest image is
unchanged. The guest's clock, stopped while paused, is set from the host's.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest import layout
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.settle import DEFAULT_SETTLE
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.boot import PodRuntime
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.selfboot import BootProgress, await_pod_up, guest_reason
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredPod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pool.template import PoolTemplate, pod_template, pool_misfit
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pool.vms import READY, PoolVm, list_pool_vms, pool_vm_of, vm_lock
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt import hotplug
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import Domain, LibvirtClient
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.domain_xml import DiskSpec
from ansible_collections.hyper.pods.plugins.module_utils._hyper.waiter import Deadline

START_POOL = "pool"
START_COLD = "cold"
# The guest's side of rc that depends on the pod, for a guest that booted without it: hostname and /etc/hosts,
# the log bound, then (once every hot-plugged disk has been probed, by serial) the scratch disk mounted as rc
# mounts it. Arguments: HOSTNAME LOG_SIZE SERIAL... (host-checked values, passed as argv, never as code).
BRING_UP = r"""
name=$1 log_size=$2
shift 2
hostname "$name" || { echo "invalid hostname $name" >&2; exit 1; }
printf '127.0.0.1\tlocalhost %s\n::1\tlocalhost ip6-localhost\n' "$(hostname)" >/etc/hosts
case "$log_size" in '' | *[!0-9]* | 0*) ;; *) echo "$log_size" >/run/hyper/log_size ;; esac
n=0
while :; do
    missing=
    for s in "$@"; do
        found=
        for f in /sys/block/vd*/serial; do
            v=
            read -r v <"$f" 2>/dev/null
            [ "$v" = "$s" ] && { found=1; break; }
        done
        [ -n "$found" ] || missing=$s
    done
    [ -z "$missing" ] && break
    n=$((n + 1))
    [ "$n" -lt 400 ] || { echo "the hot-plugged disk $missing never appeared in the guest" >&2; exit 1; }
    sleep 0.025
done
for f in /sys/block/vd*/serial; do
    v=
    read -r v <"$f" 2>/dev/null
    [ "$v" = hyper-scratch ] || continue
    dev=${f%/serial}
    dev=/dev/${dev##*/}
    mount -t ext4 -o nosuid,nodev,noatime,discard "$dev" /run/hyper/containers || { echo "cannot mount the scratch disk $dev" >&2; exit 1; }
    echo "hyper-scratch $dev" >/run/hyper/scratch
    break
done
"""
BRING_UP_TIMEOUT = 20.0


class PoolVmBroken(HyperError):
    """The claimed pool VM failed before the pod's own bring-up: the start falls back to a cold boot."""


@dataclass
class PoolClaim:
    """A ready pool VM held for one pod start; ``release`` once the pod's metadata is on it (or it is gone)."""

    vm: PoolVm
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @property
    def vm_id(self) -> str:
        return self.vm.vm_id

    def release(self) -> None:
        self.stack.close()


@dataclass(frozen=True)
class StartChoice:
    """The start path: a claim (``pool``) or none (``cold``), and why."""

    claim: Optional[PoolClaim]
    path: str
    reason: str

    def result(self) -> dict[str, str]:
        return {"start": self.path, "start_reason": self.reason}


def take_ready(client: LibvirtClient, root: str, key: str) -> Optional[PoolClaim]:
    """One ready VM of template ``key`` held for this task, or None when none is free."""
    for vm in list_pool_vms(client):
        if vm.key != key or vm.status != READY:
            continue
        claim = PoolClaim(vm)
        if not claim.stack.enter_context(vm_lock(root, vm.vm_id)):
            claim.release()
            continue
        again = pool_vm_of(client, vm.dom)  # under the lock: a claim that finished meanwhile made it a pod
        if again is not None and again.key == key and again.status == READY:
            return claim
        claim.release()
    return None


def choose_start(client: LibvirtClient, root: str, pod: StoredPod, kernel_args: str, agent_channel: str, disks: int, filesystems: int) -> StartChoice:
    """Claim a ready pool VM for ``pod`` if it fits one; never fails (a broken pool means a cold start)."""
    misfit = pool_misfit(pod, disks, filesystems)
    if misfit is not None:
        return StartChoice(None, START_COLD, misfit)
    template: PoolTemplate = pod_template(pod, kernel_args, agent_channel)
    try:
        vms = list_pool_vms(client)
        if not vms:
            return StartChoice(None, START_COLD, "no warm pool VM on this host")
        if not any(v.key == template.key for v in vms):
            pools = ", ".join(sorted({v.pool for v in vms}))
            return StartChoice(None, START_COLD, f"no pool of this pod's template (image, vcpus, memory, accelerator, networks); pools: {pools}")
        claim = take_ready(client, root, template.key)
    except (HyperError, OSError) as err:
        return StartChoice(None, START_COLD, f"the pool could not be read: {err}")
    if claim is None:
        pool = next(v.pool for v in vms if v.key == template.key)
        return StartChoice(None, START_COLD, f"pool {pool} has no ready VM (all claimed, booting or failed)")
    return StartChoice(claim, START_POOL, f"VM {claim.vm_id} of pool {claim.vm.pool}")


def give_devices(client: LibvirtClient, dom: Domain, claim: PoolClaim, disks: Sequence[DiskSpec], metadata: Any, title: str) -> None:
    """Hot-plug the pod's disks into the paused VM (live only: its definition has them), put its metadata on it, release the claim.

    A failure is PoolVmBroken: nothing of the pod ran in the VM yet, the caller discards it and boots cold.
    """
    try:
        for disk in disks:
            hotplug.attach_disk(client, dom, disk, persistent=False)
        client.set_metadata(dom, metadata)
        client.set_title(dom, title)
    except HyperError as err:
        raise PoolVmBroken(f"pool VM {claim.vm_id}: {err.message}") from None
    finally:
        claim.release()


def boot_claimed(
    runtime: PodRuntime,
    dom: Domain,
    pod: StoredPod,
    vm_id: str,
    names: Sequence[str],
    serials: Sequence[str],
    *,
    wait: bool,
    timeout: float,
    settle: float = DEFAULT_SETTLE,
) -> None:
    """Resume the claimed VM and bring the pod up in it; PoolVmBroken before the pod's own boot began, a PodError after."""
    clock = runtime.clock
    deadline = Deadline(timeout, clock)
    started = clock()
    progress = BootProgress("resuming the pool VM")
    try:
        try:
            runtime.client.resume(dom)
            agent = runtime.agent(dom, vm_id)
            with contextlib.suppress(HyperError):  # its clock stood still while paused; qemu-ga's hwclock step may fail
                agent.command("guest-set-time", {"time": time.time_ns()})
            progress.step = "giving the pool VM the pod's host name and disks"
            argv = ["/bin/sh", "-c", BRING_UP, "sh", pod.hostname, str(pod.log_size or ""), *serials]
            result = agent.exec(argv, timeout=min(BRING_UP_TIMEOUT, max(deadline.remaining, 1.0)))
            if result.rc != 0:
                raise HyperError(guest_reason(result).removeprefix("sh: "))
            agent.spawn([layout.BOOT_COMMAND, "run"], capture=False)
        except HyperError as err:
            raise PoolVmBroken(f"pool VM {vm_id}: {progress.step}: {err.message}") from None
        runtime.timings["agent_ready"] = round(clock() - started, 3)
        # From here as a cold start (pod/selfboot.py).
        await_pod_up(runtime, agent, names, wait=wait, settle=settle, deadline=deadline, started=started, progress=progress)
    except PoolVmBroken:
        raise
    except HyperError as err:
        raise runtime._failure(err, pod.name, vm_id, progress.step, None, progress.guest) from None  # pylint: disable=protected-access
