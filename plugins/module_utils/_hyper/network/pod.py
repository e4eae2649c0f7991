# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""PodNetwork: the engine's one entry to a pod's networks, DNS and port mappings.

``ensure_pod`` calls it at four points: ``check`` (before anything is created: networks exist,
static addresses fit and are free, host ports are free), ``prepare_guest`` (after the agent
answers, before the containers start: interfaces up, resolv.conf), ``sync_ports`` (once the pod
runs) and ``remove_ports`` (when it stops or goes). ``pod_info`` calls ``addresses``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Mapping, Optional, Protocol, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import GuestAgent
from ansible_collections.hyper.pods.plugins.module_utils._hyper.network.leases import target_address
from ansible_collections.hyper.pods.plugins.module_utils._hyper.network.networks import (
    NetworkInfo,
    bring_up,
    guest_mac,
    lookup_network,
    read_addresses,
    render_resolv_conf,
    resolve_networks,
    static_addresses,
    up_argv,
    write_resolv_confs,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.network.ports import NftPorts, check_clashes, port_text
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredPod, StoredPort
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import LibvirtClient


class PortsApi(Protocol):
    def sync(self, vm_id: str, address: Optional[str], ports: Sequence[StoredPort], live_vms: Optional[Callable[[], set[str]]] = None) -> bool: ...

    def remove(self, vm_id: str) -> bool: ...

    def ensure_nat(self, network: str, subnet: str) -> bool: ...


class PodNetworkApi(Protocol):
    """What the engine uses; tests pass a fake."""

    def check(self, desired: StoredPod, user_set: frozenset[str], current: Optional[StoredPod], others: Sequence[StoredPod]) -> StoredPod: ...

    def prepare_guest(self, agent: GuestAgent, vm_id: str, pod: StoredPod, containers: Sequence[str]) -> None: ...

    def guest_config(self, vm_id: str, pod: StoredPod) -> tuple[list[str], str]: ...

    def addresses(self, agent: GuestAgent, vm_id: str, pod: StoredPod) -> list[dict[str, Any]]: ...

    def sync_ports(self, agent: GuestAgent, vm_id: str, pod: StoredPod, live_vms: Callable[[], set[str]]) -> bool: ...

    def remove_ports(self, vm_id: str) -> bool: ...


class PodNetwork:
    """The real thing: libvirt networks, the guest through its agent, nftables on the host."""

    def __init__(
        self,
        client: LibvirtClient,
        ports: Optional[PortsApi] = None,
        lookup: Optional[Callable[[LibvirtClient, str], Optional[NetworkInfo]]] = None,
        leases: Optional[Callable[[str, str], Sequence[Any]]] = None,
    ) -> None:
        self.client = client
        self._leases = leases or client.network_leases
        self.ports: PortsApi = ports or NftPorts()
        self._lookup = lookup or (lambda client, name: lookup_network(client.conn, name))
        self._infos: dict[str, Optional[NetworkInfo]] = {}

    def info(self, name: str) -> Optional[NetworkInfo]:
        if name not in self._infos:
            self._infos[name] = self._lookup(self.client, name)
        return self._infos[name]

    def infos(self, pod: StoredPod) -> dict[str, Optional[NetworkInfo]]:
        return {n.name: self.info(n.name) for n in pod.networks}

    def check(self, desired: StoredPod, user_set: frozenset[str], current: Optional[StoredPod], others: Sequence[StoredPod]) -> StoredPod:
        """Raise SpecError for a missing network, a bad or taken static address, a host port of another pod.

        Returns ``desired`` with each static address's prefix length filled from its network
        (``10.88.0.5`` → ``10.88.0.5/24``) when its networks are compared (a new pod, or ``networks`` set).
        ``current``: the stored spec of the pod (None for a new pod); ``others``: every pod's stored spec.
        """
        new = current is None
        networks = desired.networks
        if new or "networks" in user_set:
            networks = tuple(resolve_networks(networks, {n.name: self.info(n.name) for n in networks}, static_addresses(others)))
        if new or "ports" in user_set:
            ports = desired.ports
            joined = networks if new or "networks" in user_set or current is None else current.networks
            if ports and not joined:
                raise SpecError("ports", [port_text(p) for p in ports], "a pod without networks (networks: none) cannot map ports")
            check_clashes(desired.name, ports, others)
        return desired if networks == desired.networks else replace(desired, networks=networks)

    def prepare_guest(self, agent: GuestAgent, vm_id: str, pod: StoredPod, containers: Sequence[str]) -> None:
        infos = self._ready_infos(pod)
        bring_up(agent, vm_id, pod.networks, infos)
        write_resolv_confs(agent, containers, self._resolv_conf(pod, infos))

    def guest_config(self, vm_id: str, pod: StoredPod) -> tuple[list[str], str]:
        """For the config disk (the guest configures itself at boot): up.sh's arguments (empty: no network) and resolv.conf."""
        infos = self._ready_infos(pod)
        args = up_argv(vm_id, pod.networks, infos)[2:] if pod.networks else []
        return args, self._resolv_conf(pod, infos)

    def _ready_infos(self, pod: StoredPod) -> dict[str, Optional[NetworkInfo]]:
        """The pod's networks, each existing and active; the NAT they ask for in place."""
        infos = self.infos(pod)
        for network in pod.networks:
            info = infos.get(network.name)
            if info is None:
                raise HyperError(f"network {network.name} no longer exists (virsh net-list --all)")
            if not info.active:
                raise HyperError(f"network {network.name} is not active: start it with virsh net-start {network.name}")
        self.ensure_nat(infos)
        return infos

    @staticmethod
    def _resolv_conf(pod: StoredPod, infos: Mapping[str, Optional[NetworkInfo]]) -> str:
        first = infos.get(pod.networks[0].name) if pod.networks else None
        default_servers = [str(first.gateway.ip)] if first is not None and first.gateway is not None else []
        return render_resolv_conf(pod.dns, default_servers)

    def ensure_nat(self, infos: Mapping[str, Optional[NetworkInfo]]) -> bool:
        """Masquerade the networks whose metadata asks for it (the host role's), as libvirt's nat mode would."""
        changed = False
        for info in infos.values():
            if info is not None and info.masquerade and info.subnet is not None:
                changed = self.ports.ensure_nat(info.name, str(info.subnet)) or changed
        return changed

    def addresses(self, agent: GuestAgent, vm_id: str, pod: StoredPod) -> list[dict[str, Any]]:
        return read_addresses(agent, vm_id, pod.networks) if pod.networks else []

    def sync_ports(self, agent: GuestAgent, vm_id: str, pod: StoredPod, live_vms: Callable[[], set[str]]) -> bool:
        """Port rules to the pod's address on its first network; True when the rules changed.

        The address is the host's truth (network/leases.py): the stored static address or the DHCP
        lease libvirt's network holds for the pod's MAC; never what the guest (``agent``) reports.
        """
        infos = self.infos(pod)
        nat_changed = self.ensure_nat(infos)  # lost to a reboot or a flush: put back
        ports = pod.ports
        address = None
        if ports:
            if not pod.networks:
                raise HyperError(f"pod {pod.name}: ports need a network, and the pod has none")
            network = pod.networks[0]
            info = infos.get(network.name)
            subnet = info.subnet if info is not None else None
            address = str(target_address(vm_id, network, guest_mac(vm_id, 0), subnet, self._leases, f"pod {pod.name}"))
        return self.ports.sync(vm_id, address, ports, live_vms) or nat_changed

    def remove_ports(self, vm_id: str) -> bool:
        return self.ports.remove(vm_id)
