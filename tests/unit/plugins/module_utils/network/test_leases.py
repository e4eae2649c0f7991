# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Port rules point to the host's truth: the stored static address or libvirt's DHCP lease, never the guest's report."""

from __future__ import annotations

import ipaddress
from typing import Any, Optional, Sequence

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.network.leases import AddressError, check_target, lease_address, target_address
from ansible_collections.hyper.pods.plugins.module_utils._hyper.network.networks import guest_mac, parse_network_xml
from ansible_collections.hyper.pods.plugins.module_utils._hyper.network.pod import PodNetwork
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredNetwork, StoredPod
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.fake_agent import FakeClock
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.fake_network import HYPER_XML, FakePorts

SUBNET = ipaddress.IPv4Network("10.88.0.0/24")
MAC = "52:54:00:aa:bb:cc"
VM = "hyper-0000abcd"


def lease(ip: object, mac: object = MAC, kind: object = 0, expiry: object = 10) -> dict[str, object]:
    return {"mac": mac, "type": kind, "ipaddr": ip, "prefix": 24, "expirytime": expiry}


@pytest.mark.parametrize(
    ("leases", "expected"),
    [
        ([], None),
        ([lease("10.88.0.100")], "10.88.0.100"),
        ([lease("10.88.0.100", mac=MAC.upper())], "10.88.0.100"),
        ([lease("10.88.0.100", expiry=5), lease("10.88.0.101", expiry=9)], "10.88.0.101"),  # the newest
        ([lease("10.88.0.100", mac="52:54:00:00:00:01")], None),  # another pod's lease
        ([lease("fd00::1", kind=1)], None),  # IPv6: not a DNAT target of the ip table
        ([None, "x", 7, [], lease(5), lease("10.88.0.7", mac=None)], None),  # malformed entries are skipped
        ([lease("10.88.0.100", expiry="never")], "10.88.0.100"),
    ],
)
def test_lease_address(leases: list[Any], expected: Optional[str]) -> None:
    found = lease_address(leases, MAC, SUBNET, "pod web")
    assert (str(found) if found else None) == expected


@pytest.mark.parametrize(
    "address",
    ["192.168.1.1", "10.88.1.5", "10.88.0.0", "10.88.0.255", "8.8.8.8", "127.0.0.1", "0.0.0.0", "169.254.0.5", "224.0.0.1", "10.88.0.5\n", "x" * 100000, ""],
)
def test_a_target_outside_the_subnet_or_odd_is_refused(address: str) -> None:
    with pytest.raises(AddressError, match="no port rule points to it"):
        check_target(address, SUBNET, "pod web")


def test_a_static_address_needs_no_lease() -> None:
    def leases(network: str, mac: str) -> list[Any]:
        raise AssertionError("a static address is never looked up")

    assert str(target_address(VM, StoredNetwork("hyper", "10.88.0.9/24"), MAC, SUBNET, leases, "pod web")) == "10.88.0.9"


def test_no_lease_waits_briefly_then_says_so() -> None:
    clock = FakeClock()
    with pytest.raises(AddressError, match=r"network hyper holds no DHCP lease for the pod's interface 52:54:00:aa:bb:cc .*virsh net-dhcp-leases hyper"):
        target_address(VM, StoredNetwork("hyper"), MAC, SUBNET, lambda n, m: [], "pod web", wait=3.0, sleep=clock.sleep, clock=clock)
    assert 3.0 <= sum(clock.sleeps) <= 3.5


def test_a_lease_that_comes_late_is_taken() -> None:
    answers: list[list[Any]] = [[], [], [lease("10.88.0.120")]]
    clock = FakeClock()
    found = target_address(VM, StoredNetwork("hyper"), MAC, SUBNET, lambda n, m: answers.pop(0), "pod web", sleep=clock.sleep, clock=clock)
    assert str(found) == "10.88.0.120"


class LyingAgent:
    """Stands for a guest whose root set its own address and makes the agent report it: never asked."""

    name = "pod web (hyper-0000abcd)"

    def command(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("sync_ports asked the guest for its address")


def _pod(address: Optional[str]) -> StoredPod:
    return StoredPod.from_json(
        {
            "name": "web",
            "containers": [],
            "networks": [{"name": "hyper", "address": address}],
            "ports": [{"host_ip": None, "host_port": [8080, 8080], "pod_port": [80, 80], "protocol": "tcp"}],
        }
    )


@pytest.mark.parametrize(
    ("address", "leases", "target"), [(None, [lease("10.88.0.100", mac=guest_mac(VM, 0))], "10.88.0.100"), ("10.88.0.9/24", [], "10.88.0.9")]
)
def test_sync_ports_uses_the_host_truth_only(address: Optional[str], leases: Sequence[Any], target: str) -> None:
    ports = FakePorts([])
    info = parse_network_xml("hyper", HYPER_XML, True)
    asked: list[tuple[str, str]] = []

    def read(network: str, mac: str) -> Sequence[Any]:
        asked.append((network, mac))
        return leases

    network = PodNetwork(object(), ports, lambda client, name: info, read)  # type: ignore[arg-type]
    assert network.sync_ports(LyingAgent(), VM, _pod(address), lambda: {VM}) is True  # type: ignore[arg-type]
    assert ports.rules[VM][0] == target
    assert asked == ([] if address else [("hyper", guest_mac(VM, 0))])


def test_a_lease_outside_the_subnet_maps_nothing() -> None:
    ports = FakePorts([])
    info = parse_network_xml("hyper", HYPER_XML, True)
    network = PodNetwork(object(), ports, lambda client, name: info, lambda n, m: [lease("192.168.1.1", mac=m)])  # type: ignore[arg-type]
    with pytest.raises(AddressError, match=r"192\.168\.1\.1 is not a host address of the network.s subnet 10\.88\.0\.0/24"):
        network.sync_ports(LyingAgent(), VM, _pod(None), lambda: {VM})  # type: ignore[arg-type]
    assert ports.rules == {}
