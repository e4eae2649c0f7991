# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""ensure_pod: the hyper_pod module's one call. Spec → images → plan (pure) → apply, or only the plan in check mode."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError, ImageError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest import layout
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import GuestAgent
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.settle import check_settle
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest_image.manifest import GuestImage, resolve_image
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.boot_slots import BootSlots
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.info import DEFAULT_ROOT, resolve_accelerator
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.locks import pod_lock, resource_lock
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.domain import apply_autostart, mark_desired
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.journal import remove_journal
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.auth import normalise_registry_auth
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.cache_lock import cache_users_lock
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.oci import DEFAULT_PULL_POLICY, check_pull_policy
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.boot import DEFAULT_STOP_TIMEOUT, DEFAULT_WAIT_TIMEOUT, PodRuntime
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.config_disk import (
    build_tar,
    config_disk_spec,
    config_path,
    has_config_disk,
    load_services,
    pod_entries,
    write_disk,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.domain import discard_vm, domain_spec, remove_files
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.health import check_healthy_timeout, wait_healthy
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.inplace_apply import apply_containers, live_vm
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.names import VM_PREFIX
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.plan import Plan, masked_diff, plan_pod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.secrets import (
    clear_env,
    env_path,
    load_env,
    save_env,
    seal_spec,
    sealing_key,
    unseal_spec,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.selfboot import SELF_BOOT_ON_REBOOT, boot_from_config
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.service_container import ADD_PARAM, keep_service_containers, with_service_container
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.session import PodSession
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.spec import normalise_pod, read_file_sources, task_files
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.store import FoundPod, new_vm_id, stored_metadata
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredPod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.view import pod_view, predicted_view
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pool.claim import (
    START_COLD,
    PoolVmBroken,
    StartChoice,
    boot_claimed,
    choose_start,
    give_devices,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.pod import (
    PodStorage,
    add_mounts,
    check_volume_users,
    purge_volumes,
    sync_timeout,
    volumes_to_purge,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.scratch import create_scratch, scratch_disk
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import DEFAULT_URI, Domain
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.domain_xml import DomainSpec, render_domain_xml


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as err:
        raise ImageError(f"cannot read {path}: {err.strerror}") from None
    return digest.hexdigest()


def resolve_guest(root: str, guest: Mapping[str, Any], hashes: Optional[dict[str, str]] = None) -> tuple[GuestImage, dict[str, Any]]:
    """The guest image of ``{"image"}`` or ``{"kernel", "initrd"}``, and its stored form (with the initrd's SHA-256).

    ``hashes`` (path → SHA-256) keeps one task from hashing the same initrd twice.
    """
    name = guest.get("image")
    image = resolve_image(root, str(name)) if name else resolve_image(root, None, str(guest.get("kernel")), str(guest.get("initrd")))
    hashes = {} if hashes is None else hashes
    if image.initrd not in hashes:
        hashes[image.initrd] = file_sha256(image.initrd)
    stored = {"image": guest.get("image") or None, "kernel": image.kernel, "initrd": image.initrd, "initrd_sha256": hashes[image.initrd]}
    return image, stored


def ensure_pod(params: Mapping[str, Any], check_mode: bool, diff: bool = False, session: Optional[PodSession] = None) -> dict[str, Any]:
    """Bring the pod named in ``params`` to ``params['state']``; return the module result (changed, actions, pod, diff)."""
    task = session or PodSession(str(params.get("uri") or DEFAULT_URI))
    with task:
        return PodTask(task, params, check_mode, diff).run()


@dataclass
class PodTask:
    """One hyper_pod task: spec → images → plan (pure) → apply, or only the plan in check mode.

    Its steps read in order in ``run``; what they share (the session, the network, the options
    that shape the apply) lives on the object instead of travelling in parameter lists.
    """

    session: PodSession
    params: Mapping[str, Any]
    check_mode: bool
    diff: bool
    initrd_hashes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        params = self.params
        self.state = str(params.get("state") or "started")
        self.root = str(params.get("root") or DEFAULT_ROOT)
        self.pull = check_pull_policy(params.get("pull") or DEFAULT_PULL_POLICY)
        self.registry_auth = normalise_registry_auth(params.get("registry_auth"))
        self.recreate = bool(params.get("recreate"))
        self.wait = params.get("wait") is not False
        self.wait_timeout = float(params.get("wait_timeout") or DEFAULT_WAIT_TIMEOUT)
        self.wait_settle = check_settle(params.get("wait_settle"))
        self.stop_timeout = float(DEFAULT_STOP_TIMEOUT if params.get("stop_timeout") is None else params["stop_timeout"])
        self.wait_healthy = bool(params.get("wait_healthy"))
        self.healthy_timeout = check_healthy_timeout(params.get("wait_healthy_timeout"))
        self.runtime = PodRuntime(self.session, self.root)
        # The host-wide claim lock while held (from the re-check of shared resources to the define).
        self._claims = contextlib.ExitStack()
        # A new VM's start: from a warm pool or cold, and why (pool/claim.py); None when no VM was started.
        self.start_choice: Optional[StartChoice] = None

    @property
    def client(self) -> Any:
        return self.session.client

    # -- the task, in order ---------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        spec, user_set = normalise_pod(self.params)
        if self.state != "absent":  # a removal needs no file content
            spec = read_file_sources(spec)
        self.spec = spec
        if self.check_mode:  # changes nothing: needs no lock
            return self._run(spec, user_set)
        # One task per pod at a time: a second run for the same pod waits for this one's plan and apply.
        # The image cache's users lock, shared: a prune or image removal waits until the domain claims its images.
        with pod_lock(self.root, spec.name), cache_users_lock(self.root, f"hyper_pod task for pod {spec.name}", exclusive=False):
            try:
                return self._run(spec, user_set)
            finally:
                self._claims.close()

    def _run(self, spec: Any, user_set: frozenset[str]) -> dict[str, Any]:
        self.session.forget()  # listed under the pod's lock: what another task made meanwhile is seen
        pods = self.session.pods()
        found = self.session.find(spec.name)
        self.network = self.session.make_network(self.client)
        plan, purge = self._plan(spec, user_set, pods, found)

        result: dict[str, Any] = {"changed": plan.changed, "actions": list(plan.actions)}
        if purge:
            result["volumes_removed"] = purge
        if self.diff:
            result["diff"] = masked_diff(plan.before, plan.after)
        if plan.containers is not None:  # one container changed, one container touched (pod/inplace.py)
            result["container_changes"] = [c.to_json() for c in plan.containers.changes]
        if plan.recreate_reasons:
            result["recreate_reasons"] = list(plan.recreate_reasons)
        # Port rules are the host's, not the VM's: put them back if they went (a reboot, a flush).
        running = not self.check_mode and not plan.changed and found is not None and found.current.running
        if running and found and self._sync_ports(found.dom, found.current.vm_id, found.current.pod):
            result["changed"] = True
            result["actions"] = ["sync_ports"]
        if self.check_mode or not plan.changed:
            if not self.check_mode and found is not None:
                self._wait_healthy(found)
            result["pod"] = pod_view(self.session, found) if found and not plan.changed else predicted_view(plan, found.current if found else None)
            return result

        dom = None
        if set(plan.actions) != {"purge_volumes"}:  # only a purge: the pod is gone already
            dom = self._apply(plan, found, task_files(spec))
        if purge:
            result["volumes_removed"] = purge_volumes(purge)
        self.session.forget()
        if dom is None:
            result["pod"] = predicted_view(plan, None)
        else:
            after = self.session.reread(dom)
            if after is not None:
                self._wait_healthy(after)
            result["pod"] = pod_view(self.session, after)
        if self.session.timings:
            result["timings"] = dict(self.session.timings)
        if self.start_choice is not None:
            result.update(self.start_choice.result())
        return result

    def _plan(self, spec: Any, user_set: frozenset[str], pods: list[FoundPod], found: Optional[FoundPod]) -> tuple[Plan, list[str]]:
        """The plan (pure), with everything resolved that it compares; bad storage fails here, before anything is made."""
        current = found.current if found else None
        purge: list[str] = []
        if self.state == "absent":
            plan = plan_pod({}, frozenset(), current, self.state)
            if self.params.get("volumes_purge"):
                purge = volumes_to_purge(self.root, pods, spec.name, current.pod if current else None, spec.volumes)
                if purge:
                    plan = dataclasses.replace(plan, actions=[*plan.actions, "purge_volumes"], changed=True)
            return plan, purge
        new = current is None
        # Fields the user did not set are taken from the stored spec: resolve only what is compared.
        accelerator = resolve_accelerator(spec.accelerator, self.root) if new or "accelerator" in user_set else None
        guest_fields = {"image": spec.guest_image, "kernel": spec.kernel, "initrd": spec.initrd}
        guest = resolve_guest(self.root, guest_fields, self.initrd_hashes)[1] if new or "guest" in user_set else {}
        images = self.session.make_images(self.root)
        digests = images.digests(spec.containers, self.pull, self.check_mode, self.registry_auth) if new or "containers" in user_set else {}
        desired = spec.to_stored(accelerator=accelerator or "", guest=guest, digests=digests)
        if current is not None:  # the service container hyper_service added stays (pod/service_container.py)
            desired, user_set = self._service_container(desired, user_set, current.spec, images)
        # Networks exist, static addresses fit and are free, host ports are free: before anything is created.
        others = [p.current.pod for p in pods if p is not found]
        checked = self.network.check(StoredPod.from_json(desired), user_set, current.pod if current else None, others)
        desired["networks"] = [n.to_json() for n in checked.networks]
        # env values are compared (and stored) as keyed digests (pod/secrets.py); the clear ones stay on the host.
        self.key = sealing_key(self.root, self.check_mode)
        self.task_env = clear_env(desired)
        sealed_current = dataclasses.replace(current, spec=seal_spec(current.spec, self.key)) if current is not None else None
        sealed = seal_spec(desired, self.key)
        # A running pod's containers change in its VM when they can (pod/inplace.py): what the VM has attached now.
        changing = "containers" in user_set and sealed_current is not None and sealed.get("containers") != sealed_current.spec.get("containers")
        live = live_vm(self.client, found.dom, self.root, found.current.vm_id) if changing and found and found.current.running else None
        plan = plan_pod(sealed, user_set, sealed_current, self.state, self.recreate, live)
        if plan.new_vm or {"start", "restart"} & set(plan.actions):
            # Bad storage fails here, in check mode too, before anything is made (a stop never needs it).
            after = StoredPod.from_json(plan.spec)
            check_volume_users(pods, spec.name, after.volumes)
            PodStorage(self.root, after).check()
        return plan, purge

    def _service_container(
        self, desired: dict[str, Any], user_set: frozenset[str], current: Mapping[str, Any], images: Any
    ) -> tuple[dict[str, Any], frozenset[str]]:
        """The service container hyper_service asks for (ADD_PARAM), or the one it added before, kept (pod/service_container.py)."""
        request = self.params.get(ADD_PARAM)
        if isinstance(request, Mapping):  # hyper_service adds the pod's service container

            def stored(container: Mapping[str, Any]) -> dict[str, Any]:
                extra = normalise_pod({"name": current["name"], "containers": [dict(container)]})[0]
                found = images.digests(extra.containers, self.pull, self.check_mode, self.registry_auth)
                return dict(extra.to_stored(accelerator="", guest={}, digests=found)["containers"][0])

            return with_service_container(desired, current, request, stored), user_set | {"containers"}
        return (keep_service_containers(desired, current) if "containers" in user_set else desired), user_set

    def _apply(self, plan: Plan, found: Optional[FoundPod], files: Mapping[str, Any]) -> Optional[Domain]:
        """Carry out ``plan.actions``; return the pod's domain afterwards (None once removed)."""
        actions = plan.actions
        if found is not None and ("remove" in actions or "recreate" in actions):
            replacing = self._prepare_new_vm(plan, found, files) if plan.new_vm else None
            try:
                self._stop(found.dom, found.current.vm_id, found.current.pod)
                self.client.undefine(found.dom)
            except BaseException:
                if replacing is not None:
                    replacing.storage.undo()
                raise
            remove_files(self.root, found.current.vm_id)
            if replacing is None:  # removed, with its event journal (a new VM of the pod keeps it)
                remove_journal(self.root, found.current.name)
                return None
            return self._create(plan, replacing)
        if plan.new_vm:
            return self._create(plan, self._prepare_new_vm(plan, None, files))
        if found is None:  # a plan without a new VM always has a current pod; say so if it ever has not
            raise HyperError(f"pod {plan.spec['name']}: the plan {actions} needs an existing VM, and there is none")
        if plan.containers is not None:
            apply_containers(self, plan, found, files)
        return self._update(plan, found)

    def _claim(self, pod: StoredPod, found: Optional[FoundPod]) -> None:
        """Take the host-wide claim lock and check the pod's volumes, static addresses and ports again against a fresh listing.

        The plan checked them without the lock (in check mode too); another task may have claimed one since.
        """
        self._claims.enter_context(resource_lock(self.root, pod.name))
        self.session.forget()
        pods = self.session.pods()
        mine = found.dom.name() if found is not None else None
        others = [p for p in pods if p.dom.name() != mine]
        twin = [p for p in others if p.current.name == pod.name]
        if twin:
            raise HyperError(f"pod {pod.name}: another VM ({twin[0].current.vm_id}) was made for this pod meanwhile; run the task again")
        self.network.check(pod, frozenset({"networks", "ports"}), None, [p.current.pod for p in others])
        check_volume_users(others, pod.name, pod.volumes)

    # -- a new VM ----------------------------------------------------------------------------

    def _prepare_new_vm(self, plan: Plan, found: Optional[FoundPod], files: Mapping[str, Any]) -> NewVm:
        """Everything that can fail on the host, before the old VM goes and libvirt hears of the new one."""
        spec = self._clear_spec(plan.spec, found)
        image, spec["guest"] = resolve_guest(self.root, spec["guest"], self.initrd_hashes)
        pod = StoredPod.from_json(spec)  # the stored spec from here on: typed
        images = self.session.make_images(self.root)
        containers, disks = images.prepare(pod)
        storage = PodStorage(self.root, pod)
        owners = storage.owners(getattr(images, "cache", None))
        contents = storage.contents(files, found.current.vm_id if found else None)
        self._claim(pod, found)  # held until the domain that claims them is defined
        storage.create_volumes()
        return NewVm(pod, image, containers, disks, storage, owners, contents)

    # -- warm pool hook (pool/claim.py): a started new VM may be a claimed pool VM --------------

    def _create(self, plan: Plan, new: NewVm) -> Domain:
        """A new VM: a claimed pool VM when one of the pod's template is ready, else a cold boot (also when the pool VM fails)."""
        if "start" not in plan.actions:
            return self._create_vm(plan, new, None)
        self.start_choice = self._choose_start(new)
        claim = self.start_choice.claim
        if claim is None:
            return self._create_vm(plan, new, None)
        try:
            return self._create_vm(plan, new, claim)
        except PoolVmBroken as err:
            self.start_choice = StartChoice(None, START_COLD, f"{err.message}; it was removed and the pod booted cold")
            self._claims.close()  # still held when the define failed; taken again with a fresh check
            self._claim(new.pod, None)
            return self._create_vm(plan, new, None)
        finally:
            claim.release()

    def _choose_start(self, new: NewVm) -> StartChoice:
        if not getattr(self.session, "self_boot", True):
            return StartChoice(None, START_COLD, "the pod is not booted from a config disk")
        count = len(new.disks) + len(new.storage.disks(len(new.disks))) + 1 + (1 if new.pod.scratch_size else 0)
        return choose_start(self.client, self.root, new.pod, new.image.kernel_args, new.image.agent_channel, count, len(new.storage.filesystems()))

    def _create_vm(self, plan: Plan, new: NewVm, claim: Any) -> Domain:
        vm_id = claim.vm_id if claim is not None else new_vm_id(self.client)
        dom = None
        try:
            new.storage.stage(vm_id, new.contents)
            pod = new.pod
            save_env(self.root, vm_id, clear_env(pod.to_json()))  # root only: the metadata keeps digests
            disks = [*new.disks, *new.storage.disks(len(new.disks))]
            if pod.scratch_size:  # writable layers and logs off guest RAM (storage/scratch.py)
                create_scratch(self.root, vm_id, pod.scratch_size)
                disks.append(scratch_disk(self.root, vm_id, layout.disk_target(len(disks))))
            self_boot = bool(getattr(self.session, "self_boot", True))
            if self_boot:  # the guest brings the pod up from its config disk, at every boot
                add_mounts([(c.name, c.config) for c in new.containers], pod)
                self._write_config(vm_id, pod, new.containers, new.storage, new.owners)
                disks.append(config_disk_spec(self.root, vm_id, len(disks)))
            domain = domain_spec(vm_id, pod, new.image, disks, self.root)
            metadata = stored_metadata(seal_spec(pod.to_json(), self.key))
            # A guest reboot restarts the VM in place: the guest brings the pod up again from its config disk.
            on_reboot = SELF_BOOT_ON_REBOOT if self_boot else domain.on_reboot
            domain = dataclasses.replace(domain, filesystems=new.storage.filesystems(), metadata=metadata, on_reboot=on_reboot)
            dom = self._define(domain, claim) if claim is not None else self.client.define(render_domain_xml(domain))
            self._claims.close()  # the domain's metadata claims its volumes, addresses and ports now
            apply_autostart(dom, pod, "start" in plan.actions)
            if claim is not None:
                self._boot_claimed(claim, dom, vm_id, pod, disks, metadata, new.containers)
            elif "start" in plan.actions:
                if not self_boot:
                    add_mounts([(c.name, c.config) for c in new.containers], pod)
                self._boot(dom, vm_id, pod, new.containers, _setup(new.storage, vm_id, new.owners))
        except BaseException as err:
            # A pod that failed to come up leaves nothing behind: no domain, no console log, no port rule, no volume
            # it made (volumes that existed before keep their data). A claimed pool VM is never given back.
            discard_vm(self.client, dom if dom is not None or claim is None else claim.vm.dom, self.root, vm_id)
            with contextlib.suppress(HyperError):
                self.network.remove_ports(vm_id)
            if not isinstance(err, PoolVmBroken):  # the cold start that follows uses them
                new.storage.undo()
            raise
        return dom

    def _define(self, domain: DomainSpec, claim: Any) -> Domain:
        """The running pool VM made persistent with the pod's own definition (same name and UUID: pool/claim.py)."""
        try:
            return self.client.define(render_domain_xml(dataclasses.replace(domain, uuid=claim.vm.uuid)))
        except HyperError as err:
            raise PoolVmBroken(f"pool VM {claim.vm_id}: {err.message}") from None

    def _boot_claimed(self, claim: Any, dom: Domain, vm_id: str, pod: StoredPod, disks: Any, metadata: Any, containers: Any) -> None:
        """The pod's disks and metadata given to the paused pool VM, resumed, the pod brought up by its guest (pool/claim.py)."""
        self.session.drop_agent(vm_id)
        give_devices(self.client, dom, claim, disks, metadata, pod.name)
        names, serials = [c.name for c in containers], [d.serial for d in disks]
        boot_claimed(self.runtime, dom, pod, vm_id, names, serials, wait=self.wait, timeout=self.wait_timeout, settle=self.wait_settle)
        self._after_boot(dom, vm_id, pod)

    # -- the VM that is there ------------------------------------------------------------------

    def _update(self, plan: Plan, found: FoundPod) -> Domain:
        actions, pod = plan.actions, StoredPod.from_json(plan.spec)
        dom, vm_id = found.dom, found.current.vm_id
        if "update_labels" in actions or "update_ports" in actions or "update_restart" in actions:
            if "update_ports" in actions:
                self._claim(pod, found)
            if not os.path.exists(env_path(self.root, vm_id)):  # a pod from before env.json: keep its clear values on the host first
                save_env(self.root, vm_id, clear_env(found.current.spec))
            self.client.set_metadata(dom, stored_metadata(plan.spec))  # sealed env values
            self._claims.close()
            apply_autostart(dom, pod, self.client.is_active(dom) and "stop" not in actions)
            if "update_restart" in actions and self.client.is_active(dom) and not {"stop", "restart"} & set(actions):
                mark_desired(self.root, vm_id, pod, "running")
        if "stop" in actions or "restart" in actions:
            self._stop(dom, vm_id, pod)
        if "start" in actions or "restart" in actions:
            self._start_existing(dom, vm_id, StoredPod.from_json(self._clear_spec(plan.spec, found)))
        elif "update_ports" in actions and self.client.is_active(dom):
            self._sync_ports(dom, vm_id, pod)
        return dom

    def _stop(self, dom: Domain, vm_id: str, pod: StoredPod) -> None:
        # Before the stop: the host service must see a stop it was asked for as one.
        mark_desired(self.root, vm_id, pod, "stopped")
        apply_autostart(dom, pod, running=False)  # a pod stopped on purpose stays down after a host reboot
        self.runtime.stop(dom, vm_id, pod.containers, self.stop_timeout, sync_timeout(pod))
        self.network.remove_ports(vm_id)

    def _start_existing(self, dom: Domain, vm_id: str, pod: StoredPod) -> None:
        """Boot a defined pod; on failure power it off again but keep its definition (it is the user's pod)."""
        images = self.session.make_images(self.root)
        containers, _disks = images.prepare(pod)  # rebuilds a disk removed from the cache
        storage = PodStorage(self.root, pod)
        owners = storage.owners(getattr(images, "cache", None))
        storage.create_volumes()  # a volume file removed meanwhile is made again, empty
        add_mounts([(c.name, c.config) for c in containers], pod)
        try:
            if has_config_disk(self.root, vm_id):  # rebuilt from the stored spec: what a stopped pod's disk says may be stale
                self._write_config(vm_id, pod, containers, storage, owners)
            self._boot(dom, vm_id, pod, containers, _setup(storage, vm_id, owners))
        except BaseException:
            with contextlib.suppress(HyperError):
                self.client.destroy(dom)
            with contextlib.suppress(HyperError):
                self.network.remove_ports(vm_id)
            storage.undo()
            raise

    def _boot(self, dom: Domain, vm_id: str, pod: StoredPod, containers: Any, setup: Optional[Callable[[GuestAgent], None]]) -> None:
        """Boot with the pod's network configured (then ``setup``: volumes, files) before the containers start, then its port rules."""
        names = [c.name for c in containers]

        def prepare(agent: Any) -> None:
            self.network.prepare_guest(agent, vm_id, pod, names)

        self.session.drop_agent(vm_id)
        # The host's boot slots bound the boots at once (host/boot_slots.py); the wait for one is not part of wait_timeout.
        with BootSlots.for_root(self.root, self.session.clock, self.session.sleep).hold(f"pod {pod.name} (VM {vm_id})") as waited:
            self.session.timings["boot_slot_wait"] = round(waited, 3)
            if has_config_disk(self.root, vm_id):
                boot_from_config(self.runtime, dom, pod.name, vm_id, names, wait=self.wait, timeout=self.wait_timeout, settle=self.wait_settle)
            else:  # a pod made before the config disk: the host drives its guest over the agent
                self.runtime.boot(
                    dom, pod.name, vm_id, containers, wait=self.wait, timeout=self.wait_timeout, settle=self.wait_settle, prepare=prepare, setup=setup
                )
        self._after_boot(dom, vm_id, pod)

    def _after_boot(self, dom: Domain, vm_id: str, pod: StoredPod) -> None:
        """A booted pod's port rules, desired state and autostart flag."""
        try:
            self._sync_ports(dom, vm_id, pod)
        except HyperError as err:
            raise HyperError(f"pod {pod.name} (VM {vm_id}): mapping its ports failed: {err.message}", {**err.details, "step": "mapping the ports"}) from None
        mark_desired(self.root, vm_id, pod, "running")
        apply_autostart(dom, pod)

    def _clear_spec(self, spec: Mapping[str, Any], found: Optional[FoundPod]) -> dict[str, Any]:
        """The plan's spec with its env values in clear: from the task, else the host's copy of the VM (or an old pod's metadata)."""
        sources = [self.task_env]
        if found is not None:
            sources += [load_env(self.root, found.current.vm_id), clear_env(found.current.spec)]
        return unseal_spec(spec, self.key, *sources)

    def _write_config(self, vm_id: str, pod: StoredPod, containers: Any, storage: PodStorage, owners: Mapping[tuple[str, int], tuple[int, int]]) -> None:
        """Build the pod's config disk (pod/config_disk.py) from its stored spec, with the services kept for the VM.

        Written while the VM is off (a create, a start), so a new file replaces the old one.
        """
        net_args, resolv_conf = self.network.guest_config(vm_id, pod)
        files = storage.guest_files(vm_id, owners) if any(c.files for c in pod.containers) else []
        entries = pod_entries(pod, containers, net_args, resolv_conf, files, load_services(self.root, vm_id))
        write_disk(config_path(self.root, vm_id), build_tar(entries), in_place=False)

    def _wait_healthy(self, found: FoundPod) -> None:
        """With ``wait_healthy``, on a running pod: wait until its containers with a healthcheck are healthy.

        On failure the pod is left as it is (running), so that it can be looked at.
        """
        if not self.wait_healthy or not found.current.running:
            return
        guest = self.session.guest_pod(found.dom, found.current.vm_id)
        try:
            wait_healthy(guest, found.current.pod.containers, self.healthy_timeout, clock=self.session.clock, sleep=self.session.sleep)
        except HyperError as err:
            what = f"pod {found.current.pod.name} (VM {found.current.vm_id}): {err.message}"
            raise HyperError(what, {**err.details, "step": "waiting for the containers to be healthy"}) from None

    def _sync_ports(self, dom: Domain, vm_id: str, pod: StoredPod) -> bool:
        def live() -> set[str]:
            return {d.name() for d in self.client.list_domains(prefix=VM_PREFIX)}

        return self.network.sync_ports(self.session.agent(dom, vm_id), vm_id, pod, live)


@dataclass
class NewVm:
    """What a new VM needs, made on the host before libvirt hears of it."""

    pod: StoredPod
    image: GuestImage
    containers: Any
    disks: Any
    storage: PodStorage
    owners: Mapping[tuple[str, int], tuple[int, int]]
    contents: Mapping[str, Any]


def _setup(storage: PodStorage, vm_id: str, owners: Mapping[tuple[str, int], tuple[int, int]]) -> Optional[Callable[[GuestAgent], None]]:
    """The guest step of a boot that mounts the pod's volumes and writes its files; None for a pod without storage."""
    if not storage.pod.volumes and not any(c.files for c in storage.pod.containers):
        return None
    return lambda agent: storage.setup(agent, storage.guest_files(vm_id, owners))
