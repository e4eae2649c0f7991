# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""The address a pod's port rules point to, from host-side truth only.

Root in a guest can give its interface any address and make its agent report anything, so the
host never asks the guest where to forward a published port. The address is the pod's static
address from its stored spec or, for DHCP, the lease libvirt's network (its dnsmasq) holds for
the MAC the host gave the pod's first interface. Whatever the source, the address must be a
host address of that network's subnet (``check_target``): a lease or a stored spec that says
otherwise is refused, never forwarded to.
"""

from __future__ import annotations

import ipaddress
import time
from typing import Any, Callable, Optional, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredNetwork
from ansible_collections.hyper.pods.plugins.module_utils._hyper.waiter import Sleep

# The guest's udhcpc has its lease before the containers start; dnsmasq's lease file is written at once.
LEASE_WAIT = 10.0
LEASE_POLL = 0.5
_LEASE_TYPE_IPV4 = 0  # VIR_IP_ADDR_TYPE_IPV4


class AddressError(HyperError):
    """No trustworthy address to forward a pod's ports to."""


def check_target(address: str, subnet: Optional[ipaddress.IPv4Network], what: str) -> ipaddress.IPv4Address:
    """``address`` as a DNAT target: a private unicast IPv4 host address inside ``subnet`` (when known)."""
    try:
        ip = ipaddress.IPv4Interface(address).ip if "/" in address else ipaddress.IPv4Address(address)
    except (ValueError, TypeError):
        raise AddressError(f"{what}: {address!r} is not an IPv4 address; no port rule points to it") from None
    if not ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        raise AddressError(f"{what}: {ip} is not a private unicast address; no port rule points to it")
    if subnet is not None and (ip not in subnet or ip in (subnet.network_address, subnet.broadcast_address)):
        raise AddressError(f"{what}: {ip} is not a host address of the network's subnet {subnet}; no port rule points to it")
    return ip


def lease_address(leases: Sequence[Any], mac: str, subnet: Optional[ipaddress.IPv4Network], what: str) -> Optional[ipaddress.IPv4Address]:
    """The IPv4 address of the newest lease for ``mac`` among libvirt's ``leases``; None when there is none.

    A lease for another MAC, of another family, or malformed is skipped; an IPv4 lease outside the
    subnet is an AddressError (the lease file is the host's, but checked all the same).
    """
    best: Optional[tuple[int, str]] = None
    for lease in leases:
        if not isinstance(lease, dict) or not isinstance(lease.get("mac"), str) or lease["mac"].lower() != mac.lower():
            continue
        if lease.get("type") != _LEASE_TYPE_IPV4 or not isinstance(lease.get("ipaddr"), str):
            continue
        expiry = lease.get("expirytime")
        expiry = expiry if isinstance(expiry, int) and not isinstance(expiry, bool) else 0
        if best is None or expiry > best[0]:
            best = (expiry, lease["ipaddr"])
    return None if best is None else check_target(best[1], subnet, what)


def target_address(
    vm_id: str,
    network: StoredNetwork,
    mac: str,
    subnet: Optional[ipaddress.IPv4Network],
    leases: Callable[[str, str], Sequence[Any]],
    what: str,
    wait: float = LEASE_WAIT,
    sleep: Sleep = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> ipaddress.IPv4Address:
    """Where the pod's published ports go: its static address, or the lease of ``mac`` on ``network`` (waited for briefly)."""
    if network.address:
        return check_target(network.address, subnet, f"{what}: the static address on network {network.name}")
    end = clock() + wait
    while True:
        found = lease_address(leases(network.name, mac), mac, subnet, f"{what}: the DHCP lease of {mac} on network {network.name}")
        if found is not None:
            return found
        if clock() >= end:
            raise AddressError(
                f"{what}: network {network.name} holds no DHCP lease for the pod's interface {mac} (VM {vm_id}), so its ports "
                "are not mapped; see virsh net-dhcp-leases " + network.name
            )
        sleep(LEASE_POLL)
