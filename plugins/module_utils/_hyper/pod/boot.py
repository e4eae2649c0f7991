# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""PodRuntime: boot a pod's VM and hand its containers to the guest; stop its containers, then the VM.

Everything that needs libvirt, the guest agent and the guest's ``hyper-container`` goes through
here, with its collaborators injected so the engine can be tested without VMs.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import ContainerError, HyperError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest import layout
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import GuestAgent
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.containers import PreparedContainer
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.settle import DEFAULT_SETTLE
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.console import console_path, console_tail
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredContainer
from ansible_collections.hyper.pods.plugins.module_utils._hyper.session import GuestPodApi, Session
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import Domain, LibvirtClient
from ansible_collections.hyper.pods.plugins.module_utils._hyper.waiter import Clock, Deadline

DEFAULT_WAIT_TIMEOUT = 120
DEFAULT_STOP_TIMEOUT = 30
LOG_TAIL_LINES = 20
# A kernel panic's stack trace is ~25 lines; keep enough to show the panic line above it.
CONSOLE_TAIL_LINES = 60
MESSAGE_TAIL_LINES = 10
# After the containers stopped: flush the guest's page cache before the VM is destroyed. Nothing
# needs it today (see stop()); it must not hold up a stop, so it is short and never killed.
SYNC_ARGV: tuple[str, ...] = ("sync",)
SYNC_TIMEOUT = layout.SYNC_TIMEOUT


class PodError(HyperError):
    """A pod step failed; the message names the step, the pod, the container, and carries a tail."""


