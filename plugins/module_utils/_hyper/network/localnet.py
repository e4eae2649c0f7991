# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""``curl 127.0.0.1:PORT`` on the host reaches a pod: route_localnet on the pod's bridge, narrowly.

A connection from the host to ``127.0.0.1:PORT`` is rewritten by the ``output`` chain to the pod's
address; it still has the source ``127.0.0.1``, which Linux refuses to route out of ``lo`` unless
``net.ipv4.conf.<bridge>.route_localnet`` is 1 on the interface it leaves by. Three rules make that
safe, all in the table ``ip hyper_pods``, all commented ``localnet <bridge>``:

- ``postrouting``: ``oifname <bridge> ip saddr 127.0.0.0/8 masquerade`` (the pod sees the bridge's
  address and answers there; conntrack turns the answer back into ``127.0.0.1``);
- ``localnet_guard`` (filter, prerouting, priority raw, before conntrack and NAT):
  ``iifname <bridge> ip daddr 127.0.0.0/8 drop`` and ``... ip saddr 127.0.0.0/8 drop``. route_localnet
  would otherwise let a guest send packets *to* the host's loopback services (what kube-proxy's
  CVE-2020-8558 was); the answers to the host's own connections arrive addressed to the bridge's
  address (they are un-NATed later), so they pass.

The sysctl is set only on the bridges of networks whose pods map a port on loopback, only after the
guard is in place, and never on ``all``/``default``; it is left set when pods go (other pods of the
network may map such ports), and the guard stays with it.
"""

from __future__ import annotations

import os
import re
from typing import Any, Callable, Mapping, Optional

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError

TABLE = "hyper_pods"
FAMILY = "ip"
GUARD_CHAIN = "localnet_guard"
NAT_CHAIN = "postrouting"
GUARD_PRIORITY = -300  # raw: before conntrack (-200) and before any NAT
# Linux interface names: at most 15 bytes, no '/', no whitespace; libvirt's bridge names are tamer still.
BRIDGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")
SYSCTL = "/proc/sys/net/ipv4/conf/{}/route_localnet"
_LOOPBACK = {"prefix": {"addr": "127.0.0.0", "len": 8}}


class LocalnetError(HyperError):
    """route_localnet could not be set on a pod network's bridge."""


def check_bridge(bridge: object) -> str:
    if not isinstance(bridge, str) or not BRIDGE.fullmatch(bridge) or bridge in (".", ".."):
        raise LocalnetError(f"refusing the bridge name {bridge!r} (libvirt network XML): not an interface name")
    return bridge


def comment(bridge: str) -> str:
    return f"localnet {bridge}"


def _match(field: str, key: str, right: Any, op: str = "==") -> dict[str, Any]:
    left: dict[str, Any] = {"meta": {"key": key}} if field == "meta" else {"payload": {"protocol": "ip", "field": key}}
    return {"match": {"op": op, "left": left, "right": right}}


def localnet_rules(bridge: str) -> list[dict[str, Any]]:
    """The three rules of ``bridge`` (JSON ``rule`` objects): two guards, one masquerade."""
    bridge = check_bridge(bridge)
    note = comment(bridge)
    rules = [
        {"chain": GUARD_CHAIN, "expr": [_match("meta", "iifname", bridge), _match("ip", "daddr", _LOOPBACK), {"drop": None}]},
        {"chain": GUARD_CHAIN, "expr": [_match("meta", "iifname", bridge), _match("ip", "saddr", _LOOPBACK), {"drop": None}]},
        {"chain": NAT_CHAIN, "expr": [_match("meta", "oifname", bridge), _match("ip", "saddr", _LOOPBACK), {"masquerade": None}]},
    ]
    return [{"family": FAMILY, "table": TABLE, **rule, "comment": note} for rule in rules]


def localnet_commands(listing: Mapping[str, Any], bridge: str) -> list[dict[str, Any]]:
    """The commands that give ``bridge`` exactly its three rules (``nft -j -a list table`` in ``listing``); [] when it has them."""
    want = localnet_rules(bridge)
    note = comment(bridge)
    chains: set[str] = set()
    mine: list[tuple[int, str]] = []
    for item in listing.get("nftables") or []:
        if not isinstance(item, Mapping):
            continue
        chain = item.get("chain")
        if isinstance(chain, Mapping) and isinstance(chain.get("name"), str):
            chains.add(chain["name"])
        rule = item.get("rule")
        if isinstance(rule, Mapping) and rule.get("comment") == note and isinstance(rule.get("handle"), int):
            mine.append((rule["handle"], str(rule.get("chain"))))
    in_step = {GUARD_CHAIN, NAT_CHAIN} <= chains and sorted(c for _h, c in mine) == sorted(r["chain"] for r in want)
    if in_step:
        return []
    guard = {"family": FAMILY, "table": TABLE, "name": GUARD_CHAIN, "type": "filter", "hook": "prerouting", "prio": GUARD_PRIORITY, "policy": "accept"}
    nat = {"family": FAMILY, "table": TABLE, "name": NAT_CHAIN, "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}
    commands: list[dict[str, Any]] = [{"add": {"table": {"family": FAMILY, "name": TABLE}}}, {"add": {"chain": guard}}, {"add": {"chain": nat}}]
    commands += [{"delete": {"rule": {"family": FAMILY, "table": TABLE, "chain": chain, "handle": handle}}} for handle, chain in mine]
    commands += [{"add": {"rule": rule}} for rule in want]
    return commands


def read_sysctl(path: str) -> Optional[str]:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read(16).strip()
    except OSError:
        return None


def write_sysctl(path: str, value: str) -> None:
    # /proc/sys is the kernel's; O_NOFOLLOW all the same, and never create anything.
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode("ascii"))
    finally:
        os.close(fd)


def ensure_route_localnet(
    bridge: str,
    reader: Optional[Callable[[str], Optional[str]]] = None,
    writer: Optional[Callable[[str, str], None]] = None,
) -> bool:
    """Set ``net.ipv4.conf.<bridge>.route_localnet=1`` (the guard rules must be in already); True when it was 0."""
    path = SYSCTL.format(check_bridge(bridge))
    if (reader or read_sysctl)(path) == "1":
        return False
    try:
        (writer or write_sysctl)(path, "1")
    except OSError as err:
        raise LocalnetError(
            f"cannot set net.ipv4.conf.{bridge}.route_localnet=1 ({path}: {err.strerror}); without it 127.0.0.1 does not reach the pods of that bridge "
            "(the host's other addresses do); are we root, and is the network active?"
        ) from None
    return True
