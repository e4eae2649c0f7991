# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import AgentError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import GuestAgent
from ansible_collections.hyper.pods.plugins.module_utils._hyper.network.networks import (
    GUEST_UP_SCRIPT,
    bring_up,
    guest_mac,
    network_view,
    normalise_dns,
    normalise_networks,
    parse_network_xml,
    read_addresses,
    render_resolv_conf,
    resolve_networks,
    static_addresses,
    up_argv,
    write_resolv_confs,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredDns, StoredNetwork, StoredPod

HYPER = parse_network_xml(
    "hyper",
    "<network><name>hyper</name><bridge name='hyperbr0'/><ip address='10.88.0.1' prefix='24'>"
    "<dhcp><range start='10.88.0.100' end='10.88.0.254'/></dhcp></ip></network>",
    True,
)
ISOLATED = parse_network_xml("iso", "<network><name>iso</name><bridge name='virbr9'/></network>", True)
INFOS = {"hyper": HYPER, "iso": ISOLATED, "gone": None}


def _networks(*items: dict[str, Any]) -> list[StoredNetwork]:
    """The typed form of stored (JSON) networks."""
    return [StoredNetwork.from_json(item, f"networks[{index}]") for index, item in enumerate(items)]


def _json(networks: list[StoredNetwork]) -> list[dict[str, Any]]:
    return [network.to_json() for network in networks]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, [{"name": "hyper", "address": None}]),
        ("none", []),
        (["none"], []),
        ("hyper", [{"name": "hyper", "address": None}]),
        ([{"name": "hyper", "address": "10.88.0.5"}, "other"], [{"name": "hyper", "address": "10.88.0.5"}, {"name": "other", "address": None}]),
        ([{"name": "hyper", "address": "10.88.0.5/24"}], [{"name": "hyper", "address": "10.88.0.5/24"}]),
    ],
)
def test_normalise_networks(value: Any, expected: list[dict[str, Any]]) -> None:
    assert normalise_networks(value) == expected


@pytest.mark.parametrize(
    ("value", "option", "reason"),
    [
        (["hyper", "none"], r"networks\[1\].name", "cannot be combined"),
        (["hyper", "hyper"], r"networks\[1\].name", "listed twice"),
        (["../x"], r"networks\[0\].name", "libvirt network name"),
        (["-x"], r"networks\[0\].name", "libvirt network name"),
        ([{"name": "hyper", "address": "10.88.0.256"}], r"networks\[0\].address", "not an IPv4 address"),
        ([{"name": "hyper", "address": "fe80::1"}], r"networks\[0\].address", "not an IPv4 address"),
        ([{"name": "hyper", "address": "10.88.0.5/31"}], r"networks\[0\].address", "prefix length"),
        ([{"name": "hyper", "mac": "x"}], r"networks\[0\]", "unknown keys"),
        ([42], r"networks\[0\]", "network name or a mapping"),
        ({"name": "hyper"}, "networks", "must be a list"),
        (["a", "b", "c", "d", "e"], "networks", "at most 4"),
    ],
)
def test_bad_networks(value: Any, option: str, reason: str) -> None:
    with pytest.raises(SpecError, match=f"option {option}=.*{reason}"):
        normalise_networks(value)


def test_resolve_networks_fills_the_prefix_and_checks_the_subnet() -> None:
    assert _json(resolve_networks(_networks({"name": "hyper", "address": "10.88.0.5"}), INFOS, {})) == [{"name": "hyper", "address": "10.88.0.5/24"}]
    assert _json(resolve_networks(_networks({"name": "hyper", "address": None}), INFOS, {})) == [{"name": "hyper", "address": None}]


@pytest.mark.parametrize(
    ("network", "taken", "reason"),
    [
        ({"name": "gone", "address": None}, {}, "no such libvirt network"),
        ({"name": "iso", "address": "10.0.0.5"}, {}, "no IPv4 subnet"),
        ({"name": "hyper", "address": "10.89.0.5"}, {}, "host address of network hyper's subnet 10.88.0.0/24"),
        ({"name": "hyper", "address": "10.88.0.5/16"}, {}, "not in network hyper's subnet"),
        ({"name": "hyper", "address": "10.88.0.0"}, {}, "host address"),
        ({"name": "hyper", "address": "10.88.0.255"}, {}, "host address"),
        ({"name": "hyper", "address": "10.88.0.1"}, {}, "host's own address"),
        ({"name": "hyper", "address": "10.88.0.100"}, {}, "DHCP range 10.88.0.100-10.88.0.254"),
        ({"name": "hyper", "address": "10.88.0.5"}, {("hyper", "10.88.0.5"): "db"}, "static address of pod db"),
    ],
)
def test_resolve_networks_refuses(network: dict[str, Any], taken: dict[tuple[str, str], str], reason: str) -> None:
    with pytest.raises(SpecError, match=reason):
        resolve_networks(_networks(network), INFOS, taken)


