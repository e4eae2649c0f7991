# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""A pod whose VM runs without a task having started it (libvirt's autostart after a host reboot, a start
outside the collection): the host service takes it over.

Its port rules are rebuilt from host-side state (``ensure_pod`` with ``state: started`` on a
running pod syncs them). When its guest came up without the pod's containers (a guest whose
containers the host hands over at each boot, not one that brings the pod up itself), the VM is
destroyed and started again through the modules' start path. The decision is pure (``verdict``).
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Mapping, Optional, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.locks import lock_dir, try_lock
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.boot import PodRuntime
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.session import PodSession

# How long a guest whose agent answers may take to show the pod's containers (a guest that brings the
# pod up itself writes them right after its boot), and how long its agent may take to answer at all.
ADOPT_GRACE = 15.0
AGENT_TIMEOUT = 120.0
POLL = 1.0

RUNS = "runs"  # every container of the pod is in the guest: only the port rules
RESTART = "restart"  # the guest has none of them: start it again, the start path hands them over
BUSY = "busy"  # a task holds the pod: it is that task's


def verdict(status: Optional[Mapping[str, Any]], names: Sequence[str], expired: bool) -> Optional[str]:
    """RUNS when the guest knows every container; RESTART when it still does not once the grace ``expired``;
    BUSY when its agent did not answer by then; None: ask again."""
    if status is not None and all(n in status for n in names):
        return RUNS
    if not expired:
        return None
    return RESTART if status is not None else BUSY


def check_running_pod(
    root: str,
    uri: str,
    name: str,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    session: Optional[PodSession] = None,
) -> str:
    """RUNS, RESTART (the VM was destroyed: the caller starts it) or BUSY, for the running pod ``name``.

    Holds the pod's lock while it looks and destroys, so that no task's boot is taken for a bare guest.
    """
    with try_lock(os.path.join(lock_dir(root, "hyper-hostd"), f"pod-{name}.lock"), f"hyper-hostd: checking the running pod {name}") as mine:
        if not mine:
            return BUSY
        task = session or PodSession(uri)
        with task:
            found = task.find(name)
            if found is None or not found.current.running:
                return BUSY  # gone or stopped meanwhile: nothing to take over
            pod, dom, vm_id = found.current.pod, found.dom, found.current.vm_id
            names = [c.name for c in pod.containers]
            if not names:
                return RUNS
            try:
                task.agent(dom, vm_id).wait_ready(AGENT_TIMEOUT, is_alive=lambda: task.client.is_active(dom))
            except HyperError:
                return BUSY  # the VM went, or its guest does not answer: its STOPPED event decides
            runtime = PodRuntime(task, root)
            deadline = clock() + ADOPT_GRACE
            result: Optional[str] = None
            while result is None:
                status, _tails = runtime.status(dom, vm_id)
                result = verdict(status, names, clock() >= deadline)
                if result is None:
                    sleep(POLL)
            if result == RESTART:
                task.client.destroy(dom)
            return result
