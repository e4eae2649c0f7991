# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import json
from typing import Any, Mapping, Optional, Sequence

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.commands import CommandFailed, Completed
from ansible_collections.hyper.pods.plugins.module_utils._hyper.network.leases import AddressError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.network.ports import (
    ExistingRule,
    NftPorts,
    base_commands,
    check_clashes,
    nat_commands,
    nat_rule,
    normalise_ports,
    overlaps,
    parse_chain,
    pod_rules,
    port_text,
    sync_commands,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredPod, StoredPort

VM = "hyper-0000abcd"


def _typed(ports: list[dict[str, Any]]) -> list[StoredPort]:
    """The typed form of stored (JSON) port mappings, as the stored spec gives them to the engine."""
    return [StoredPort.from_json(mapping, f"ports[{index}]") for index, mapping in enumerate(ports)]


def _pod(name: str, ports: list[StoredPort]) -> StoredPod:
    return StoredPod.from_json({"name": name, "ports": [mapping.to_json() for mapping in ports]})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, []),
        ([{"host_port": 8080}], [{"host_ip": None, "host_port": [8080, 8080], "pod_port": [8080, 8080], "protocol": "tcp"}]),
        ([{"host_port": "8080", "pod_port": 80, "protocol": "udp"}], [{"host_ip": None, "host_port": [8080, 8080], "pod_port": [80, 80], "protocol": "udp"}]),
        ([{"host_port": "8000-8010", "pod_port": "9000-9010"}], [{"host_ip": None, "host_port": [8000, 8010], "pod_port": [9000, 9010], "protocol": "tcp"}]),
        ([{"host_port": 53, "host_ip": "0.0.0.0"}], [{"host_ip": None, "host_port": [53, 53], "pod_port": [53, 53], "protocol": "tcp"}]),
        ([{"host_port": 53, "host_ip": "192.0.2.2"}], [{"host_ip": "192.0.2.2", "host_port": [53, 53], "pod_port": [53, 53], "protocol": "tcp"}]),
        # The same port for tcp and udp is two mappings, not a clash.
        ([{"host_port": 53}, {"host_port": 53, "protocol": "udp"}], None),
    ],
)
def test_normalise_ports(value: Any, expected: Optional[list[dict[str, Any]]]) -> None:
    result = normalise_ports(value)
    if expected is not None:
        assert result == expected


@pytest.mark.parametrize(
    ("value", "option", "reason"),
    [
        ([{"host_port": 0}], r"ports\[0\].host_port", "1-65535"),
        ([{"host_port": 65536}], r"ports\[0\].host_port", "1-65535"),
        ([{"host_port": "8010-8000"}], r"ports\[0\].host_port", "low to high"),
        ([{"host_port": "80-"}], r"ports\[0\].host_port", "range like"),
        ([{"host_port": "80;rm -rf /"}], r"ports\[0\].host_port", "range like"),
        ([{"host_port": True}], r"ports\[0\].host_port", "range like"),
        ([{"host_port": 80, "pod_port": "80-81"}], r"ports\[0\].pod_port", "as many ports"),
        ([{"host_port": 80, "protocol": "sctp"}], r"ports\[0\].protocol", "tcp, udp"),
        ([{"host_port": 80, "host_ip": "::1"}], r"ports\[0\].host_ip", "no route_localnet for IPv6"),
        ([{"pod_port": 80}], r"ports\[0\].host_port", "required"),
        ([{"host_port": 80, "extra": 1}], r"ports\[0\]", "unknown keys"),
        ([{"host_port": "8000-8010"}, {"host_port": 8005}], r"ports\[1\].host_port", r"overlaps ports\[0\]"),
        ([{"host_port": "1-2000", "pod_port": "2001-4000"}], "ports", "more than 1024 rules"),
        ("8080", "ports", "must be a list"),
    ],
)
def test_bad_ports(value: Any, option: str, reason: str) -> None:
    with pytest.raises(SpecError, match=f"option {option}=.*{reason}"):
        normalise_ports(value)


