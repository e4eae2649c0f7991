# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Port mappings on 127.0.0.1 and on IPv6 (issue 14): host_ip rules, rule building per family, the localnet guard."""

from __future__ import annotations

import ipaddress
import json
from typing import Any, Mapping, Optional, Sequence

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.commands import Completed
from ansible_collections.hyper.pods.plugins.module_utils._hyper.network import families, localnet
from ansible_collections.hyper.pods.plugins.module_utils._hyper.network.leases import AddressError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.network.networks import guest_mac, parse_network_xml
from ansible_collections.hyper.pods.plugins.module_utils._hyper.network.pod import PodNetwork
from ansible_collections.hyper.pods.plugins.module_utils._hyper.network.ports import (
    BASE_COMMENT,
    NftPorts,
    base_commands,
    check_clashes,
    normalise_ports,
    overlaps,
    pod_rules,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredPod, StoredPort

VM = "hyper-0000abcd"
V6_XML = """<network><name>six</name><bridge name='hb6test'/>
<ip address='10.89.1.1' prefix='24'><dhcp><range start='10.89.1.100' end='10.89.1.200'/></dhcp></ip>
<ip family='ipv6' address='fd00:89:1::1' prefix='64'/></network>"""
V4_XML = """<network><name>hyper</name><bridge name='hyperbr0'/><ip address='10.88.0.1' prefix='24'/></network>"""


def _ports(value: list[dict[str, Any]]) -> list[StoredPort]:
    return [StoredPort.from_json(m, f"ports[{i}]") for i, m in enumerate(normalise_ports(value))]


@pytest.mark.parametrize(
    ("host_ip", "stored"),
    [
        (None, None),
        ("0.0.0.0", None),
        ("127.0.0.1", "127.0.0.1"),
        ("127.0.0.2", "127.0.0.2"),
        ("192.0.2.2", "192.0.2.2"),
        ("::", "::"),
        ("2001:DB8::5", "2001:db8::5"),
        ("fd00:89:1::1", "fd00:89:1::1"),
    ],
)
def test_host_ip_good(host_ip: Optional[str], stored: Optional[str]) -> None:
    assert normalise_ports([{"host_port": 80, "host_ip": host_ip}])[0]["host_ip"] == stored


@pytest.mark.parametrize(
    ("host_ip", "reason"),
    [
        ("::1", "no route_localnet for IPv6"),
        ("::ffff:192.0.2.2", "IPv4-mapped"),
        ("fe80::1%eth0", "zone id"),
        ("fe80::1%eth0\nx", "zone id"),
        ("ff02::1", "multicast"),
        ("not-an-ip", "IPv4 or IPv6 address"),
        ("10.0.0.1/24", "IPv4 or IPv6 address"),
        (7, "IPv4 or IPv6 address"),
    ],
)
def test_host_ip_bad(host_ip: object, reason: str) -> None:
    with pytest.raises(SpecError, match=r"option ports\[0\]\.host_ip=.*" + reason):
        normalise_ports([{"host_port": 80, "host_ip": host_ip}])


@pytest.mark.parametrize(
    ("a", "b", "clash"),
    [
        (None, None, True),
        (None, "::", True),
        (None, "2001:db8::5", True),
        ("::", "2001:db8::5", True),
        ("::", "::", True),
        ("2001:db8::5", "2001:db8::6", False),
        ("::", "192.0.2.2", False),
        ("2001:db8::5", "127.0.0.1", False),
        ("127.0.0.1", "192.0.2.2", False),
        ("127.0.0.1", None, True),
    ],
)
def test_overlaps_by_family(a: Optional[str], b: Optional[str], clash: bool) -> None:
    (x,) = _ports([{"host_port": 8080, "host_ip": a}])
    (y,) = _ports([{"host_port": 8080, "host_ip": b}])
    assert overlaps(x, y) is clash and overlaps(y, x) is clash
    other = StoredPod.from_json({"name": "web", "ports": [y.to_json()]})
    if clash:
        with pytest.raises(SpecError, match=r"ports\[0\].host_port='8080': host port 8080/tcp is already mapped by pod web"):
            check_clashes("me", [x], [other])
    else:
        check_clashes("me", [x], [other])


MAPPINGS: list[dict[str, Any]] = [
    {"host_port": 8080, "pod_port": 80},  # both families
    {"host_port": 8081, "pod_port": 80, "host_ip": "127.0.0.1"},  # IPv4 only
    {"host_port": 8082, "pod_port": 80, "host_ip": "::"},  # every IPv6 address
    {"host_port": 8083, "pod_port": 80, "host_ip": "fd00:89:1::1"},  # one IPv6 address
]


def _daddr(rule: Mapping[str, Any]) -> Optional[str]:
    for expr in rule["expr"]:
        left = expr.get("match", {}).get("left", {})
        if left.get("payload", {}).get("field") == "daddr":
            return str(expr["match"]["right"])
    return None


def _dport(rule: Mapping[str, Any]) -> int:
    return int(next(e["match"]["right"] for e in rule["expr"] if e.get("match", {}).get("left", {}).get("payload", {}).get("field") == "dport"))


@pytest.mark.parametrize(
    ("family", "target", "expected"),
    [
        ("ip", "10.89.1.100", [(8080, None), (8081, "127.0.0.1")]),
        ("ip6", "fd00:89:1:0:5054:ff:fe12:3456", [(8080, None), (8082, None), (8083, "fd00:89:1::1")]),
    ],
)
def test_rules_by_family(family: str, target: str, expected: list[tuple[int, Optional[str]]]) -> None:
    rules = pod_rules(VM, target, _ports(MAPPINGS), family)
    assert [(_dport(r), _daddr(r)) for r in rules] == expected
    assert all(r["family"] == family and r["expr"][-1] == {"dnat": {"addr": target, "port": 80}} for r in rules)
    if family == "ip6":
        assert all(e["match"]["left"]["payload"]["protocol"] == "ip6" for r in rules for e in r["expr"][:-1] if "daddr" in json.dumps(e))


def test_ipv4_rules_are_the_same_as_before() -> None:
    """Rules of pods made before IPv6 mappings keep their fingerprint: no spurious rewrite after an upgrade."""
    rules = pod_rules(VM, "10.88.0.5", _ports([{"host_port": 8080, "pod_port": 80, "host_ip": "192.0.2.2"}]))
    assert rules[0]["expr"][0] == {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "192.0.2.2"}}
    assert rules[0]["comment"] == pod_rules(VM, "10.88.0.5", _ports([{"host_port": 8080, "pod_port": 80, "host_ip": "192.0.2.2"}]), "ip")[0]["comment"]


