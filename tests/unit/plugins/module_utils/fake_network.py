# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""FakePodNetwork: pod_network.PodNetworkApi without libvirt networks, a guest or nftables."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.network.networks import NetworkInfo, parse_network_xml
from ansible_collections.hyper.pods.plugins.module_utils._hyper.network.pod import PodNetwork
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredPod, StoredPort

HYPER_XML = """<network><name>hyper</name><forward mode='nat'/><bridge name='hyperbr0'/>
<ip address='10.88.0.1' prefix='24'><dhcp><range start='10.88.0.100' end='10.88.0.254'/></dhcp></ip></network>"""


class FakePorts:
    """NftPorts in memory: vm id → the desired rules' (address, ports as stored JSON)."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.rules: dict[str, tuple[str, list[dict[str, Any]]]] = {}

    def sync(self, vm_id: str, address: Optional[str], ports: Sequence[StoredPort], live_vms: Optional[Callable[[], set[str]]] = None) -> bool:
        want = (str(address), [p.to_json() for p in ports]) if ports and address else None
        live = live_vms() if live_vms is not None else None
        for stale in [v for v in self.rules if live is not None and v != vm_id and v not in live]:
            del self.rules[stale]
        have = self.rules.get(vm_id)
        if have == want:
            return False
        self.log.append(f"ports {vm_id} {len(ports) if want else 0}")
        if want is None:
            self.rules.pop(vm_id, None)
        else:
            self.rules[vm_id] = want
        return True

    def remove(self, vm_id: str) -> bool:
        return self.sync(vm_id, None, [])

    def ensure_nat(self, network: str, subnet: str) -> bool:
        return False

    def ensure_localnet(self, bridge: str) -> bool:
        self.log.append(f"localnet {bridge}")
        return False


class FakePodNetwork(PodNetwork):
    """PodNetwork with the network ``hyper`` only, in-memory ports, and a guest that needs no agent."""

    def __init__(self, client: Any, log: list[str], ports: FakePorts, networks: Optional[dict[str, NetworkInfo]] = None, fail: Any = None) -> None:
        infos = networks if networks is not None else {"hyper": parse_network_xml("hyper", HYPER_XML, True)}
        super().__init__(client, ports, lambda client, name: infos.get(name), self.fake_leases)
        # libvirt's DHCP leases by network: MAC → address (the first DHCP pod gets 10.88.0.100).
        self.leases: dict[str, dict[str, str]] = {}
        self.log = log
        self.fail = fail

    def fake_leases(self, network: str, mac: str) -> list[dict[str, Any]]:
        known = self.leases.setdefault(network, {})
        if mac not in known:
            known[mac] = f"10.88.0.{100 + len(known)}"
        return [{"mac": mac, "type": 0, "ipaddr": known[mac], "prefix": 24, "expirytime": 1}]

    def prepare_guest(self, agent: Any, vm_id: str, pod: StoredPod, containers: Sequence[str]) -> None:
        if self.fail is not None:
            raise self.fail
        self.log.append(f"net up {vm_id} {','.join(n.name for n in pod.networks)}")

    def guest_config(self, vm_id: str, pod: StoredPod) -> tuple[list[str], str]:
        if self.fail is not None:
            raise self.fail
        self.log.append(f"net config {vm_id} {','.join(n.name for n in pod.networks)}")
        args = [arg for i, n in enumerate(pod.networks) for arg in (f"52:54:00:00:00:0{i}", n.address or "dhcp", "10.88.0.1", "1" if i == 0 else "0")]
        return args, "nameserver 10.88.0.1\n"

    def addresses(self, agent: Any, vm_id: str, pod: StoredPod) -> list[dict[str, Any]]:
        out = []
        for index, network in enumerate(pod.networks):
            address = network.address or f"10.88.0.{100 + index}/24"
            out.append({"network": network.name, "interface": f"eth{index}", "mac": f"52:54:00:00:00:0{index}", "address": address})
        return out
