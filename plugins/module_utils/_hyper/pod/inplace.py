# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""plan_containers: one container changed, one container touched (pure).

A change to a running pod's containers alone (an image, an env value, a container added or removed)
is carried out in its guest: the containers that changed are replaced, added or removed, the others
keep running in the same VM. The VM is recreated only for what it needs: when the change cannot be
made live (the pod predates its config disk, a volume would be mounted otherwise, no PCIe hot-plug
slot is free for a new image's disk), and ``vm_reasons`` then says why. pod/inplace_apply.py carries
the plan out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest import layout
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredPod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage.pod import mount_options

ADD = "add"
REPLACE = "replace"
REMOVE = "remove"
# The one action of a plan whose containers are the same, in another order (the boot order of the config disk).
REORDER = "reorder containers"
# Stored keys of a container that together name its image.
IMAGE_KEYS = ("image", "image_ref", "digest")


@dataclass(frozen=True)
class ContainerChange:
    """One container added, replaced (with the reasons: what of it changed) or removed."""

    name: str
    action: str
    reasons: tuple[str, ...] = ()

    @property
    def describe(self) -> str:
        """The change as the module's ``actions`` list it: ``replace container web: env changed``."""
        text = f"{self.action} container {self.name}"
        return f"{text}: {', '.join(self.reasons)}" if self.reasons else text

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "action": self.action, "reasons": list(self.reasons)}


@dataclass(frozen=True)
class LiveVm:
    """What the plan needs to know of the pod's running VM (from libvirt's live XML and the host)."""

    # The image disks attached now (serials ``hyper-img-…``).
    image_serials: frozenset[str]
    # Empty pcie-root-ports (virt/hotplug.py free_slots).
    free_slots: int
    # The pod has a config disk (pods made before it boot over the agent and cannot take a live change).
    config_disk: bool


@dataclass(frozen=True)
class ContainerPlan:
    """The containers' part of a plan: the changes in order (removals first), the image disks to attach and detach."""

    changes: tuple[ContainerChange, ...] = ()
    # Why the change cannot be made in the running VM (empty: it can).
    vm_reasons: tuple[str, ...] = ()
    attach: tuple[str, ...] = ()
    detach: tuple[str, ...] = ()
    reordered: bool = False

    @property
    def in_place(self) -> bool:
        return not self.vm_reasons

    @property
    def actions(self) -> list[str]:
        return [c.describe for c in self.changes] + ([REORDER] if self.reordered and not self.changes else [])

    def names(self, *actions: str) -> list[str]:
        return [c.name for c in self.changes if c.action in actions]


def _by_name(containers: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(c.get("name")): c for c in containers}


def change_reasons(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[str, ...]:
    """What of a container changed, one phrase a changed option (its image first), sorted; empty when nothing did."""
    reasons: list[str] = []
    if before.get("image") != after.get("image") or before.get("image_ref") != after.get("image_ref"):
        reasons.append("image changed")
    elif before.get("digest") != after.get("digest"):
        reasons.append("image digest changed")
    keys = sorted((set(before) | set(after)) - set(IMAGE_KEYS) - {"name"})
    reasons += [f"{key} changed" for key in keys if before.get(key) != after.get(key)]
    return tuple(reasons)


def container_changes(before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]]) -> list[ContainerChange]:
    """Removals (in the old order), then replacements and additions (in the new order); unchanged containers are not listed."""
    old, new = _by_name(before), _by_name(after)
    changes = [ContainerChange(name, REMOVE) for name in old if name not in new]
    for name, container in new.items():
        if name not in old:
            changes.append(ContainerChange(name, ADD))
        else:
            reasons = change_reasons(old[name], container)
            if reasons:
                changes.append(ContainerChange(name, REPLACE, reasons))
    return changes


def image_serials(containers: Sequence[Mapping[str, Any]]) -> list[str]:
    """The image disk serials the containers use, in order, each once."""
    out: list[str] = []
    for container in containers:
        digest = container.get("digest")
        if isinstance(digest, str) and digest:
            serial = layout.image_serial(digest)
            if serial not in out:
                out.append(serial)
    return out


def _volume_reasons(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """A volume a container change would mount otherwise (rw ↔ ro in the guest) needs the VM restarted."""
    old, new = StoredPod.from_json(before), StoredPod.from_json(after)
    reasons = []
    for volume in new.volumes:
        was, now = mount_options(volume, old.containers), mount_options(volume, new.containers)
        if was != now:
            reasons.append(f"volume {volume.name} would be mounted {now} instead of {was} in the guest")
    return reasons


def plan_containers(before: Mapping[str, Any], after: Mapping[str, Any], live: Optional[LiveVm]) -> ContainerPlan:
    """The in-place plan of a pod whose stored spec differs from ``after`` in its containers only.

    ``before``/``after`` are stored specs (env values sealed alike); ``live`` is None when the pod's VM
    is not running (nothing to change in place then: its VM is defined again).
    """
    old = list(before.get("containers") or [])
    new = list(after.get("containers") or [])
    changes = container_changes(old, new)
    reordered = [c.get("name") for c in old] != [c.get("name") for c in new] and {str(c.get("name")) for c in old} == {str(c.get("name")) for c in new}
    if live is None:
        return ContainerPlan(tuple(changes), ("the containers changed and the pod's VM is not running",), reordered=reordered)
    wanted = image_serials(new)
    attach = tuple(s for s in wanted if s not in live.image_serials)
    detach = tuple(sorted(s for s in live.image_serials if s not in wanted))
    reasons: list[str] = []
    if not live.config_disk:
        reasons.append("the pod was made before pods had a config disk: its guest cannot take a container change")
    reasons += _volume_reasons(before, after)
    # A detached disk leaves its port empty before the new ones are attached.
    slots = live.free_slots + len(detach)
    if len(attach) > slots:
        users = [str(c.get("name")) for c in new if isinstance(c.get("digest"), str) and layout.image_serial(str(c["digest"])) in attach]
        reasons.append(
            f"the image disk of container {', '.join(users)} needs {len(attach)} free PCIe hot-plug slot(s) and the VM has {slots} "
            "(a VM defined before pods had hot-plug slots, or all in use)"
        )
    return ContainerPlan(tuple(changes), tuple(reasons), attach, detach, reordered)


def recreate_reasons(differences: Sequence[str], forced: bool, containers: Optional[ContainerPlan]) -> list[str]:
    """The reasons of a recreate: ``recreate`` asked for, each VM field that changed, then why the containers could not change in place."""
    out = ["recreate was asked for"] if forced else []
    out += [f"{key} changed" for key in differences if key != "containers"]
    if containers is not None and "containers" in differences:
        out += [f"containers changed: {reason}" for reason in containers.vm_reasons] or ["containers changed"]
    elif "containers" in differences:
        out.append("containers changed")
    return out
