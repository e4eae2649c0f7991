# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""Carry out a container plan (pod/inplace.py) in a running pod's VM; the other containers keep running.

In order: everything the host can prepare (bundles, disks, runtime configs, the new config disk's
entries) → in the guest, the containers that go are removed → image disks no container uses are
unmounted and detached → new images' disks hot-plugged (virt/hotplug.py; the guest finds them by
serial, as at boot) → the new containers' files extracted into ``/run/hyper`` from one tar, as the
guest's boot does from its config disk → started and waited for → then what travels with the domain:
the host's env copy, the config disk (rewritten in its inode: the guest's next boot brings up the new
set) and, last, the stored spec in the metadata. A failure before the last step leaves the old spec
stored, so the next run plans the same change again.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from typing import Any, Mapping, Optional

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest import layout
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.domain import mark_desired
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.config_disk import (
    Entry,
    build_tar,
    config_path,
    has_config_disk,
    load_services,
    pod_entries,
    write_disk,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.inplace import ADD, REMOVE, REPLACE, ContainerPlan, LiveVm
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.secrets import clear_env, save_env
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.store import FoundPod, stored_metadata
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredPod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.pod import PodStorage, add_mounts
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import Domain, LibvirtClient
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.domain_xml import DiskSpec
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.hotplug import attach_disk, detach_disk, free_slots, free_target

# Where the guest mounts an image disk, once per guest (hyper-container's IMAGES/SERIAL).
IMAGES_DIR = f"{layout.RUN_DIR}/images"
# The new containers' files on their way into /run/hyper (root only; removed once extracted).
TAR_PATH = f"{layout.RUN_DIR}/.hyper-inplace.tar"
COMMAND_TIMEOUT = 60.0


def live_vm(client: LibvirtClient, dom: Domain, root: str, vm_id: str) -> LiveVm:
    """The running VM as the plan needs it: image disks attached and free hot-plug slots, from libvirt's live XML (host-side truth)."""
    if not has_config_disk(root, vm_id):
        return LiveVm(frozenset(), 0, False)
    xml = client.xml_desc(dom)
    serials = frozenset(d.serial for d in attached_disks(xml) if layout.IMAGE_SERIAL.fullmatch(d.serial))
    return LiveVm(serials, free_slots(xml), True)


def attached_disks(domain_xml: str) -> list[DiskSpec]:
    """The file-backed disks of a domain's XML, as DiskSpecs (path, target, serial)."""
    out = []
    for disk in ET.fromstring(domain_xml).iterfind("devices/disk"):
        source, target = disk.find("source"), disk.find("target")
        serial = (disk.findtext("serial") or "").strip()
        if source is None or target is None or not source.get("file") or not target.get("dev"):
            continue
        out.append(DiskSpec(path=str(source.get("file")), target=str(target.get("dev")), serial=serial, readonly=disk.find("readonly") is not None))
    return out


def _own(entry: Entry, names: set[str]) -> bool:
    parts = entry.path.split("/")
    return len(parts) > 2 and parts[0] in ("containers", "files") and parts[1] in names


class InPlaceChange:
    """One container plan carried out on one running pod; ``task`` is the hyper_pod task (pod/engine.py PodTask)."""

    def __init__(self, task: Any, plan: Any, found: FoundPod, files: Mapping[str, Any]) -> None:
        self.task = task
        self.plan = plan
        self.containers: ContainerPlan = plan.containers
        self.found = found
        self.files = files
        self.dom = found.dom
        self.vm_id = found.current.vm_id
        self.step = "preparing the containers on the host"

    @property
    def client(self) -> LibvirtClient:
        return self.task.client  # type: ignore[no-any-return]

    def run(self) -> None:
        pod_name = self.found.current.name
        clock = self.task.session.clock
        started = clock()
        try:
            self._run()
            # The whole change, host preparation to the metadata write (the result's timings).
            self.task.session.timings["containers_changed"] = round(clock() - started, 3)
        except HyperError as err:
            raise HyperError(f"pod {pod_name} (VM {self.vm_id}): {self.step} failed: {err.message}", {**err.details, "step": self.step}) from None

    def _run(self) -> None:
        task, root, vm_id = self.task, self.task.root, self.vm_id
        session = task.session
        pod = StoredPod.from_json(task._clear_spec(self.plan.spec, self.found))  # pylint: disable=protected-access
        images = session.make_images(root)
        prepared, disks = images.prepare(pod)
        storage = PodStorage(root, pod)
        owners = storage.owners(getattr(images, "cache", None))
        storage.stage(vm_id, storage.contents(self.files, vm_id))
        add_mounts([(c.name, c.config) for c in prepared], pod)
        net_args, resolv_conf = task.network.guest_config(vm_id, pod)
        guest_files = storage.guest_files(vm_id, owners) if any(c.files for c in pod.containers) else []
        entries = pod_entries(pod, prepared, net_args, resolv_conf, guest_files, load_services(root, vm_id))

        plan = self.containers
        gone = plan.names(REMOVE, REPLACE)
        new = plan.names(ADD, REPLACE)
        agent = session.agent(self.dom, vm_id)
        guest = session.guest_pod(self.dom, vm_id)
        old = self.found.current.pod
        for name in gone:
            self.step = f"removing container {name}"
            before = old.container(name)
            guest.remove(name, float(before.stop_timeout) if before is not None else None)
        if gone:
            self._guest(agent, ["rm", "-rf", *[f"{layout.FILES_DIR}/{layout.check_container_name(n)}" for n in gone]], "removing the old files")
        attached = {d.serial: d for d in attached_disks(self.client.xml_desc(self.dom))}
        for serial in plan.detach:
            self.step = f"detaching image disk {serial}"
            agent.exec(["umount", f"{IMAGES_DIR}/{serial}"], timeout=COMMAND_TIMEOUT)  # not mounted: nothing to do
            disk = attached.get(serial)
            if disk is not None:
                detach_disk(self.client, self.dom, disk, clock=session.clock, sleep=session.sleep)
        by_serial = {d.serial: d for d in disks}
        for serial in plan.attach:
            self.step = f"attaching image disk {serial}"
            disk = dataclasses.replace(by_serial[serial], target=free_target(self.client.xml_desc(self.dom)))
            attach_disk(self.client, self.dom, disk)
        if new:
            self.step = "writing the containers' config in the guest"
            agent.write_file(TAR_PATH, build_tar([e for e in entries if _own(e, set(new))]), mode=0o600)
            self._guest(agent, ["tar", "-x", "-f", TAR_PATH, "-C", layout.RUN_DIR], "extracting the containers' config")
            self._guest(agent, ["rm", "-f", TAR_PATH], "removing the extracted archive")
        for name in new:
            self.step = f"starting container {name}"
            guest.start(name)
        if new and task.wait:
            self.step = "waiting for the containers to run"
            guest.wait_running(new, task.wait_timeout, task.wait_settle)

        self.step = "keeping the new containers with the pod"
        save_env(root, vm_id, clear_env(pod.to_json()))  # root only: the metadata keeps digests
        write_disk(config_path(root, vm_id), build_tar(entries), in_place=True)
        self.client.set_metadata(self.dom, stored_metadata(self.plan.spec))
        mark_desired(root, vm_id, pod, "running")

    def _guest(self, agent: Any, argv: list[str], what: str) -> None:
        result = agent.exec(argv, timeout=COMMAND_TIMEOUT)
        if result.rc != 0:
            text = result.stderr.decode("utf-8", errors="replace").strip()[-500:]
            raise HyperError(f"{what} in the guest failed: {''.join(c if c.isprintable() else '?' for c in text) or f'exit code {result.rc}'}")


def apply_containers(task: Any, plan: Any, found: FoundPod, files: Mapping[str, Any]) -> Optional[Domain]:
    """Carry out ``plan.containers`` on the running ``found``; its domain afterwards (the same VM)."""
    InPlaceChange(task, plan, found, files).run()
    return found.dom
