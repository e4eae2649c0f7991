# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""Port mappings: options checked (pure), clashes between pods found (pure), nftables rules kept in step.

The rules live in a table of the collection's own, ``ip hyper_pods``, and nowhere else:

- base chains ``prerouting`` and ``output`` (nat, priority dstnat) jump to ``ports`` for packets to
  one of the host's own addresses (``fib daddr type local``; ``output`` for loopback too, see
  network/localnet.py; ``prerouting`` never for loopback);
- ``ports`` holds one rule per mapping (a range is one rule when host and pod ranges are equal),
  each with the comment ``<vm id> <fingerprint>``, the fingerprint a hash of all the pod's rules.

A pod's rules are replaced in one ``nft -j -f -`` transaction (JSON: no rule text is ever built
from user strings), so a re-run never duplicates them; they are added when the pod starts and
removed when it stops or goes. Rules whose VM no longer exists are removed on the way.

IPv6 mappings live in the twin table ``ip6 hyper_pods`` (same chains, ``NftPorts(family="ip6")``);
which mappings go where is network/families.py's.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.commands import CommandFailed, Runner, run
from ansible_collections.hyper.pods.plugins.module_utils._hyper.network import families, localnet
from ansible_collections.hyper.pods.plugins.module_utils._hyper.network.leases import check_target
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredPod, StoredPort

TABLE = "hyper_pods"
FAMILY = "ip"
PORTS_CHAIN = "ports"
BASE_CHAINS = {"prerouting": "prerouting", "output": "output"}
NAT_CHAIN = "postrouting"
_NAT_COMMENT = re.compile(r"^nat (\S+) (\S+)$")
PROTOCOLS = ("tcp", "udp")
PORT_KEYS = ("host_ip", "host_port", "pod_port", "protocol")
MAX_RULES = 1024  # per pod, after ranges of unequal numbers are spelled out
NFT = "nft"
NFT_TIMEOUT = 30.0
_RANGE = re.compile(r"^([0-9]{1,5})(?:-([0-9]{1,5}))?$")
_COMMENT = re.compile(r"^(hyper-[0-9a-f]{8}) ([0-9a-f]{12})$")


class PortsError(HyperError):
    """nftables refused or failed a change of the pod's port rules."""


# -- options (pure) -------------------------------------------------------------------------


def _range(value: object, option: str) -> tuple[int, int]:
    if isinstance(value, bool):
        raise SpecError(option, value, "must be a port (1-65535) or a range like 8000-8010")
    text = str(value) if isinstance(value, int) else value
    match = _RANGE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise SpecError(option, value, "must be a port (1-65535) or a range like 8000-8010")
    low = int(match.group(1))
    high = int(match.group(2) or low)
    if not 1 <= low <= high <= 65535:
        raise SpecError(option, value, "ports are 1-65535 and a range goes from low to high")
    return low, high