@pytest.mark.parametrize("target", ["::1", "fe80::1", "ff02::1", "::", "::ffff:10.0.0.1", "fd00::1\n", "10.88.0.5", "x" * 1000])
def test_odd_ipv6_targets_are_refused(target: str) -> None:
    with pytest.raises(AddressError, match="no port rule points to it"):
        pod_rules(VM, target, _ports(MAPPINGS), "ip6")


@pytest.mark.parametrize(
    ("mac", "subnet", "address"),
    [
        ("52:54:00:12:34:56", "fd00:89:1::/64", "fd00:89:1:0:5054:ff:fe12:3456"),
        ("00:00:00:00:00:00", "2001:db8::/64", "2001:db8::200:ff:fe00:0"),
        ("02:ff:ff:ff:ff:ff", "fd00::/64", "fd00::ff:ffff:feff:ffff"),
    ],
)
def test_eui64(mac: str, subnet: str, address: str) -> None:
    assert str(families.eui64(mac, ipaddress.IPv6Network(subnet))) == address


def test_eui64_needs_a_64() -> None:
    with pytest.raises(AddressError, match="need a /64"):
        families.eui64("52:54:00:12:34:56", ipaddress.IPv6Network("fd00::/80"))


@pytest.mark.parametrize(("family", "output_loopback"), [("ip", True), ("ip6", False)])
def test_base_chains_output_takes_loopback_v4_only(family: str, output_loopback: bool) -> None:
    rules = {c["add"]["rule"]["chain"]: c["add"]["rule"] for c in base_commands(family) if "rule" in c.get("add", {})}
    assert set(rules) == {"prerouting", "output"}
    assert all(r["comment"] == BASE_COMMENT and r["family"] == family for r in rules.values())
    # prerouting never jumps for loopback; output does for 127.0.0.0/8 (IPv4) only.
    assert "!=" in json.dumps(rules["prerouting"]["expr"])
    assert ("!=" not in json.dumps(rules["output"]["expr"])) is output_loopback


@pytest.mark.parametrize(
    ("host_ip", "loopback"),
    [(None, True), ("127.0.0.1", True), ("127.3.2.1", True), ("192.0.2.2", False), ("::", False), ("fd00::1", False)],
)
def test_covers_loopback(host_ip: Optional[str], loopback: bool) -> None:
    (mapping,) = _ports([{"host_port": 80, "host_ip": host_ip}])
    assert families.covers_loopback(mapping) is loopback


# -- the localnet guard --------------------------------------------------------------------