@dataclass
class PodRuntime:
    """Boot, stop and status of pod VMs, through the task's session (its libvirt client and agents)."""

    session: Session
    root: str = ""

    @property
    def client(self) -> LibvirtClient:
        return self.session.client

    @property
    def clock(self) -> Clock:
        return self.session.clock

    @property
    def timings(self) -> dict[str, float]:
        return self.session.timings

    def agent(self, dom: Domain, vm_id: str) -> GuestAgent:
        return self.session.agent(dom, vm_id)

    def guest_pod(self, dom: Domain, vm_id: str) -> GuestPodApi:
        return self.session.guest_pod(dom, vm_id)

    # -- start -------------------------------------------------------------------------------

    def boot(
        self,
        dom: Domain,
        pod: str,
        vm_id: str,
        containers: Sequence[PreparedContainer],
        *,
        wait: bool,
        timeout: float,
        settle: float = DEFAULT_SETTLE,
        setup: Optional[Callable[[GuestAgent], None]] = None,
        prepare: Optional[Callable[[GuestAgent], None]] = None,
    ) -> None:
        """Start the VM, wait for its agent, write and start every container, and wait for them to run.

        ``timeout`` bounds the whole boot. On failure the VM is left to the caller (who destroys
        it) and a PodError names the step, the pod and the container, with a console or log tail.
        ``setup`` runs once the agent answers, before any container is written (volumes, files).
        With ``wait``, a container counts as running once it kept its pid ``settle`` seconds (guest/settle.py).
        """
        deadline = Deadline(timeout, self.clock)
        started = self.clock()
        step, container = "starting the VM", None
        guest: Optional[GuestPodApi] = None
        try:
            self.client.start(dom)
            step = "waiting for the guest agent"
            agent = self.agent(dom, vm_id)
            agent.wait_ready(max(deadline.remaining, 1.0), is_alive=lambda: self.client.is_active(dom))
            self.timings["agent_ready"] = round(self.clock() - started, 3)
            if prepare is not None:  # the pod's network (pod_network.py), before any container starts
                step = "configuring the network"
                prepare(agent)
                self.timings["network_ready"] = round(self.clock() - started, 3)
            if setup is not None:
                step = "preparing the pod's volumes and files"
                setup(agent)
                self.timings["storage_ready"] = round(self.clock() - started, 3)
            guest = self.session.make_guest_pod(agent)
            for prepared in containers:
                container = prepared.name
                step = "writing the container's config"
                guest.write_container(prepared.name, prepared.config, prepared.meta)
                step = "starting the container"
                guest.start(prepared.name)
            container = None
            if wait and containers:
                step = "waiting for the containers to run"
                guest.wait_running([c.name for c in containers], max(deadline.remaining, 1.0), settle)
            self.timings["containers_running" if wait else "containers_started"] = round(self.clock() - started, 3)
        except HyperError as err:
            raise self._failure(err, pod, vm_id, step, container, guest) from None

    def _failure(self, err: HyperError, pod: str, vm_id: str, step: str, container: Optional[str], guest: Optional[GuestPodApi]) -> PodError:
        what = f"pod {pod} (VM {vm_id}): {step}" + (f" {container}" if container else "") + f" failed: {err.message}"
        details: dict[str, Any] = {"step": step, "pod": pod, "vm_id": vm_id}
        for key, value in err.details.items():
            # A container's "state" would read like the module's own option in the result.
            details["container_state" if key == "state" else key] = value
        console = console_tail(console_path(self.root, vm_id), CONSOLE_TAIL_LINES)
        details["console_tail"] = console
        panic = next((line.strip() for line in console if "Kernel panic" in line), None)
        if panic:
            what += f"\nthe guest kernel panicked: {panic}"
        failed = container or getattr(err, "container", None)
        log = [str(line) for line in err.details.get("log_tail") or []]
        if failed:
            details["container"] = failed
            if not log and guest is not None:
                with contextlib.suppress(HyperError):
                    log = guest.logs(str(failed), LOG_TAIL_LINES).splitlines()
            details["log_tail"] = log
        if log:
            what += "\nlast lines of the container's log:\n" + "\n".join(log[-MESSAGE_TAIL_LINES:])
        elif not failed and console:
            what += "\nlast lines of the guest console:\n" + "\n".join(console[-MESSAGE_TAIL_LINES:])
        return PodError(what, details)

    # -- stop --------------------------------------------------------------------------------

    def stop(self, dom: Domain, vm_id: str, containers: Sequence[StoredContainer], timeout: float, sync_timeout: float = SYNC_TIMEOUT) -> None:
        """Stop all containers at once (each its stop_signal, then SIGKILL after its stop_timeout), sync, destroy.

        The containers get ``min(their stop_timeout, timeout)``, in parallel. A guest whose agent
        does not answer is destroyed at once.

        There is no guest-shutdown: once the containers are stopped the guest holds nothing a clean
        shutdown would save. Its root is a tmpfs rebuilt at every boot, /run/hyper (container state,
        writable layers) is a tmpfs the host rewrites at the next start, and the image disks are
        read-only. An orderly poweroff only cost time (~5 s under TCG). The ``sync`` is what will
        keep the data of writable volumes once pods have them; until then it is nearly free.
        """
        if not self.client.is_active(dom):
            return
        deadline = Deadline(timeout, self.clock)
        started = self.clock()
        try:
            agent = self.agent(dom, vm_id)
            agent.ping()
            guest = self.session.make_guest_pod(agent)
            if containers and not deadline.expired:
                budget = deadline.remaining
                with contextlib.suppress(ContainerError):
                    # One container that would not stop is no reason to skip the sync for the others.
                    guest.stop_many([(c.name, min(float(c.stop_timeout), budget)) for c in containers])
            self.timings["containers_stopped"] = round(self.clock() - started, 3)
            with contextlib.suppress(HyperError):
                agent.wait(agent.spawn(SYNC_ARGV), sync_timeout, what="sync", kill=False)
                self.timings["synced"] = round(self.clock() - started, 3)
        except HyperError:
            pass  # the agent is gone: power off all the same
        self.client.destroy(dom)
        self.session.drop_agent(vm_id)
        self.timings["destroyed"] = round(self.clock() - started, 3)

    # -- status ------------------------------------------------------------------------------

    def status(
        self, dom: Domain, vm_id: str, logs: int = 0, names: Sequence[str] = (), since: Optional[float] = None
    ) -> tuple[Optional[Mapping[str, Any]], dict[str, str]]:
        """Container status from the guest (None when the agent does not answer), and log tails if asked (after ``since``)."""
        try:
            guest = self.guest_pod(dom, vm_id)
            status = guest.status()
        except HyperError:
            return None, {}
        tails: dict[str, str] = {}
        for name in names if logs > 0 else ():
            with contextlib.suppress(HyperError):
                tails[name] = guest.logs(name, logs, since) if since is not None else guest.logs(name, logs)
        return status, tails