def normalise_ports(value: object) -> list[dict[str, Any]]:
    """``ports`` → stored ``[{"host_ip", "host_port": [lo, hi], "pod_port": [lo, hi], "protocol"}]``."""
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise SpecError("ports", value, "must be a list of {host_port, pod_port, protocol, host_ip} mappings")
    out: list[StoredPort] = []
    rules = 0
    for index, item in enumerate(value):
        where = f"ports[{index}]"
        if not isinstance(item, Mapping):
            raise SpecError(where, item, "must be a mapping with host_port (and pod_port, protocol, host_ip)")
        unknown = sorted(k for k, v in item.items() if k not in PORT_KEYS and v is not None)
        if unknown:
            raise SpecError(where, unknown, f"unknown keys; known: {', '.join(PORT_KEYS)}")
        if item.get("host_port") is None:
            raise SpecError(f"{where}.host_port", None, "is required")
        host = _range(item["host_port"], f"{where}.host_port")
        pod = host if item.get("pod_port") is None else _range(item["pod_port"], f"{where}.pod_port")
        if pod[1] - pod[0] != host[1] - host[0]:
            raise SpecError(f"{where}.pod_port", item.get("pod_port"), f"must span as many ports as host_port {host[0]}-{host[1]}")
        protocol = item.get("protocol") or "tcp"
        if protocol not in PROTOCOLS:
            raise SpecError(f"{where}.protocol", protocol, f"must be one of {', '.join(PROTOCOLS)}")
        host_ip = families.parse_host_ip(item.get("host_ip"), f"{where}.host_ip")
        mapping = StoredPort(host_ip, host, pod, protocol)
        for earlier_index, earlier in enumerate(out):
            if overlaps(earlier, mapping):
                raise SpecError(f"{where}.host_port", item["host_port"], f"overlaps ports[{earlier_index}] of this pod")
        rules += 1 if host == pod else host[1] - host[0] + 1
        if rules > MAX_RULES:
            raise SpecError("ports", value, f"more than {MAX_RULES} rules (a range with different host and pod numbers needs one per port)")
        out.append(mapping)
    return [mapping.to_json() for mapping in out]


def overlaps(a: StoredPort, b: StoredPort) -> bool:
    """Two mappings take the same host port: same protocol, overlapping ranges, and the same or any address."""
    if a.protocol != b.protocol:
        return False
    if not families.same_addresses(a.host_ip, b.host_ip):
        return False
    return bool(a.host_port[0] <= b.host_port[1] and b.host_port[0] <= a.host_port[1])


def check_clashes(pod: str, ports: Sequence[StoredPort], others: Sequence[StoredPod]) -> None:
    """A SpecError when one of ``ports`` takes a host port another pod (stored spec in ``others``) has."""
    for index, mapping in enumerate(ports):
        for other in others:
            if other.name == pod:
                continue
            for theirs in other.ports:
                if overlaps(mapping, theirs):
                    low, high = mapping.host_port
                    shown = str(low) if low == high else f"{low}-{high}"
                    raise SpecError(f"ports[{index}].host_port", shown, f"host port {shown}/{mapping.protocol} is already mapped by pod {other.name}")


def port_text(mapping: StoredPort) -> str:
    """``[host_ip:]8080->80/tcp`` for messages and the ``pod`` result."""
    host = "-".join(str(p) for p in sorted(set(mapping.host_port)))
    pod = "-".join(str(p) for p in sorted(set(mapping.pod_port)))
    return f"{mapping.host_ip + ':' if mapping.host_ip else ''}{host}->{pod}/{mapping.protocol}"


# -- nftables (JSON) ------------------------------------------------------------------------


def _port_expr(low: int, high: int) -> Any:
    return low if low == high else {"range": [low, high]}


def pod_rules(vm_id: str, address: str, ports: Sequence[StoredPort], family: str = FAMILY) -> list[dict[str, Any]]:
    """The ``ports`` chain rules of one pod (JSON ``rule`` objects), each with the comment ``<vm id> <fingerprint>``.

    ``family``: ``ip`` (IPv4 target, the mappings on IPv4 addresses) or ``ip6`` (IPv6 target, those on IPv6 ones).
    """
    # Defence in depth: the caller gives the host's truth (network/leases.py); refuse anything odd all the same.
    what = f"the port rules of VM {vm_id}"
    target = str(families.check_target6(address, None, what) if family == families.IPV6 else check_target(address, None, what))
    bodies: list[list[dict[str, Any]]] = []
    for mapping in ports:
        if not families.in_family(mapping, family):
            continue
        proto = mapping.protocol
        (hlow, hhigh), (plow, phigh) = mapping.host_port, mapping.pod_port
        # Same numbers: one rule that keeps the port; otherwise one rule per port.
        same = (hlow, hhigh) == (plow, phigh)
        spelled = [((h, h), p) for h, p in zip(range(hlow, hhigh + 1), range(plow, phigh + 1))]
        pairs: list[tuple[tuple[int, int], Optional[int]]] = [((hlow, hhigh), None)] if same else list(spelled)
        for (low, high), pod_port in pairs:
            expr: list[dict[str, Any]] = []
            if mapping.host_ip and mapping.host_ip != families.ALL_IPV6:
                expr.append({"match": {"op": "==", "left": {"payload": {"protocol": family, "field": "daddr"}}, "right": mapping.host_ip}})
            expr.append({"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": "dport"}}, "right": _port_expr(low, high)}})
            dnat: dict[str, Any] = {"addr": target}
            if pod_port is not None:
                dnat["port"] = pod_port
            expr.append({"dnat": dnat})
            bodies.append(expr)
    fingerprint = hashlib.sha256(json.dumps([target, bodies], sort_keys=True).encode()).hexdigest()[:12]
    comment = f"{vm_id} {fingerprint}"
    return [{"family": family, "table": TABLE, "chain": PORTS_CHAIN, "expr": body, "comment": comment} for body in bodies]