def test_overlaps_and_clashes() -> None:
    (a,) = _typed(normalise_ports([{"host_port": "8000-8010"}]))
    (b,) = _typed(normalise_ports([{"host_port": 8010, "host_ip": "192.0.2.2"}]))
    (c,) = _typed(normalise_ports([{"host_port": 8010, "host_ip": "192.0.2.3"}]))
    (d,) = _typed(normalise_ports([{"host_port": 8010, "protocol": "udp"}]))
    assert overlaps(a, b) and overlaps(a, c) and not overlaps(b, c) and not overlaps(a, d)
    others = [_pod("db", [a]), _pod("me", [b])]
    check_clashes("me", [b], [_pod("me", [b])])  # its own stored spec is no clash
    with pytest.raises(SpecError, match=r"ports\[0\].host_port='8010'.*8010/tcp is already mapped by pod db"):
        check_clashes("me", [b], others)
    check_clashes("me", [d], others)
    assert port_text(a) == "8000-8010->8000-8010/tcp" and port_text(b) == "192.0.2.2:8010->8010/tcp"


def test_rules_carry_the_vm_and_a_fingerprint() -> None:
    ports = _typed(
        normalise_ports(
            [{"host_port": 8080, "pod_port": 80}, {"host_port": "9000-9001", "pod_port": "7000-7001"}, {"host_port": "5000-5009", "protocol": "udp"}]
        )
    )
    rules = pod_rules(VM, "10.88.0.5", ports)
    assert len(rules) == 4  # 8080, 9000, 9001 one each; 5000-5009 keeps its numbers: one rule
    assert len({r["comment"] for r in rules}) == 1 and rules[0]["comment"].startswith(VM + " ")
    assert rules[0]["expr"][-1] == {"dnat": {"addr": "10.88.0.5", "port": 80}}
    assert rules[3]["expr"] == [
        {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": {"range": [5000, 5009]}}},
        {"dnat": {"addr": "10.88.0.5"}},
    ]
    # Another address (a new DHCP lease) is another fingerprint.
    assert pod_rules(VM, "10.88.0.6", ports)[0]["comment"] != rules[0]["comment"]
    # Defence in depth: whatever the caller passes, only a private unicast IPv4 address is a target.
    for bad in ("10.88.0.5; flush ruleset", "192.0.2.1\n", "8.8.8.8", "127.0.0.1", "0.0.0.0", "224.0.0.1", "169.254.1.1", "10.88.0.5/24\nx"):
        with pytest.raises(AddressError, match="no port rule points to it"):
            pod_rules(VM, bad, ports)


def test_sync_commands() -> None:
    desired = pod_rules(VM, "10.88.0.5", _typed(normalise_ports([{"host_port": 8080}])))
    fingerprint = desired[0]["comment"].split()[1]
    same = [ExistingRule(7, VM, fingerprint)]
    assert sync_commands(same, VM, desired) == []
    stale_mine = [ExistingRule(7, VM, "000000000000")]
    commands = sync_commands(stale_mine, VM, desired)
    assert commands[0] == {"delete": {"rule": {"family": "ip", "table": "hyper_pods", "chain": "ports", "handle": 7}}}
    assert commands[1] == {"add": {"rule": desired[0]}}
    # A duplicate (two rules, one wanted) is rewritten.
    assert len(sync_commands([*same, ExistingRule(8, VM, fingerprint)], VM, desired)) == 3
    # Rules of VMs that are gone go; rules of live VMs stay.
    others = [ExistingRule(3, "hyper-11111111", "aaaaaaaaaaaa"), ExistingRule(4, "hyper-22222222", "bbbbbbbbbbbb")]
    commands = sync_commands([*same, *others], VM, desired, live_vms={VM, "hyper-11111111"})
    assert commands == [{"delete": {"rule": {"family": "ip", "table": "hyper_pods", "chain": "ports", "handle": 4}}}]
    assert sync_commands(same, VM, []) == [{"delete": {"rule": {"family": "ip", "table": "hyper_pods", "chain": "ports", "handle": 7}}}]


def test_parse_chain_reads_only_our_comments() -> None:
    listing = {
        "nftables": [
            {"metainfo": {}},
            {"chain": {"name": "ports"}},
            {"rule": {"handle": 5, "comment": f"{VM} 0123456789ab"}},
            {"rule": {"handle": 6, "comment": "someone else"}},
            {"rule": {"handle": 7}},
        ]
    }
    assert parse_chain(listing) == [ExistingRule(5, VM, "0123456789ab")]


def test_base_commands_are_idempotent_in_shape() -> None:
    commands = base_commands()
    assert commands[0] == {"add": {"table": {"family": "ip", "name": "hyper_pods"}}}
    # Each base chain is flushed before its one jump rule is added: a re-run never doubles it.
    kinds = [next(iter(c)) for c in commands]
    assert kinds.count("flush") == 2 and kinds.count("add") == 6


class FakeNft:
    """``nft -j`` through the runner: an in-memory chain."""

    def __init__(self) -> None:
        self.rules: list[dict[str, Any]] = []
        self.base = False
        self.jumps: dict[str, Optional[str]] = {}
        self.handle = 0
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], **_kwargs: Any) -> Completed:
        self.calls.append(list(argv))
        if not self.base:
            raise CommandFailed(argv, 1, "", "Error: No such file or directory", "exited with 1")
        if "chain" in argv:
            out = {"nftables": [{"rule": r} for r in self.rules]}
        else:
            jumps = [{"rule": {"chain": n, "comment": c}} for n, c in self.jumps.items()]
            out = {"nftables": [{"chain": {"name": n}} for n in ("ports", "prerouting", "output")] + jumps}
        return Completed(tuple(argv), 0, json.dumps(out), "", 0.0)

    def apply(self, commands: Sequence[Mapping[str, Any]]) -> None:
        for command in commands:
            rule = command.get("add", {}).get("rule", {})
            if rule.get("chain") in ("prerouting", "output"):
                self.jumps[rule["chain"]] = rule.get("comment")
            if "add" in command and "table" in command["add"]:
                self.base = True
            elif "add" in command and "rule" in command["add"] and command["add"]["rule"]["chain"] == "ports":
                self.handle += 1
                self.rules.append({**command["add"]["rule"], "handle": self.handle})
            elif "delete" in command:
                self.rules = [r for r in self.rules if r["handle"] != command["delete"]["rule"]["handle"]]


