# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""A warm pool's template: what a pre-booted VM is (guest image, vcpus, memory, accelerator, networks), and whether a pod fits it.

A pod fits a pool when the VM it would boot cold is the pool's VM plus devices hot-plugged later:
the same kernel and initrd (by the initrd's SHA-256: a rebuilt image makes the pool's VMs stale),
vCPUs, memory, accelerator and network names. What only a fresh boot gives — shared memory for
virtio-fs shares, other kernel arguments — does not fit (``pool_misfit`` says why).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredPod

TEMPLATE_FORMAT = 1
# pcie-root-ports of a pool VM: the pod's disks and interfaces are hot-plugged into them at the claim (image
# disks, volumes, config, scratch). A pod that needs more takes the cold path.
POOL_HOTPLUG_SLOTS = 8


@dataclass(frozen=True)
class PoolTemplate:
    """What every VM of a pool is; compared by ``key`` (a hash of all of it)."""

    image: Optional[str]
    kernel: str
    initrd: str
    initrd_sha256: str
    kernel_args: str
    agent_channel: str
    vcpus: int
    memory: int
    accelerator: str
    networks: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": TEMPLATE_FORMAT,
            "image": self.image,
            "kernel": self.kernel,
            "initrd": self.initrd,
            "initrd_sha256": self.initrd_sha256,
            "kernel_args": self.kernel_args,
            "agent_channel": self.agent_channel,
            "vcpus": self.vcpus,
            "memory": self.memory,
            "accelerator": self.accelerator,
            "networks": list(self.networks),
        }

    @classmethod
    def from_json(cls, data: object) -> PoolTemplate:
        """The stored template (host-written metadata, still checked field by field)."""
        if not isinstance(data, Mapping) or data.get("format") != TEMPLATE_FORMAT:
            raise SpecError("template", data, f"is not a pool template of format {TEMPLATE_FORMAT}")
        strings = ("kernel", "initrd", "initrd_sha256", "kernel_args", "agent_channel", "accelerator")
        if any(not isinstance(data.get(k), str) for k in strings) or not all(isinstance(data.get(k), int) for k in ("vcpus", "memory")):
            raise SpecError("template", data, "has a field of the wrong type")
        networks = data.get("networks")
        if not isinstance(networks, list) or not all(isinstance(n, str) for n in networks):
            raise SpecError("template.networks", networks, "must be a list of network names")
        image = data.get("image")
        return cls(
            image=image if isinstance(image, str) else None,
            kernel=str(data["kernel"]),
            initrd=str(data["initrd"]),
            initrd_sha256=str(data["initrd_sha256"]),
            kernel_args=str(data["kernel_args"]),
            agent_channel=str(data["agent_channel"]),
            vcpus=int(data["vcpus"]),
            memory=int(data["memory"]),
            accelerator=str(data["accelerator"]),
            networks=tuple(networks),
        )

    @property
    def key(self) -> str:
        """A short hash of the whole template: pool VMs and pods are matched by it."""
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def pod_template(pod: StoredPod, image_kernel_args: str, agent_channel: str) -> PoolTemplate:
    """The template of the VM ``pod`` would boot cold (its guest resolved: kernel, initrd and its hash filled in)."""
    return PoolTemplate(
        image=pod.guest.image,
        kernel=pod.guest.kernel,
        initrd=pod.guest.initrd,
        initrd_sha256=pod.guest.initrd_sha256 or "",
        kernel_args=image_kernel_args.strip(),
        agent_channel=agent_channel,
        vcpus=pod.vcpus,
        memory=pod.memory,
        accelerator=pod.accelerator,
        networks=tuple(n.name for n in pod.networks),
    )


def pool_misfit(pod: StoredPod, disks: int, filesystems: int) -> Optional[str]:
    """Why ``pod`` cannot start from a pre-booted VM at all (None: it can, if a pool of its template has one ready).

    ``disks``: the disks the pod's VM gets (image disks, volumes, config, scratch); ``filesystems``: its virtio-fs shares.
    """
    if filesystems:
        return "the pod shares host directories (virtio-fs needs the VM's memory shared from its boot)"
    if pod.kernel_args.strip():
        return "the pod sets kernel_args (only a fresh boot takes other kernel arguments)"
    if disks > POOL_HOTPLUG_SLOTS:
        return f"the pod needs {disks} disks, more than a pool VM's {POOL_HOTPLUG_SLOTS} hot-plug slots"
    return None
