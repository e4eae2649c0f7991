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
from ansible_collections.hyper.pods.plugins.module_utils._hyper.network import families
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

    def ensure_localnet(self, bridge: str) -> bool: ...


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
        ports6: Optional[PortsApi] = None,
    ) -> None:
        self.client = client
        self._leases = leases or client.network_leases
        self.ports: PortsApi = ports or NftPorts()
        # The IPv6 table; a PodNetwork given only a ``ports`` fake (tests) has none.
        self.ports6: Optional[PortsApi] = ports6 if ports6 is not None else (NftPorts(family=families.IPV6) if ports is None else None)
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
            self._check_ipv6(ports, joined[0].name if joined else "")
            check_clashes(desired.name, ports, others)
        return desired if networks == desired.networks else replace(desired, networks=networks)

    def _check_ipv6(self, ports: Sequence[StoredPort], first: str) -> None:
        """An IPv6 mapping needs an IPv6 subnet on the pod's first network (its ports go there)."""
        info = self.info(first) if first else None
        for index, mapping in enumerate(ports):
            if families.explicit_ipv6(mapping) and (info is None or info.subnet6 is None):
                raise SpecError(
                    f"ports[{index}].host_ip",
                    mapping.host_ip,
                    f"is IPv6, and the pod's first network {first} has no IPv6 subnet to forward to (an <ip family='ipv6' prefix='64'> "
                    "in its libvirt definition); map the port on an IPv4 address, or make the pod's first network one with IPv6",
                )

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
        changed = self.ensure_nat(infos)  # lost to a reboot or a flush: put back
        ports = pod.ports
        address = address6 = None
        if ports:
            if not pod.networks:
                raise HyperError(f"pod {pod.name}: ports need a network, and the pod has none")
            network = pod.networks[0]
            info = infos.get(network.name)
            subnet = info.subnet if info is not None else None
            if any(families.in_family(p, families.IPV4) for p in ports):
                address = str(target_address(vm_id, network, guest_mac(vm_id, 0), subnet, self._leases, f"pod {pod.name}"))
            # IPv6: the SLAAC address of the MAC the host gave the interface, in the network's prefix (host truth too).
            if info is not None and info.subnet6 is not None and any(families.in_family(p, families.IPV6) for p in ports):
                address6 = str(families.eui64(guest_mac(vm_id, 0), info.subnet6))
            # 127.0.0.1 of the host reaches the pod: the bridge's guard, masquerade and route_localnet (network/localnet.py).
            if address is not None and info is not None and info.bridge and any(families.covers_loopback(p) for p in ports):
                changed = self.ports.ensure_localnet(info.bridge) or changed
        changed = self.ports.sync(vm_id, address, ports, live_vms) or changed
        if self.ports6 is not None:
            changed = self.ports6.sync(vm_id, address6, ports, live_vms) or changed
        return changed

    def remove_ports(self, vm_id: str) -> bool:
        removed = self.ports.remove(vm_id)
        if self.ports6 is not None:
            removed = self.ports6.remove(vm_id) or removed
        return removed