def test_localnet_rules() -> None:
    rules = localnet.localnet_rules("hyperbr0")
    assert [r["chain"] for r in rules] == ["localnet_guard", "localnet_guard", "postrouting"]
    assert all(r["comment"] == "localnet hyperbr0" for r in rules)
    assert rules[0]["expr"] == [
        {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "hyperbr0"}},
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "127.0.0.0", "len": 8}}}},
        {"drop": None},
    ]
    assert rules[1]["expr"][1]["match"]["left"]["payload"]["field"] == "saddr" and rules[1]["expr"][-1] == {"drop": None}
    assert rules[2]["expr"][0]["match"]["left"] == {"meta": {"key": "oifname"}} and rules[2]["expr"][-1] == {"masquerade": None}


def _listing(rules: Sequence[tuple[int, str, str]], chains: Sequence[str] = ("localnet_guard", "postrouting")) -> dict[str, Any]:
    items: list[dict[str, Any]] = [{"chain": {"name": c}} for c in chains]
    items += [{"rule": {"handle": h, "chain": c, "comment": n}} for h, c, n in rules]
    return {"nftables": items}


@pytest.mark.parametrize(
    ("listing", "deletes", "adds"),
    [
        ({}, [], 3),  # no table yet
        (_listing([(1, "localnet_guard", "localnet hyperbr0"), (2, "localnet_guard", "localnet hyperbr0"), (3, "postrouting", "localnet hyperbr0")]), None, 0),
        (_listing([(1, "localnet_guard", "localnet hyperbr0"), (3, "postrouting", "localnet hyperbr0")]), [1, 3], 3),  # one went
        (
            _listing(
                [(1, "localnet_guard", "localnet hyperbr0"), (2, "localnet_guard", "localnet hyperbr0"), (3, "postrouting", "localnet hyperbr0")],
                ["postrouting"],
            ),
            [1, 2, 3],
            3,
        ),  # the guard chain went
        (_listing([(7, "localnet_guard", "localnet other0"), (8, "postrouting", "nat hyper 10.88.0.0/24")]), [], 3),  # others' rules stay
    ],
)
def test_localnet_commands(listing: Mapping[str, Any], deletes: Optional[list[int]], adds: int) -> None:
    commands = localnet.localnet_commands(listing, "hyperbr0")
    if deletes is None:
        assert commands == []
        return
    assert [c["delete"]["rule"]["handle"] for c in commands if "delete" in c] == deletes
    assert len([c for c in commands if "rule" in c.get("add", {})]) == adds
    guard = next(c["add"]["chain"] for c in commands if c.get("add", {}).get("chain", {}).get("name") == "localnet_guard")
    assert guard["type"] == "filter" and guard["hook"] == "prerouting" and guard["prio"] < -200  # before conntrack and NAT


@pytest.mark.parametrize("bridge", ["", "../all", "all/../lo", "a b", "x" * 16, "-x", "br\n0", None, "."])
def test_bad_bridge_names_are_refused(bridge: object) -> None:
    with pytest.raises(localnet.LocalnetError, match="refusing the bridge name"):
        localnet.localnet_rules(bridge)  # type: ignore[arg-type]
    with pytest.raises(localnet.LocalnetError):
        localnet.ensure_route_localnet(bridge, lambda p: "0", lambda p, v: None)  # type: ignore[arg-type]


def test_route_localnet_is_set_once_on_the_bridge_only() -> None:
    state = {"/proc/sys/net/ipv4/conf/hyperbr0/route_localnet": "0"}
    writes: list[tuple[str, str]] = []

    def write(path: str, value: str) -> None:
        writes.append((path, value))
        state[path] = value

    assert localnet.ensure_route_localnet("hyperbr0", state.get, write) is True
    assert localnet.ensure_route_localnet("hyperbr0", state.get, write) is False
    assert writes == [("/proc/sys/net/ipv4/conf/hyperbr0/route_localnet", "1")]

    def refuse(path: str, value: str) -> None:
        raise PermissionError(13, "Permission denied")

    with pytest.raises(localnet.LocalnetError, match=r"route_localnet=1 .*Permission denied.*other addresses"):
        localnet.ensure_route_localnet("hyperbr1", lambda p: "0", refuse)


class RecordingNft:
    """``nft`` for NftPorts.ensure_localnet: records the transaction; the table starts empty."""

    def __init__(self) -> None:
        self.applied: list[list[Mapping[str, Any]]] = []

    def __call__(self, argv: Sequence[str], **_kwargs: Any) -> Completed:
        return Completed(tuple(argv), 0, json.dumps({"nftables": []}), "", 0.0)


