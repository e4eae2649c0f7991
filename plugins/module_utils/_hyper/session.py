# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""Session: one task's view of a libvirt host — one connection, one listing of the pods, one agent per VM.

Every module call, the connection and the inventory go through one. It is also the one place
where tests inject their fakes (a libvirt client, the agent transport, the guest's containers,
a clock). It stays light: no image, storage or network code, so hyper_exec and the connection
load only what they use. Engines that need more (pod/engine.py: images and the pods' network;
service/engine.py: the haproxy container) extend it with their own factories.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Protocol, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import DomainNotFound, DomainNotRunning
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import AgentTransport, GuestAgent, LibvirtAgentTransport
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.containers import GuestPod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.names import check_pod_name
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.store import FoundPod, find_pod, list_pods, pod_of
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import DEFAULT_URI, Domain, LibvirtClient
from ansible_collections.hyper.pods.plugins.module_utils._hyper.waiter import Clock, Sleep


class GuestPodApi(Protocol):
    """What the engines use of ``guest.containers.GuestPod`` (the guest's hyper-container through the agent)."""

    def write_container(self, name: str, config: dict[str, Any], meta: dict[str, Any]) -> Any: ...

    def start(self, name: str) -> Any: ...

    def stop(self, name: str, timeout: float) -> Any: ...

    def stop_many(self, items: Sequence[tuple[str, Optional[float]]]) -> Any: ...

    def status(self) -> Mapping[str, Any]: ...

    def logs(self, name: str, lines: int, since: Optional[float] = None) -> str: ...

    def wait_running(self, names: Sequence[str], timeout: float, settle: float = ...) -> Any: ...

    def wait_settled(self, watch: Any, timeout: float, first: Any = None, *, poll_cap: float = ..., missing: str = ...) -> Any: ...


def default_guest_pod(agent: GuestAgent) -> GuestPodApi:
    return GuestPod(agent)


def running_pod(client: LibvirtClient, pod: str, pods: Optional[Sequence[FoundPod]] = None) -> FoundPod:
    """The running pod called ``pod`` (among ``pods``, else listed); DomainNotFound or DomainNotRunning otherwise."""
    found = find_pod(client, pod, pods)
    if found is None:
        raise DomainNotFound(f"pod {pod} does not exist on {client.uri}", {"pod": pod})
    if not found.current.running:
        vm_id = found.current.vm_id
        raise DomainNotRunning(f"pod {pod} is {found.current.state}: start it with hyper.pods.hyper_pod state=started", {"pod": pod, "vm_id": vm_id})
    return found


@dataclass
class Session:
    """Opened once per task (``with Session(uri) as session``); closes its libvirt connection at the end."""

    uri: str = DEFAULT_URI
    open_client: Callable[[str], LibvirtClient] = LibvirtClient.open
    make_transport: Callable[[Any, str], AgentTransport] = LibvirtAgentTransport
    make_guest_pod: Callable[[GuestAgent], GuestPodApi] = default_guest_pod
    clock: Clock = time.monotonic
    sleep: Sleep = time.sleep
    # Phases of a pod start (seconds since the VM start), for the result and the benchmarks.
    timings: dict[str, float] = field(default_factory=dict)
    _client: Optional[LibvirtClient] = field(default=None, init=False, repr=False)
    _pods: Optional[list[FoundPod]] = field(default=None, init=False, repr=False)
    _agents: dict[str, GuestAgent] = field(default_factory=dict, init=False, repr=False)
    _depth: int = field(default=0, init=False, repr=False)

    def __enter__(self) -> Session:
        # Nested uses (hyper_pod's services after its pod) share the connection; the outermost closes it.
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth <= 0:
            self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.__exit__(None, None, None)
        self._client = None
        self._pods = None
        self._agents.clear()

    @property
    def client(self) -> LibvirtClient:
        """The libvirt connection, opened on first use."""
        if self._client is None:
            self._client = self.open_client(self.uri)
        return self._client

    # -- pods ----------------------------------------------------------------------------------

    def pods(self) -> list[FoundPod]:
        """Every pod of the host, listed once per session (``forget`` after a change lists them again)."""
        if self._pods is None:
            self._pods = list_pods(self.client)
        return self._pods

    def forget(self) -> None:
        """The listing is stale (a VM was made, removed, started or stopped)."""
        self._pods = None

    def find(self, name: str) -> Optional[FoundPod]:
        """The pod called ``name``; two VMs claiming one name is an error naming both."""
        return find_pod(self.client, name, self.pods())

    def reread(self, dom: Domain) -> Optional[FoundPod]:
        """One pod read again from libvirt (after a change), without listing them all."""
        current = pod_of(self.client, dom)
        return FoundPod(dom, current) if current is not None else None

    def running(self, pod: str, option: str = "pod") -> FoundPod:
        """The running pod called ``pod``; DomainNotFound or DomainNotRunning otherwise."""
        check_pod_name(pod, option)
        return running_pod(self.client, pod, self.pods())

    # -- the guest -------------------------------------------------------------------------------

    def agent(self, dom: Domain, vm_id: str, label: Optional[str] = None) -> GuestAgent:
        """The guest agent of one VM, one per VM and session; ``label`` names it in messages (default: the VM id)."""
        agent = self._agents.get(vm_id)
        if agent is None:
            agent = GuestAgent(self.make_transport(dom, vm_id), name=label or vm_id, clock=self.clock, sleep=self.sleep)
            self._agents[vm_id] = agent
        return agent

    def pod_agent(self, found: FoundPod) -> GuestAgent:
        """The agent of a pod, named ``pod NAME (VM ID)`` in its messages."""
        return self.agent(found.dom, found.current.vm_id, f"pod {found.current.name} ({found.current.vm_id})")

    def guest_pod(self, dom: Domain, vm_id: str) -> GuestPodApi:
        return self.make_guest_pod(self.agent(dom, vm_id))

    def drop_agent(self, vm_id: str) -> None:
        """A VM was destroyed or made anew: its next agent starts fresh."""
        self._agents.pop(vm_id, None)
