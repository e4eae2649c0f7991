# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""The run-time side of a pod's domain that the engine sets: libvirt's autostart flag, the desired run state on the host."""

from __future__ import annotations

from typing import Any

from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.state import write_desired
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredPod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import import_libvirt, map_libvirt_error


def apply_autostart(dom: Any, pod: StoredPod, running: bool = True) -> None:
    """Set libvirt's autostart flag of the domain from the pod's ``autostart`` (left alone for pods made before it existed).

    ``running``: whether the pod is to run; a pod a task stopped has the flag cleared until a task
    starts it again, so that a host reboot does not bring back a pod stopped on purpose.
    """
    if pod.autostart is None:
        return
    wanted = bool(pod.autostart) and running
    libvirt = import_libvirt()[0]
    try:
        if bool(dom.autostart()) != wanted:
            dom.setAutostart(1 if wanted else 0)
    except libvirt.libvirtError as err:
        raise map_libvirt_error(err.get_error_code(), err.get_error_message() or str(err), f"pod {pod.name}: setting autostart") from None


def mark_desired(root: str, vm_id: str, pod: StoredPod, state: str) -> None:
    """Record the desired run state of a pod that carries a restart policy (the host service reads it)."""
    if pod.restart_policy is not None:
        write_desired(root, vm_id, state)
