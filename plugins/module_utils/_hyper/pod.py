# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""ensure_pod: the hyper_pod module's one call. Spec → images → plan (pure) → apply, or only the plan in check mode."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from typing import Any, Callable, Mapping, Optional

from ansible_collections.hyper.pods.plugins.module_utils._hyper.agent import GuestAgent
from ansible_collections.hyper.pods.plugins.module_utils._hyper.concurrency import BootSlots
from ansible_collections.hyper.pods.plugins.module_utils._hyper.domain_xml import render_domain_xml
from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError, ImageError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host import DEFAULT_ROOT, resolve_accelerator
from ansible_collections.hyper.pods.plugins.module_utils._hyper.image import GuestImage, resolve_image
from ansible_collections.hyper.pods.plugins.module_utils._hyper.libvirt_client import DEFAULT_URI, Domain, LibvirtClient
from ansible_collections.hyper.pods.plugins.module_utils._hyper.oci import DEFAULT_PULL_POLICY, check_pull_policy
from ansible_collections.hyper.pods.plugins.module_utils._hyper.plan import Plan, masked_diff, plan_pod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod_info import pod_view, predicted_view
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod_network import PodNetworkApi
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod_runtime import DEFAULT_STOP_TIMEOUT, DEFAULT_WAIT_TIMEOUT, PodDeps, PodRuntime
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod_storage import (
    PodStorage,
    add_mounts,
    check_volume_users,
    purge_volumes,
    read_file_sources,
    sync_timeout,
    task_files,
    volumes_to_purge,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod_vm import (
    VM_PREFIX,
    FoundPod,
    discard_vm,
    domain_spec,
    find_pod,
    list_pods,
    new_vm_id,
    remove_files,
    stored_metadata,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.spec import normalise_pod


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as err:
        raise ImageError(f"cannot read {path}: {err.strerror}") from None
    return digest.hexdigest()


def resolve_guest(root: str, guest: Mapping[str, Any]) -> tuple[GuestImage, dict[str, Any]]:
    """The guest image of ``{"image"}`` or ``{"kernel", "initrd"}``, and its stored form (with the initrd's SHA-256)."""
    name = guest.get("image")
    image = resolve_image(root, str(name)) if name else resolve_image(root, None, str(guest.get("kernel")), str(guest.get("initrd")))
    stored = {"image": guest.get("image") or None, "kernel": image.kernel, "initrd": image.initrd, "initrd_sha256": file_sha256(image.initrd)}
    return image, stored


def ensure_pod(params: Mapping[str, Any], check_mode: bool, diff: bool = False, deps: Optional[PodDeps] = None) -> dict[str, Any]:
    """Bring the pod named in ``params`` to ``params['state']``; return the module result (changed, actions, pod, diff)."""
    deps = deps or PodDeps()
    spec, user_set = normalise_pod(params)
    state = str(params.get("state") or "started")
    if state != "absent":  # a removal needs no file content
        spec = read_file_sources(spec)
    root = str(params.get("root") or DEFAULT_ROOT)
    pull = check_pull_policy(params.get("pull") or DEFAULT_PULL_POLICY)
    recreate = bool(params.get("recreate"))
    wait = params.get("wait") is not False
    wait_timeout = float(params.get("wait_timeout") or DEFAULT_WAIT_TIMEOUT)
    stop_timeout = float(DEFAULT_STOP_TIMEOUT if params.get("stop_timeout") is None else params["stop_timeout"])

    with deps.open_client(str(params.get("uri") or DEFAULT_URI)) as client:
        pods = list_pods(client)
        found = find_pod(client, spec.name, pods)
        current = found.current if found else None
        purge: list[str] = []
        network = deps.make_network(client)
        if state == "absent":
            plan = plan_pod({}, frozenset(), current, state)
            if params.get("volumes_purge"):
                purge = volumes_to_purge(root, pods, spec.name, current.spec if current else None, spec.volumes)
                if purge:
                    plan = dataclasses.replace(plan, actions=[*plan.actions, "purge_volumes"], changed=True)
        else:
            new = current is None
            # Fields the user did not set are taken from the stored spec: resolve only what is compared.
            accelerator = resolve_accelerator(spec.accelerator, root) if new or "accelerator" in user_set else None
            guest_fields = {"image": spec.guest_image, "kernel": spec.kernel, "initrd": spec.initrd}
            guest = resolve_guest(root, guest_fields)[1] if new or "guest" in user_set else {}
            images = deps.make_images(root)
            digests = images.digests(spec.containers, pull, check_mode) if new or "containers" in user_set else {}
            desired = spec.to_stored(accelerator=accelerator or "", guest=guest, digests=digests)
            # Networks exist, static addresses fit and are free, host ports are free: before anything is created.
            network.check(desired, user_set, current.spec if current else None, [p.current.spec for p in pods if p is not found])
            plan = plan_pod(desired, user_set, current, state, recreate)
            if plan.new_vm or {"start", "restart"} & set(plan.actions):
                # Bad storage fails here, in check mode too, before anything is made (a stop never needs it).
                check_volume_users(pods, spec.name, plan.spec.get("volumes") or [])
                PodStorage(root, plan.spec).check()

        result: dict[str, Any] = {"changed": plan.changed, "actions": list(plan.actions)}
        if purge:
            result["volumes_removed"] = purge
        if diff:
            result["diff"] = masked_diff(plan.before, plan.after)
        # Port rules are the host's, not the VM's: put them back if they went (a reboot, a flush).
        running = not check_mode and not plan.changed and found is not None and found.current.running
        if running and found and _sync_ports(client, network, found.dom, found.current.vm_id, found.current.spec, deps):
            result["changed"] = True
            result["actions"] = ["sync_ports"]
        if check_mode or not plan.changed:
            result["pod"] = pod_view(client, found, deps) if found and not plan.changed else predicted_view(plan, current)
            return result

        runtime = PodRuntime(client, root, deps.make_transport, deps.make_guest_pod, deps.clock, deps.sleep, deps.timings)
        dom = None
        if set(plan.actions) != {"purge_volumes"}:  # only a purge: the pod is gone already
            dom = _apply(client, runtime, deps, network, plan, found, root, task_files(spec), wait=wait, wait_timeout=wait_timeout, stop_timeout=stop_timeout)
        if purge:
            result["volumes_removed"] = purge_volumes(purge)
        if dom is None:
            result["pod"] = predicted_view(plan, None)
        else:
            result["pod"] = pod_view(client, find_pod(client, spec.name), deps)
        if deps.timings:
            result["timings"] = dict(deps.timings)
        return result


def _apply(
    client: LibvirtClient,
    runtime: PodRuntime,
    deps: PodDeps,
    network: PodNetworkApi,
    plan: Plan,
    found: Optional[FoundPod],
    root: str,
    files: Mapping[str, Any],
    *,
    wait: bool,
    wait_timeout: float,
    stop_timeout: float,
) -> Optional[Domain]:
    """Carry out ``plan.actions``; return the pod's domain afterwards (None once removed)."""
    actions = plan.actions
    spec = plan.spec
    if plan.new_vm:
        # Everything that can fail on the host happens before the old VM goes and libvirt hears of the new one.
        image, spec["guest"] = resolve_guest(root, spec["guest"])
        images = deps.make_images(root)
        containers, disks = images.prepare(spec)
        storage = PodStorage(root, spec)
        owners = storage.owners(getattr(images, "cache", None))
        contents = storage.contents(files, found.current.vm_id if found else None)
        storage.create_volumes()
    if found is not None and ("remove" in actions or "recreate" in actions):
        try:
            runtime.stop(found.dom, found.current.vm_id, found.current.spec.get("containers") or [], stop_timeout, sync_timeout(found.current.spec))
            network.remove_ports(found.current.vm_id)
            client.undefine(found.dom)
        except BaseException:
            if plan.new_vm:
                storage.undo()
            raise
        remove_files(root, found.current.vm_id)
        if "remove" in actions:
            return None
    if plan.new_vm:
        vm_id = new_vm_id(client)
        dom = None
        try:
            storage.stage(vm_id, contents)
            domain = domain_spec(vm_id, spec, image, [*disks, *storage.disks(len(disks))], root)
            dom = client.define(render_domain_xml(dataclasses.replace(domain, filesystems=storage.filesystems())))
            if "start" in actions:
                add_mounts([(c.name, c.config) for c in containers], spec)
                _boot(client, runtime, deps, network, dom, vm_id, spec, containers, wait=wait, wait_timeout=wait_timeout, setup=_setup(storage, vm_id, owners))
        except BaseException:
            # A pod that failed to come up leaves nothing behind: no domain, no console log, no port rule, no volume
            # it made (volumes that existed before keep their data).
            discard_vm(client, dom, root, vm_id)
            with contextlib.suppress(HyperError):
                network.remove_ports(vm_id)
            storage.undo()
            raise
        return dom
    if found is None:  # a plan without a new VM always has a current pod; say so if it ever has not
        raise HyperError(f"pod {spec['name']}: the plan {actions} needs an existing VM, and there is none")
    dom, vm_id = found.dom, found.current.vm_id
    if "update_labels" in actions or "update_ports" in actions:
        client.set_metadata(dom, stored_metadata(spec))
    if "stop" in actions or "restart" in actions:
        runtime.stop(dom, vm_id, spec.get("containers") or [], stop_timeout, sync_timeout(spec))
        network.remove_ports(vm_id)
    if "start" in actions or "restart" in actions:
        _start_existing(client, runtime, deps, network, dom, vm_id, spec, root, wait=wait, wait_timeout=wait_timeout)
    elif "update_ports" in actions and client.is_active(dom):
        _sync_ports(client, network, dom, vm_id, spec, deps)
    return dom


def _sync_ports(client: LibvirtClient, network: PodNetworkApi, dom: Domain, vm_id: str, spec: Mapping[str, Any], deps: PodDeps) -> bool:
    runtime = PodRuntime(client, "", deps.make_transport, deps.make_guest_pod, deps.clock, deps.sleep)
    return network.sync_ports(runtime.agent(dom, vm_id), vm_id, spec, lambda: {d.name() for d in client.list_domains(prefix=VM_PREFIX)})


def _boot(
    client: LibvirtClient,
    runtime: PodRuntime,
    deps: PodDeps,
    network: PodNetworkApi,
    dom: Domain,
    vm_id: str,
    spec: Mapping[str, Any],
    containers: Any,
    *,
    wait: bool,
    wait_timeout: float,
    setup: Optional[Callable[[GuestAgent], None]] = None,
) -> None:
    """Boot with the pod's network configured (then ``setup``: volumes, files) before the containers start, then its port rules."""
    names = [c.name for c in containers]

    def prepare(agent: Any) -> None:
        network.prepare_guest(agent, vm_id, spec, names)

    # The host's boot slots bound the boots at once (concurrency.py); the wait for one is not part of wait_timeout.
    with BootSlots.for_root(runtime.root, deps.clock, deps.sleep).hold(f"pod {spec['name']} (VM {vm_id})") as waited:
        deps.timings["boot_slot_wait"] = round(waited, 3)
        runtime.boot(dom, str(spec["name"]), vm_id, containers, wait=wait, timeout=wait_timeout, prepare=prepare, setup=setup)
    try:
        _sync_ports(client, network, dom, vm_id, spec, deps)
    except HyperError as err:
        raise HyperError(f"pod {spec['name']} (VM {vm_id}): mapping its ports failed: {err.message}", {**err.details, "step": "mapping the ports"}) from None


def _start_existing(
    client: LibvirtClient,
    runtime: PodRuntime,
    deps: PodDeps,
    network: PodNetworkApi,
    dom: Domain,
    vm_id: str,
    spec: Mapping[str, Any],
    root: str,
    *,
    wait: bool,
    wait_timeout: float,
) -> None:
    """Boot a defined pod; on failure power it off again but keep its definition (it is the user's pod)."""
    images = deps.make_images(root)
    containers, _disks = images.prepare(spec)  # rebuilds a disk removed from the cache
    storage = PodStorage(root, spec)
    owners = storage.owners(getattr(images, "cache", None))
    storage.create_volumes()  # a volume file removed meanwhile is made again, empty
    add_mounts([(c.name, c.config) for c in containers], spec)
    try:
        _boot(client, runtime, deps, network, dom, vm_id, spec, containers, wait=wait, wait_timeout=wait_timeout, setup=_setup(storage, vm_id, owners))
    except BaseException:
        with contextlib.suppress(HyperError):
            client.destroy(dom)
        with contextlib.suppress(HyperError):
            network.remove_ports(vm_id)
        storage.undo()
        raise


def _setup(storage: PodStorage, vm_id: str, owners: Mapping[tuple[str, int], tuple[int, int]]) -> Optional[Callable[[GuestAgent], None]]:
    """The guest step of a boot that mounts the pod's volumes and writes its files; None for a pod without storage."""
    if not storage.spec.get("volumes") and not any(c.get("files") for c in storage.spec.get("containers") or []):
        return None
    return lambda agent: storage.setup(agent, storage.guest_files(vm_id, owners))