def test_nft_ports_sync_is_idempotent(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNft()
    nft = NftPorts(runner=fake)
    monkeypatch.setattr(NftPorts, "_apply", lambda self, commands: fake.apply(commands))
    ports = _typed(normalise_ports([{"host_port": 8080, "pod_port": 80}]))
    assert nft.sync(VM, "10.88.0.5", ports) is True
    assert nft.sync(VM, "10.88.0.5", ports) is False
    assert len(fake.rules) == 1 and nft.vm_ids() == {VM}
    assert nft.sync(VM, "10.88.0.7", ports) is True  # a new address rewrites the rule
    assert len(fake.rules) == 1
    # Another VM's leftovers are cleaned up on the way, without counting as a change of this pod.
    fake.rules.append({"handle": 99, "comment": "hyper-99999999 0123456789ab"})
    assert nft.sync(VM, "10.88.0.7", ports, live_vms=lambda: {VM}) is False
    assert nft.vm_ids() == {VM}
    assert nft.remove(VM) is True and nft.remove(VM) is False
    assert fake.rules == []


def test_nat_rule_is_written_once() -> None:
    rule = nat_rule("hyper", "10.88.0.0/24")
    assert rule["comment"] == "nat hyper 10.88.0.0/24" and rule["expr"][-1] == {"masquerade": None}
    fresh = nat_commands({}, "hyper", "10.88.0.0/24")
    assert fresh[-1] == {"add": {"rule": rule}} and not any("delete" in c for c in fresh)
    listing = {"nftables": [{"chain": {"name": "postrouting"}}, {"rule": {"chain": "postrouting", "handle": 4, "comment": "nat hyper 10.88.0.0/24"}}]}
    assert nat_commands(listing, "hyper", "10.88.0.0/24") == []
    # The network's subnet changed: the old rule goes, the new one comes; other networks' rules stay.
    listing["nftables"].append({"rule": {"chain": "postrouting", "handle": 5, "comment": "nat other 10.99.0.0/24"}})
    moved = nat_commands(listing, "hyper", "10.77.0.0/24")
    assert {"delete": {"rule": {"family": "ip", "table": "hyper_pods", "chain": "postrouting", "handle": 4}}} in moved
    assert not any(c.get("delete", {}).get("rule", {}).get("handle") == 5 for c in moved)