def test_the_guard_goes_in_before_route_localnet(monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    nft = NftPorts(runner=RecordingNft())
    monkeypatch.setattr(NftPorts, "_apply", lambda self, commands: order.append(f"nft {len(commands)}") if commands else None)
    monkeypatch.setattr(localnet, "read_sysctl", lambda path: "0")
    monkeypatch.setattr(localnet, "write_sysctl", lambda path, value: order.append(f"sysctl {path}={value}"))
    assert nft.ensure_localnet("hyperbr0") is True
    assert order == ["nft 6", "sysctl /proc/sys/net/ipv4/conf/hyperbr0/route_localnet=1"]


# -- PodNetwork: what goes to which table -------------------------------------------------------


class RecPorts:
    def __init__(self) -> None:
        self.synced: list[tuple[str, Optional[str], int]] = []
        self.localnet: list[str] = []
        self.removed: list[str] = []

    def sync(self, vm_id: str, address: Optional[str], ports: Sequence[StoredPort], live_vms: Any = None) -> bool:
        self.synced.append((vm_id, address, len(ports)))
        return bool(address)

    def remove(self, vm_id: str) -> bool:
        self.removed.append(vm_id)
        return False

    def ensure_nat(self, network: str, subnet: str) -> bool:
        return False

    def ensure_localnet(self, bridge: str) -> bool:
        self.localnet.append(bridge)
        return False


def _network(xml: str) -> tuple[PodNetwork, RecPorts, RecPorts]:
    info = parse_network_xml("n", xml, True)
    v4, v6 = RecPorts(), RecPorts()
    leases = [{"mac": guest_mac(VM, 0), "type": 0, "ipaddr": "10.89.1.100" if "10.89" in xml else "10.88.0.100", "expirytime": 1}]
    return PodNetwork(object(), v4, lambda client, name: info, lambda n, m: leases, v6), v4, v6  # type: ignore[arg-type]


def _pod(ports: list[dict[str, Any]], network: str = "n") -> StoredPod:
    return StoredPod.from_json({"name": "web", "networks": [{"name": network, "address": None}], "ports": normalise_ports(ports)})


@pytest.mark.parametrize(
    ("xml", "ports", "v4", "v6", "localnet_bridges"),
    [
        (V6_XML, MAPPINGS, "10.89.1.100", True, ["hb6test"]),
        (V6_XML, [{"host_port": 8082, "host_ip": "::"}], None, True, []),  # IPv6 only: no IPv4 rule, no localnet
        (V6_XML, [{"host_port": 80, "host_ip": "192.0.2.2"}], "10.89.1.100", False, []),  # no loopback: no route_localnet
        (V4_XML, [{"host_port": 8080}], "10.88.0.100", False, ["hyperbr0"]),  # IPv4 network: no IPv6 target
        (V4_XML, [], None, False, []),
    ],
)
def test_sync_ports_by_family(xml: str, ports: list[dict[str, Any]], v4: Optional[str], v6: bool, localnet_bridges: list[str]) -> None:
    network, ports4, ports6 = _network(xml)
    network.sync_ports(object(), VM, _pod(ports), lambda: {VM})  # type: ignore[arg-type]
    info = parse_network_xml("n", xml, True)
    # The IPv6 target is the SLAAC address of the MAC the host gave the pod, never a guest report.
    want6 = str(families.eui64(guest_mac(VM, 0), info.subnet6)) if v6 and info.subnet6 else None
    assert ports4.synced == [(VM, v4, len(ports))]
    assert ports6.synced == [(VM, want6, len(ports))]
    assert ports4.localnet == localnet_bridges
    network.remove_ports(VM)
    assert ports4.removed == [VM] and ports6.removed == [VM]


@pytest.mark.parametrize("host_ip", ["::", "fd00:89:1::1"])
def test_ipv6_mappings_need_an_ipv6_subnet(host_ip: str) -> None:
    network, _v4, _v6 = _network(V4_XML)
    pod = _pod([{"host_port": 8080}, {"host_port": 8081, "host_ip": host_ip}])
    with pytest.raises(SpecError, match=r"option ports\[1\]\.host_ip=.*is IPv6, and the pod's first network n has no IPv6 subnet"):
        network.check(pod, frozenset({"ports"}), None, [])
    v6net, _a, _b = _network(V6_XML)
    assert v6net.check(pod, frozenset({"ports"}), None, []).ports == pod.ports


def test_the_network_xml_gives_the_ipv6_subnet() -> None:
    assert parse_network_xml("n", V6_XML, True).subnet6 == ipaddress.IPv6Network("fd00:89:1::/64")
    assert parse_network_xml("n", V4_XML, True).subnet6 is None