def test_static_addresses_of_other_pods() -> None:
    specs = [
        {"name": "a", "networks": [{"name": "hyper", "address": "10.88.0.5/24"}]},
        {"name": "b"},
        {"name": "c", "networks": [{"name": "hyper", "address": None}]},
    ]
    assert static_addresses([StoredPod.from_json(spec) for spec in specs]) == {("hyper", "10.88.0.5"): "a"}


def test_dns_options() -> None:
    assert normalise_dns({}) == {"servers": [], "search": [], "options": []}
    dns = normalise_dns({"dns": ["10.0.0.1", "2001:db8::1"], "dns_search": ["example.org"], "dns_options": ["ndots:2", "edns0"]})
    assert dns == {"servers": ["10.0.0.1", "2001:db8::1"], "search": ["example.org"], "options": ["ndots:2", "edns0"]}
    assert render_resolv_conf(StoredDns.from_json(dns), ["10.88.0.1"]) == (
        "# written by hyper.pods\nnameserver 10.0.0.1\nnameserver 2001:db8::1\nsearch example.org\noptions ndots:2 edns0\n"
    )
    assert render_resolv_conf(StoredDns.from_json(normalise_dns({})), ["10.88.0.1"]) == "# written by hyper.pods\nnameserver 10.88.0.1\n"
    assert render_resolv_conf(StoredDns.from_json(normalise_dns({})), []) == "# written by hyper.pods\n"


@pytest.mark.parametrize(
    ("params", "option"),
    [
        ({"dns": ["10.0.0"]}, r"dns\[0\]"),
        ({"dns": ["1.1.1.1", "1.0.0.1", "8.8.8.8", "9.9.9.9"]}, "dns"),
        ({"dns": [1]}, "dns"),
        ({"dns_search": ["a b"]}, r"dns_search\[0\]"),
        ({"dns_search": ["x\nnameserver 6.6.6.6"]}, r"dns_search\[0\]"),
        ({"dns_options": ["ndots 2"]}, r"dns_options\[0\]"),
        ({"dns_options": ["ndots:2\nnameserver 6.6.6.6"]}, r"dns_options\[0\]"),
    ],
)
def test_bad_dns(params: dict[str, Any], option: str) -> None:
    with pytest.raises(SpecError, match=f"option {option}="):
        normalise_dns(params)


def test_macs_are_stable_per_vm_and_interface() -> None:
    assert guest_mac("hyper-00000001", 0) == guest_mac("hyper-00000001", 0)
    assert guest_mac("hyper-00000001", 0) != guest_mac("hyper-00000001", 1)
    assert guest_mac("hyper-00000001", 0) != guest_mac("hyper-00000002", 0)
    assert guest_mac("hyper-00000001", 0).startswith("52:54:00:")


def test_up_argv_is_checked_values_only() -> None:
    networks = _networks({"name": "hyper", "address": None}, {"name": "hyper2", "address": "10.99.0.5/24"})
    argv = up_argv("hyper-00000001", networks, {"hyper": HYPER, "hyper2": None})
    mac0, mac1 = guest_mac("hyper-00000001", 0), guest_mac("hyper-00000001", 1)
    assert argv == ["/bin/sh", GUEST_UP_SCRIPT, mac0, "dhcp", "10.88.0.1", "1", mac1, "10.99.0.5/24", "-", "0"]


def test_network_view() -> None:
    spec = {
        "name": "p",
        "networks": [{"name": "hyper", "address": None}],
        "ports": [{"host_ip": None, "host_port": [80, 80], "pod_port": [8080, 8080], "protocol": "tcp"}],
    }
    view = network_view(StoredPod.from_json(spec))
    assert view["ports"] == [{"host_ip": None, "host_port": 80, "pod_port": 8080, "protocol": "tcp"}]
    assert view["networks"] == [{"name": "hyper", "address": None}] and view["dns"] == [] and view["addresses"] == []


# -- the guest, through the scripted fake agent ------------------------------------------------------


