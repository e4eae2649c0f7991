# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""Port mappings by address family (pure): which host addresses a mapping answers on, and the pod's IPv6 target.

- ``host_ip`` left out: every IPv4 address of the host, ``127.0.0.1`` included (network/localnet.py),
  and every IPv6 address when the pod's first network has an IPv6 subnet;
- an IPv4 address (loopback ones included): that address only;
- ``::``: every IPv6 address of the host; an IPv6 address: that one. ``::1`` is refused: Linux has no
  IPv6 counterpart of ``route_localnet``, so a packet from ``::1`` is never routed out of ``lo`` (measured:
  the output hook rewrites it and the kernel discards it, ``Ip6OutDiscards``).

The IPv6 target of a pod is host truth, as its IPv4 one is (network/leases.py): the SLAAC address
(EUI-64) of the MAC the host gave the pod's first interface, in the /64 prefix of that network.
What the guest reports is never asked.
"""

from __future__ import annotations

import ipaddress
from typing import Optional

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.network.leases import AddressError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredPort

IPV4 = "ip"
IPV6 = "ip6"
ALL_IPV6 = "::"
LOOPBACK4 = ipaddress.IPv4Network("127.0.0.0/8")


def parse_host_ip(value: object, option: str) -> Optional[str]:
    """``host_ip`` as stored: None for all IPv4 addresses (``0.0.0.0`` too), ``::`` for all IPv6 ones, else the address."""
    if value is None:
        return None
    if not isinstance(value, str) or "%" in value or not value.isprintable():
        raise SpecError(option, value, "must be an IPv4 or IPv6 address of this host (without a zone id), or left out: all of them")
    try:
        parsed = ipaddress.ip_address(value)
    except ValueError:
        raise SpecError(option, value, "must be an IPv4 or IPv6 address of this host (or left out: all of them)") from None
    if isinstance(parsed, ipaddress.IPv4Address):
        return None if parsed.is_unspecified else str(parsed)
    if parsed.ipv4_mapped is not None:
        raise SpecError(option, value, f"is an IPv4-mapped IPv6 address: write {parsed.ipv4_mapped} instead")
    if parsed.is_loopback:
        raise SpecError(
            option, value, "IPv6 loopback cannot be forwarded to a pod (Linux has no route_localnet for IPv6): use 127.0.0.1 or an IPv6 address of the host"
        )
    if parsed.is_multicast:
        raise SpecError(option, value, "is a multicast address, not an address of this host")
    return ALL_IPV6 if parsed.is_unspecified else str(parsed)


def family_of(host_ip: Optional[str]) -> Optional[str]:
    """``ip`` or ``ip6`` for a stored ``host_ip``; None when it is left out (both families)."""
    if host_ip is None:
        return None
    return IPV6 if ":" in host_ip else IPV4


def in_family(mapping: StoredPort, family: str) -> bool:
    """The mapping answers on addresses of ``family`` (left out: on both)."""
    own = family_of(mapping.host_ip)
    return own is None or own == family


def explicit_ipv6(mapping: StoredPort) -> bool:
    """The user asked for IPv6 (``::`` or an IPv6 address): the pod's network must have an IPv6 subnet."""
    return family_of(mapping.host_ip) == IPV6


def covers_loopback(mapping: StoredPort) -> bool:
    """The mapping answers on ``127.0.0.1`` (left out, or a loopback address): the bridge needs route_localnet."""
    if mapping.host_ip is None:
        return True
    try:
        return family_of(mapping.host_ip) == IPV4 and ipaddress.IPv4Address(mapping.host_ip) in LOOPBACK4
    except ValueError:  # a stored spec edited by hand: its rule fails in nft, with a message, not here
        return False


def same_addresses(a: Optional[str], b: Optional[str]) -> bool:
    """Two mappings' ``host_ip`` can take the same host address (left out or ``::`` cover many)."""
    if a is None or b is None or a == b:
        return True
    fa, fb = family_of(a), family_of(b)
    if fa != fb:
        return False
    return fa == IPV6 and ALL_IPV6 in (a, b)


def eui64(mac: str, subnet: ipaddress.IPv6Network) -> ipaddress.IPv6Address:
    """The SLAAC (EUI-64) address of ``mac`` in the /64 ``subnet``: what a Linux guest takes by default."""
    if subnet.prefixlen != 64:
        raise AddressError(f"IPv6 subnet {subnet}: port mappings need a /64 (SLAAC), not /{subnet.prefixlen}")
    octets = [int(part, 16) for part in mac.split(":")]
    if len(octets) != 6 or not all(0 <= o <= 255 for o in octets):
        raise AddressError(f"{mac!r} is not a MAC address")
    octets[0] ^= 0x02
    iid = bytes([*octets[:3], 0xFF, 0xFE, *octets[3:]])
    return ipaddress.IPv6Address(int(subnet.network_address) | int.from_bytes(iid, "big"))


def check_target6(address: str, subnet: Optional[ipaddress.IPv6Network], what: str) -> ipaddress.IPv6Address:
    """``address`` as an IPv6 DNAT target: a unicast, non-loopback address inside ``subnet`` (when known)."""
    try:
        ip = ipaddress.IPv6Address(address)
    except (ValueError, TypeError):
        raise AddressError(f"{what}: {address!r} is not an IPv6 address; no port rule points to it") from None
    if ip.is_loopback or ip.is_multicast or ip.is_unspecified or ip.is_link_local or ip.ipv4_mapped is not None:
        raise AddressError(f"{what}: {ip} is not a unicast address of a pod; no port rule points to it")
    if subnet is not None and ip not in subnet:
        raise AddressError(f"{what}: {ip} is not in the network's IPv6 subnet {subnet}; no port rule points to it")
    return ip
