# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""A pod's networks and DNS: options checked (pure), libvirt networks read, the guest's interfaces brought up.

A pod joins libvirt networks (default: the collection's, ``hyper``) with one virtio-net interface
each. The MAC address is derived from the VM id, so the host knows it without reading libvirt's XML
back. At every boot the host writes one constant shell script into the guest (``/run/hyper/net``)
and runs it once through the agent with an argv of checked values: it finds each interface by its
MAC, brings it up and configures it (``udhcpc`` against libvirt's dnsmasq, or a static address).
Nothing of this is in the guest image, so any image with busybox ``ip`` and ``udhcpc`` works.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import AgentError, HyperError, LibvirtFailure, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest import layout
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import GuestAgent
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.scripts import net_up
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredDns, StoredNetwork, StoredPod

DEFAULT_NETWORK = "hyper"
NONE = "none"
# libvirt network names: we accept a conservative subset (no '/', no spaces, no leading '-').
NETWORK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
NETWORK_KEYS = ("name", "address")
MAX_NETWORKS = 4
MAX_DNS = 3  # glibc and musl read at most three nameservers
MAX_SEARCH = 6
DNS_SEARCH = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$")
DNS_OPTION = re.compile(r"^[a-z][a-z0-9-]*(:[0-9]{1,4})?$")
NAT_NS = "https://hyper.pods/xmlns/network/1"
MAC_PREFIX = "52:54:00"  # QEMU's locally administered range, as libvirt uses
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")

GUEST_NET_DIR = layout.NET_DIR
GUEST_UP_SCRIPT = f"{GUEST_NET_DIR}/up.sh"
# DHCP: 10 discovers 1 s apart; libvirt's dnsmasq answers at once, so this only matters when it is down.
UP_TIMEOUT = 30.0
RESOLV_CONF = "upper/etc/resolv.conf"

# The script (guest/scripts/net_up.py): constant, its arguments checked MACs and addresses.
UP_SCRIPT = net_up.SCRIPT


# -- options (pure) -------------------------------------------------------------------------


def normalise_networks(value: object) -> list[dict[str, Any]]:
    """``networks`` → stored form ``[{"name", "address"}]``; ``none`` (alone) → ``[]``; None → the default network."""
    if value is None:
        return [{"name": DEFAULT_NETWORK, "address": None}]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise SpecError("networks", value, "must be a list of network names or {name, address} mappings, or none")
    if list(value) == [NONE]:
        return []
    if len(value) > MAX_NETWORKS:
        raise SpecError("networks", value, f"at most {MAX_NETWORKS} networks")
    out: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        where = f"networks[{index}]"
        entry = {"name": item} if isinstance(item, str) else item
        if not isinstance(entry, Mapping):
            raise SpecError(where, item, "must be a network name or a mapping with name and optionally address")
        unknown = sorted(set(entry) - set(NETWORK_KEYS))
        if unknown:
            raise SpecError(where, unknown, f"unknown keys; known: {', '.join(NETWORK_KEYS)}")
        name = entry.get("name")
        if name == NONE:
            raise SpecError(f"{where}.name", name, "none isolates the pod and cannot be combined with other networks")
        if not isinstance(name, str) or not NETWORK_NAME.fullmatch(name):
            raise SpecError(f"{where}.name", name, "must be a libvirt network name: letters, digits, '_', '.', '-', starting with a letter or digit")
        if any(n["name"] == name for n in out):
            raise SpecError(f"{where}.name", name, "is listed twice; a pod joins a network once")
        address = entry.get("address")
        out.append({"name": name, "address": None if address is None else str(check_address(address, f"{where}.address"))})
    return out


def check_address(value: object, option: str) -> ipaddress.IPv4Interface | ipaddress.IPv4Address:
    """An IPv4 address with or without a prefix length (``10.88.0.10`` or ``10.88.0.10/24``)."""
    if not isinstance(value, str) or not value:
        raise SpecError(option, value, "must be an IPv4 address such as 10.88.0.10 or 10.88.0.10/24")
    try:
        if "/" in value:
            iface = ipaddress.IPv4Interface(value)
            if iface.network.prefixlen > 30 or iface.network.prefixlen < 8:
                raise SpecError(option, value, "prefix length must be between 8 and 30")
            return iface
        return ipaddress.IPv4Address(value)
    except ValueError as err:
        raise SpecError(option, value, f"is not an IPv4 address ({err})") from None


def normalise_dns(params: Mapping[str, Any]) -> dict[str, list[str]]:
    """``dns``, ``dns_search``, ``dns_options`` → ``{"servers", "search", "options"}`` (empty lists when unset)."""
    servers: list[str] = []
    for index, server in enumerate(_str_list(params.get("dns"), "dns")):
        # No IPv6 zone id (fe80::1%eth0): it may hold any character, a line break among them, and
        # resolv.conf has no use for it; no whitespace either.
        if "%" in server or any(c.isspace() for c in server) or not server.isprintable():
            raise SpecError(f"dns[{index}]", server, "must be an IPv4 or IPv6 address, without a zone id (%...) or spaces")
        try:
            servers.append(str(ipaddress.ip_address(server)))
        except ValueError:
            raise SpecError(f"dns[{index}]", server, "must be an IPv4 or IPv6 address") from None
    if len(servers) > MAX_DNS:
        raise SpecError("dns", servers, f"at most {MAX_DNS} name servers (the resolver ignores the rest)")
    search = _str_list(params.get("dns_search"), "dns_search")
    for index, domain in enumerate(search):
        if not DNS_SEARCH.fullmatch(domain):
            raise SpecError(f"dns_search[{index}]", domain, "must be a DNS domain name")
    if len(search) > MAX_SEARCH:
        raise SpecError("dns_search", search, f"at most {MAX_SEARCH} search domains")
    options = _str_list(params.get("dns_options"), "dns_options")
    for index, option in enumerate(options):
        if not DNS_OPTION.fullmatch(option):
            raise SpecError(f"dns_options[{index}]", option, "must be a resolv.conf option such as ndots:2 or edns0")
    return {"servers": servers, "search": search, "options": options}


def _str_list(value: object, option: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise SpecError(option, value, "must be a list of strings")
    return list(value)


def render_resolv_conf(dns: StoredDns, default_servers: Sequence[str]) -> str:
    """The containers' resolv.conf: the pod's ``dns`` or else the network's resolver, search and options."""
    lines = ["# written by hyper.pods"]
    lines += [f"nameserver {server}" for server in (dns.servers or default_servers)]
    if dns.search:
        lines.append("search " + " ".join(dns.search))
    if dns.options:
        lines.append("options " + " ".join(dns.options))
    # Defence in depth (the stored spec is checked when read, and a metadata edit could bypass it): one value, one line.
    for line in lines:
        if not line.isprintable():
            raise HyperError(f"resolv.conf: refusing a line with a line break or control character: {line!r}")
    return "\n".join(lines) + "\n"


def guest_mac(vm_id: str, index: int) -> str:
    """The MAC of interface ``index`` of VM ``vm_id``: stable for the VM, different between VMs."""
    digest = hashlib.sha256(f"{vm_id}/{index}".encode()).digest()
    return MAC_PREFIX + "".join(f":{b:02x}" for b in digest[:3])


# -- libvirt networks -----------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkInfo:
    """What a pod needs of a libvirt network: its IPv4 side (gateway = the host's address, dnsmasq's)."""

    name: str
    active: bool
    bridge: Optional[str]
    gateway: Optional[ipaddress.IPv4Interface]
    dhcp_ranges: tuple[tuple[ipaddress.IPv4Address, ipaddress.IPv4Address], ...] = ()
    # The network's metadata asks the collection to masquerade its subnet (the host role's network).
    masquerade: bool = False
    # Its first IPv6 <ip> (a /64 for SLAAC): IPv6 port mappings go to the pod's EUI-64 address in it.
    subnet6: Optional[ipaddress.IPv6Network] = None

    @property
    def subnet(self) -> Optional[ipaddress.IPv4Network]:
        return self.gateway.network if self.gateway else None


def parse_network_xml(name: str, xml: str, active: bool) -> NetworkInfo:
    """A NetworkInfo from libvirt's network XML (first IPv4 ``<ip>``; ranges of its ``<dhcp>``)."""
    root = ET.fromstring(xml)
    bridge = root.find("bridge")
    gateway = None
    ranges = []
    subnet6 = None
    for ip in root.findall("ip"):
        if ip.get("family") == "ipv6" and ip.get("address"):
            subnet6 = ipaddress.IPv6Interface(f"{ip.get('address')}/{ip.get('prefix') or '64'}").network
            break
    for ip in root.findall("ip"):
        if ip.get("family", "ipv4") != "ipv4" or not ip.get("address"):
            continue
        prefix = ip.get("prefix") or ip.get("netmask") or "24"
        gateway = ipaddress.IPv4Interface(f"{ip.get('address')}/{prefix}")
        for rng in ip.findall("dhcp/range"):
            ranges.append((ipaddress.IPv4Address(rng.get("start", "")), ipaddress.IPv4Address(rng.get("end", ""))))
        break
    marker = root.find(f"metadata/{{{NAT_NS}}}nat")
    masquerade = marker is not None and (marker.text or "").strip() == "masquerade"
    return NetworkInfo(name, active, bridge.get("name") if bridge is not None else None, gateway, tuple(ranges), masquerade, subnet6)


def lookup_network(conn: Any, name: str) -> Optional[NetworkInfo]:
    """The libvirt network ``name`` on connection ``conn`` (a libvirt virConnect), or None when there is none."""
    import libvirt  # pylint: disable=import-outside-toplevel

    try:
        net = conn.networkLookupByName(name)
        return parse_network_xml(name, net.XMLDesc(0), bool(net.isActive()))
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
            return None
        raise LibvirtFailure(f"cannot read libvirt network {name}: {err.get_error_message() or err}") from None


def resolve_networks(
    networks: Sequence[StoredNetwork],
    infos: Mapping[str, Optional[NetworkInfo]],
    taken: Mapping[tuple[str, str], str],
) -> list[StoredNetwork]:
    """Check the pod's networks against libvirt's (pure): each exists; each static address fits its subnet.

    ``infos``: network name → NetworkInfo (None: no such network). ``taken``: (network, address) →
    the other pod that has that static address. Returns the networks with ``address`` as ADDRESS/PREFIX.
    """
    out = []
    for index, network in enumerate(networks):
        name = network.name
        info = infos.get(name)
        if info is None:
            raise SpecError(f"networks[{index}].name", name, "no such libvirt network (see virsh net-list --all; the hyper.pods.host role creates 'hyper')")
        address = network.address
        if address is None:
            out.append(StoredNetwork(name, None))
            continue
        subnet = info.subnet
        if subnet is None:
            raise SpecError(f"networks[{index}].address", address, f"network {name} has no IPv4 subnet to put a static address in")
        parsed = check_address(address, f"networks[{index}].address")
        ip = parsed.ip if isinstance(parsed, ipaddress.IPv4Interface) else parsed
        if isinstance(parsed, ipaddress.IPv4Interface) and parsed.network != subnet:
            raise SpecError(f"networks[{index}].address", address, f"is not in network {name}'s subnet {subnet}")
        if ip not in subnet or ip in (subnet.network_address, subnet.broadcast_address):
            raise SpecError(f"networks[{index}].address", address, f"must be a host address of network {name}'s subnet {subnet}")
        if info.gateway is not None and ip == info.gateway.ip:
            raise SpecError(f"networks[{index}].address", address, f"is the host's own address on network {name}")
        for start, end in info.dhcp_ranges:
            if start <= ip <= end:
                raise SpecError(f"networks[{index}].address", address, f"is inside network {name}'s DHCP range {start}-{end}; pick one outside it")
        other = taken.get((name, str(ip)))
        if other is not None:
            raise SpecError(f"networks[{index}].address", address, f"is already the static address of pod {other} on network {name}")
        out.append(StoredNetwork(name, f"{ip}/{subnet.prefixlen}"))
    return out


def static_addresses(pods: Sequence[StoredPod]) -> dict[tuple[str, str], str]:
    """(network, address) → pod name, for the static addresses in these stored specs."""
    taken: dict[tuple[str, str], str] = {}
    for pod in pods:
        for network in pod.networks:
            if network.address:
                taken[(network.name, network.address.split("/", 1)[0])] = pod.name
    return taken


def _range_view(low: int, high: int) -> int | str:
    return low if low == high else f"{low}-{high}"


def network_view(pod: StoredPod) -> dict[str, Any]:
    """The networking part of the ``pod`` result from a stored spec (``addresses`` empty: the guest fills it)."""
    ports = []
    for mapping in pod.ports:
        host_port, pod_port = _range_view(*mapping.host_port), _range_view(*mapping.pod_port)
        ports.append({"host_ip": mapping.host_ip, "host_port": host_port, "pod_port": pod_port, "protocol": mapping.protocol})
    return {
        "networks": [n.to_json() for n in pod.networks],
        "ports": ports,
        "dns": list(pod.dns.servers),
        "dns_search": list(pod.dns.search),
        "dns_options": list(pod.dns.options),
        "addresses": [],
    }


def static_view(pod: StoredPod) -> list[dict[str, Any]]:
    """``addresses`` as far as the spec knows them (check mode): static ones, None for DHCP."""
    return [{"network": n.name, "interface": None, "mac": None, "address": n.address} for n in pod.networks]


# -- the guest ------------------------------------------------------------------------------


def up_argv(vm_id: str, networks: Sequence[StoredNetwork], infos: Mapping[str, Optional[NetworkInfo]]) -> list[str]:
    """The argv of the guest's up.sh: MAC MODE GATEWAY ROUTE per network; the first one carries the default route."""
    argv = ["/bin/sh", GUEST_UP_SCRIPT]
    for index, network in enumerate(networks):
        info = infos.get(network.name)
        gateway = str(info.gateway.ip) if info is not None and info.gateway is not None else "-"
        mac = guest_mac(vm_id, index)
        if not _MAC.fullmatch(mac):  # derived, never user text; checked all the same
            raise HyperError(f"invalid MAC {mac}")
        mode = str(check_address(network.address, "address")) if network.address else "dhcp"
        argv += [mac, mode, gateway, "1" if index == 0 else "0"]
    return argv


def bring_up(agent: GuestAgent, vm_id: str, networks: Sequence[StoredNetwork], infos: Mapping[str, Optional[NetworkInfo]]) -> None:
    """Write up.sh and run it once: every interface up and configured before the containers start."""
    if not networks:
        return
    result = agent.exec(["mkdir", "-p", GUEST_NET_DIR])
    if result.rc != 0:
        raise AgentError(f"{agent.name}: cannot create {GUEST_NET_DIR}: {result.stderr.decode('utf-8', 'replace').strip()}")
    agent.write_file(GUEST_UP_SCRIPT, UP_SCRIPT.encode("ascii"))
    result = agent.exec(up_argv(vm_id, networks, infos), timeout=UP_TIMEOUT)
    if result.rc != 0:
        names = ", ".join(n.name for n in networks)
        raise AgentError(f"{agent.name}: bringing up the interfaces on {names} failed: {result.stderr.decode('utf-8', 'replace').strip() or f'rc {result.rc}'}")


def write_resolv_confs(agent: GuestAgent, containers: Sequence[str], text: str) -> None:
    """Put resolv.conf in each container's writable layer (its overlay's upper directory), before its start."""
    if not containers:
        return
    dirs = [layout.container_file(name, f"{layout.UPPER}/etc") for name in containers]
    result = agent.exec(["mkdir", "-p", *dirs])
    if result.rc != 0:
        raise AgentError(f"{agent.name}: cannot create the containers' /etc: {result.stderr.decode('utf-8', 'replace').strip()}")
    for name in containers:
        agent.write_file(layout.container_file(name, RESOLV_CONF), text.encode("utf-8"))


def read_addresses(agent: GuestAgent, vm_id: str, networks: Sequence[StoredNetwork]) -> list[dict[str, Any]]:
    """``[{"network", "interface", "mac", "address"}]`` from the agent's guest-network-get-interfaces, in network order."""
    reply = agent.command("guest-network-get-interfaces")
    by_mac: dict[str, Mapping[str, Any]] = {}
    for iface in reply if isinstance(reply, list) else []:
        if isinstance(iface, Mapping) and isinstance(iface.get("hardware-address"), str):
            by_mac[iface["hardware-address"].lower()] = iface
    out = []
    for index, network in enumerate(networks):
        mac = guest_mac(vm_id, index)
        iface = by_mac.get(mac) or {}
        address = None
        for ip in iface.get("ip-addresses") or []:
            if isinstance(ip, Mapping) and ip.get("ip-address-type") == "ipv4":
                address = f"{ip.get('ip-address')}/{ip.get('prefix')}"
                break
        out.append({"network": network.name, "interface": iface.get("name"), "mac": mac, "address": address})
    return out