class Guest:
    """A guest agent that answers guest-exec (rc per program), file writes and guest-network-get-interfaces."""

    def __init__(self, rc: int = 0, stderr: bytes = b"") -> None:
        self.rc = rc
        self.stderr = stderr
        self.execs: list[list[str]] = []
        self.files: dict[str, bytes] = {}
        self.handles: dict[int, str] = {}
        self.interfaces: list[dict[str, Any]] = []

    def send(self, json_text: str, timeout: int) -> str:
        request = json.loads(json_text)
        name, args = request["execute"], request.get("arguments", {})
        if name == "guest-exec":
            self.execs.append([args["path"], *args.get("arg", [])])
            return json.dumps({"return": {"pid": len(self.execs)}})
        if name == "guest-exec-status":
            argv = self.execs[args["pid"] - 1]
            rc = self.rc if argv[0] == "/bin/sh" else 0
            return json.dumps({"return": {"exited": True, "exitcode": rc, "err-data": base64.b64encode(self.stderr if rc else b"").decode()}})
        if name == "guest-file-open":
            handle = len(self.handles) + 1
            self.handles[handle] = args["path"]
            self.files[args["path"]] = b""
            return json.dumps({"return": handle})
        if name == "guest-file-write":
            data = base64.b64decode(args["buf-b64"])
            self.files[self.handles[args["handle"]]] += data
            return json.dumps({"return": {"count": len(data), "eof": False}})
        if name == "guest-network-get-interfaces":
            return json.dumps({"return": self.interfaces})
        return json.dumps({"return": {}})


def agent_for(guest: Guest) -> GuestAgent:
    return GuestAgent(guest, name="vm-test", clock=lambda: 0.0, sleep=lambda s: None)


def test_bring_up_writes_the_script_and_runs_it_once() -> None:
    guest = Guest()
    bring_up(agent_for(guest), "hyper-00000001", _networks({"name": "hyper", "address": None}), INFOS)
    assert guest.execs[0] == ["mkdir", "-p", "/run/hyper/net"]
    assert guest.execs[1][:4] == ["/bin/sh", GUEST_UP_SCRIPT, guest_mac("hyper-00000001", 0), "dhcp"]
    assert guest.files[GUEST_UP_SCRIPT].startswith(b"#!/bin/sh")
    assert len(guest.execs) == 2


def test_no_networks_means_no_guest_call() -> None:
    guest = Guest()
    bring_up(agent_for(guest), "hyper-00000001", [], INFOS)
    assert guest.execs == []


def test_a_failed_bring_up_says_which_network_and_why() -> None:
    guest = Guest(rc=1, stderr=b"eth0 (52:54:00:aa:bb:cc): no DHCP lease within 10 s\n")
    with pytest.raises(AgentError, match=r"bringing up the interfaces on hyper failed: eth0 .*no DHCP lease"):
        bring_up(agent_for(guest), "hyper-00000001", _networks({"name": "hyper", "address": None}), INFOS)


def test_resolv_conf_goes_into_each_containers_upper_layer() -> None:
    guest = Guest()
    write_resolv_confs(agent_for(guest), ["web", "db"], "nameserver 10.88.0.1\n")
    assert guest.execs == [["mkdir", "-p", "/run/hyper/containers/web/upper/etc", "/run/hyper/containers/db/upper/etc"]]
    assert guest.files["/run/hyper/containers/db/upper/etc/resolv.conf"] == b"nameserver 10.88.0.1\n"


def test_addresses_by_mac_in_network_order() -> None:
    guest = Guest()
    mac0, mac1 = guest_mac("hyper-00000001", 0), guest_mac("hyper-00000001", 1)
    guest.interfaces = [
        {"name": "lo", "hardware-address": "00:00:00:00:00:00", "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8}]},
        {"name": "eth1", "hardware-address": mac1, "ip-addresses": []},
        {
            "name": "eth0",
            "hardware-address": mac0.upper(),
            "ip-addresses": [
                {"ip-address-type": "ipv6", "ip-address": "fe80::1", "prefix": 64},
                {"ip-address-type": "ipv4", "ip-address": "10.88.0.120", "prefix": 24},
            ],
        },
    ]
    found = read_addresses(agent_for(guest), "hyper-00000001", _networks({"name": "hyper"}, {"name": "other"}))
    assert found == [
        {"network": "hyper", "interface": "eth0", "mac": mac0, "address": "10.88.0.120/24"},
        {"network": "other", "interface": "eth1", "mac": mac1, "address": None},
    ]


def test_the_host_roles_network_asks_for_masquerade() -> None:
    xml = (
        "<network><name>hyper</name><metadata><hp:nat xmlns:hp='https://hyper.pods/xmlns/network/1'>masquerade</hp:nat></metadata>"
        "<forward mode='route'/><bridge name='hyperbr0'/><ip address='10.88.0.1' prefix='24'/></network>"
    )
    info = parse_network_xml("hyper", xml, True)
    assert info.masquerade and str(info.subnet) == "10.88.0.0/24" and info.bridge == "hyperbr0"
    assert not HYPER.masquerade
