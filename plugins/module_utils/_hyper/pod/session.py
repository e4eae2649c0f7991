# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""PodSession: the session of a hyper_pod task, with the factories only a pod engine needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.prepare import PodImages
from ansible_collections.hyper.pods.plugins.module_utils._hyper.network.pod import PodNetwork, PodNetworkApi
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.engine import ServiceSession
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import LibvirtClient


@dataclass
class PodSession(ServiceSession):
    """A ServiceSession (hyper_pod may apply services too) plus the container images and the pods' network."""

    make_images: Callable[[str], Any] = PodImages
    make_network: Callable[[LibvirtClient], PodNetworkApi] = PodNetwork
    # New pods get a config disk and bring themselves up (pod/config_disk.py); False: the host drives the guest.
    self_boot: bool = True