# The jump rules carry this comment; a table whose jumps lack it has the older shape (no loopback in output): rewritten.
BASE_COMMENT = "hyper-pods base 2"


def base_commands(family: str = FAMILY) -> list[dict[str, Any]]:
    """Create the table and chains if missing, and (re)write the two jump rules (idempotent).

    ``prerouting`` never jumps for loopback (such packets from outside are martians); ``output`` does:
    the host's own ``127.0.0.1:PORT`` reaches the pod (network/localnet.py; IPv4 only).
    """
    local = {"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}}
    loopback: Any = "::1" if family == families.IPV6 else {"prefix": {"addr": "127.0.0.0", "len": 8}}
    not_loopback = {"match": {"op": "!=", "left": {"payload": {"protocol": family, "field": "daddr"}}, "right": loopback}}
    commands: list[dict[str, Any]] = [{"add": {"table": {"family": family, "name": TABLE}}}]
    commands.append({"add": {"chain": {"family": family, "table": TABLE, "name": PORTS_CHAIN}}})
    for name, hook in BASE_CHAINS.items():
        chain = {"family": family, "table": TABLE, "name": name, "type": "nat", "hook": hook, "prio": -100, "policy": "accept"}
        expr = [local, not_loopback] if hook == "prerouting" or family == families.IPV6 else [local]
        rule = {"family": family, "table": TABLE, "chain": name, "expr": [*expr, {"jump": {"target": PORTS_CHAIN}}], "comment": BASE_COMMENT}
        commands.append({"add": {"chain": chain}})
        commands.append({"flush": {"chain": {"family": family, "table": TABLE, "name": name}}})
        commands.append({"add": {"rule": rule}})
    return commands


def nat_rule(network: str, subnet: str) -> dict[str, Any]:
    """Masquerade what leaves ``subnet`` for elsewhere (what libvirt's "nat" mode would do), commented ``nat <network> <subnet>``."""
    net = ipaddress.IPv4Network(subnet)
    prefix = {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}
    saddr = {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": prefix}}
    daddr = {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": prefix}}
    return {"family": FAMILY, "table": TABLE, "chain": NAT_CHAIN, "expr": [saddr, daddr, {"masquerade": None}], "comment": f"nat {network} {net}"}


def nat_commands(listing: Mapping[str, Any], network: str, subnet: str) -> list[dict[str, Any]]:
    """The commands that give ``network`` exactly one masquerade rule for ``subnet``; [] when it has it."""
    want = nat_rule(network, subnet)
    mine = []
    has_chain = False
    for item in listing.get("nftables") or []:
        if isinstance(item, Mapping) and isinstance(item.get("chain"), Mapping) and item["chain"].get("name") == NAT_CHAIN:
            has_chain = True
        rule = item.get("rule") if isinstance(item, Mapping) else None
        if isinstance(rule, Mapping) and rule.get("chain") == NAT_CHAIN:
            match = _NAT_COMMENT.fullmatch(str(rule.get("comment") or ""))
            if match and match.group(1) == network and isinstance(rule.get("handle"), int):
                mine.append((rule["handle"], str(rule.get("comment"))))
    if has_chain and len(mine) == 1 and mine[0][1] == want["comment"]:
        return []
    chain = {"family": FAMILY, "table": TABLE, "name": NAT_CHAIN, "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}
    commands: list[dict[str, Any]] = [{"add": {"table": {"family": FAMILY, "name": TABLE}}}, {"add": {"chain": chain}}]
    commands += [{"delete": {"rule": {"family": FAMILY, "table": TABLE, "chain": NAT_CHAIN, "handle": handle}}} for handle, _comment in mine]
    commands.append({"add": {"rule": want}})
    return commands


@dataclass(frozen=True)
class ExistingRule:
    handle: int
    vm_id: str
    fingerprint: str


def parse_chain(listing: Mapping[str, Any]) -> list[ExistingRule]:
    """Our rules in ``nft -j -a list chain`` output: only their handle and comment are read."""
    rules = []
    for item in listing.get("nftables") or []:
        rule = item.get("rule") if isinstance(item, Mapping) else None
        if not isinstance(rule, Mapping):
            continue
        match = _COMMENT.fullmatch(str(rule.get("comment") or ""))
        if match and isinstance(rule.get("handle"), int):
            rules.append(ExistingRule(rule["handle"], match.group(1), match.group(2)))
    return rules


def sync_commands(
    existing: Sequence[ExistingRule], vm_id: str, desired: Sequence[Mapping[str, Any]], live_vms: Optional[set[str]] = None, family: str = FAMILY
) -> list[dict[str, Any]]:
    """The commands that make the pod's rules ``desired`` (and drop rules of VMs not in ``live_vms``); [] when in step."""
    mine = [r for r in existing if r.vm_id == vm_id]
    stale = [r for r in existing if live_vms is not None and r.vm_id != vm_id and r.vm_id not in live_vms]
    want = {str(rule["comment"]).split(" ")[1] for rule in desired}
    in_step = len(mine) == len(desired) and all(r.fingerprint in want for r in mine)
    commands: list[dict[str, Any]] = []
    for rule in stale + ([] if in_step else mine):
        commands.append({"delete": {"rule": {"family": family, "table": TABLE, "chain": PORTS_CHAIN, "handle": rule.handle}}})
    if not in_step:
        commands += [{"add": {"rule": dict(rule)}} for rule in desired]
    return commands


@dataclass
class NftPorts:
    """The host's port rules through the ``nft`` command (JSON in and out); ``family`` ``ip6`` for the IPv6 table."""

    runner: Runner = run
    family: str = FAMILY

    def _nft(self, *args: str, stdin: Optional[str] = None) -> str:
        argv = [NFT, "-j", *args]
        try:
            if stdin is None:
                return self.runner(argv, timeout=NFT_TIMEOUT).stdout
            return _run_stdin(argv, stdin)
        except CommandFailed as err:
            raise PortsError(f"nftables: {err.message} (is the nftables package installed, and are we root?)", err.details) from None

    def _apply(self, commands: Sequence[Mapping[str, Any]]) -> None:
        if commands:
            self._nft("-f", "-", stdin=json.dumps({"nftables": [{"metainfo": {"json_schema_version": 1}}, *commands]}))

    def _rules(self) -> list[ExistingRule]:
        try:
            listing = json.loads(self._nft("-a", "list", "chain", self.family, TABLE, PORTS_CHAIN))
        except PortsError:
            return []  # no table yet
        return parse_chain(listing)

    def _base_ok(self) -> bool:
        try:
            listing = json.loads(self._nft("list", "table", self.family, TABLE))
        except PortsError:
            return False
        items = [item for item in listing.get("nftables") or [] if isinstance(item, Mapping)]
        chains = {item["chain"].get("name") for item in items if isinstance(item.get("chain"), Mapping)}
        rules = [item["rule"] for item in items if isinstance(item.get("rule"), Mapping)]
        jumps = {rule.get("chain") for rule in rules if rule.get("comment") == BASE_COMMENT}
        return chains >= {PORTS_CHAIN, *BASE_CHAINS} and jumps >= set(BASE_CHAINS)

    def sync(self, vm_id: str, address: Optional[str], ports: Sequence[StoredPort], live_vms: Optional[Callable[[], set[str]]] = None) -> bool:
        """Make the pod's rules match ``ports`` (none when ``address`` is None); True when something changed.

        ``live_vms`` (asked after the rules are read, so a pod created meanwhile is not taken for
        gone) names the VMs that exist: rules of other VMs are removed.
        """
        desired = pod_rules(vm_id, address, ports, self.family) if ports and address else []
        changed = False
        if desired and not self._base_ok():
            self._apply(base_commands(self.family))
            changed = True
        own = 0
        for attempt in (1, 2):
            existing = self._rules()
            commands = sync_commands(existing, vm_id, desired, live_vms() if live_vms is not None else None, self.family)
            # Removing another VM's leftovers is housekeeping, not a change of this pod.
            own = len(commands) - sum(1 for r in existing if r.vm_id != vm_id and _is_deleted(r, commands))
            try:
                self._apply(commands)
                break
            except PortsError:
                if attempt == 2:
                    raise
                # Another run changed the chain between our read and our write (a handle went): read again.
        return changed or own > 0

    def ensure_nat(self, network: str, subnet: str) -> bool:
        """Masquerade ``subnet`` of ``network`` (one rule, idempotent); True when the rule was (re)written."""
        try:
            listing = json.loads(self._nft("-a", "list", "table", FAMILY, TABLE))
        except PortsError:
            listing = {}
        commands = nat_commands(listing, network, subnet)
        self._apply(commands)
        return bool(commands)

    def ensure_localnet(self, bridge: str) -> bool:
        """``127.0.0.1`` of the host reaches the pods of ``bridge``: guard and masquerade rules, then route_localnet (network/localnet.py)."""
        try:
            listing = json.loads(self._nft("-a", "list", "table", FAMILY, TABLE))
        except PortsError:
            listing = {}
        commands = localnet.localnet_commands(listing, bridge)
        self._apply(commands)  # the guard first: route_localnet is never on without it
        return localnet.ensure_route_localnet(bridge) or bool(commands)

    def remove(self, vm_id: str) -> bool:
        """Remove the pod's rules; True when there were any."""
        commands = sync_commands(self._rules(), vm_id, [], None, self.family)
        self._apply(commands)
        return bool(commands)

    def vm_ids(self) -> set[str]:
        """The VM ids that have rules (tests use it to check that nothing is left)."""
        return {rule.vm_id for rule in self._rules()}


def _is_deleted(rule: ExistingRule, commands: Sequence[Mapping[str, Any]]) -> bool:
    return any(c.get("delete", {}).get("rule", {}).get("handle") == rule.handle for c in commands)


def _run_stdin(argv: Sequence[str], stdin: str) -> str:
    """``run`` has no stdin; nft reads its JSON transaction from one."""
    import subprocess  # pylint: disable=import-outside-toplevel

    try:
        proc = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=NFT_TIMEOUT, check=False)
    except FileNotFoundError:
        raise CommandFailed(argv, None, "", "", "not found: install nftables on the host (see bindep.txt)") from None
    except subprocess.TimeoutExpired:
        raise CommandFailed(argv, None, "", "", f"timed out after {NFT_TIMEOUT:g} s") from None
    if proc.returncode != 0:
        raise CommandFailed(argv, proc.returncode, proc.stdout, proc.stderr, f"exited with {proc.returncode}")
    return proc.stdout
