# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""Service specs: the user's ``services`` checked and normalised, and merged with the pod's current ones.

Pure: no agent, no file. Used on the controller too (the hyper_service action plugin renders the
haproxy template from ``final_services``), so it imports nothing but the library's errors.

Every value that reaches the haproxy configuration is checked here: names match
``[a-z0-9][a-z0-9-]*``, addresses parse with ``ipaddress`` (and are written back in its canonical
form), ports and weights are integers, ``balance`` is one of three words. Nothing a user writes
can put a newline, a ``#`` or a space into the rendered configuration.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Mapping, Optional, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError

SERVICE_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
SERVICE_NAME_MAX = 63
PROTOCOLS = ("tcp",)
BALANCES = ("roundrobin", "leastconn", "source")
DEFAULT_BALANCE = "roundrobin"
DEFAULT_WEIGHT = 1
MAX_WEIGHT = 256
DEFAULT_CHECK_INTERVAL = 2000
MIN_CHECK_INTERVAL = 100
MAX_CHECK_INTERVAL = 3_600_000
STATES = ("present", "absent")
SERVICE_KEYS = ("name", "address", "port", "protocol", "backends", "balance", "check")
BACKEND_KEYS = ("address", "port", "weight", "enabled")
CHECK_KEYS = ("enabled", "interval")


def _name(value: object, option: str) -> str:
    if not isinstance(value, str) or len(value) > SERVICE_NAME_MAX or not SERVICE_NAME.fullmatch(value):
        raise SpecError(option, value, f"service names use a-z, 0-9 and '-', start with a letter or digit, at most {SERVICE_NAME_MAX} characters")
    return value


def check_address(value: object, option: str) -> tuple[str, int]:
    """An IPv4 or IPv6 address in canonical form, and its version (4 or 6)."""
    if not isinstance(value, str) or "%" in value:
        raise SpecError(option, value, "must be an IPv4 or IPv6 address (no zone, no host name)")
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        raise SpecError(option, value, "must be an IPv4 or IPv6 address (no zone, no host name)") from None
    if address.is_unspecified or address.is_multicast:
        raise SpecError(option, value, "must be a unicast address (not 0.0.0.0, ::, or multicast)")
    return str(address), address.version


def _int(value: object, option: str, low: int, high: int) -> int:
    # The action plugin merges raw task arguments (not yet converted by the argument spec): accept "80" too.
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpecError(option, value, f"must be an integer between {low} and {high}")
    return value


def _bool(value: object, option: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("yes", "true", "on", "1", "no", "false", "off", "0"):
        return value.lower() in ("yes", "true", "on", "1")
    raise SpecError(option, value, "must be true or false")


def _unknown(value: Mapping[str, Any], known: Sequence[str], option: str) -> None:
    extra = sorted(str(key) for key, item in value.items() if key not in known and item is not None)
    if extra:
        raise SpecError(option, extra, f"unknown keys; known: {', '.join(known)}")


def endpoint(address: str, version: int, port: int) -> str:
    """``ipv4@10.0.0.1:80`` / ``ipv6@fd00::1:80``: haproxy's address syntax with the family explicit."""
    return f"ipv{version}@{address}:{port}"


def normalise_backend(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(where, value, "must be a mapping with address and port")
    _unknown(value, BACKEND_KEYS, where)
    address, version = check_address(value.get("address"), f"{where}.address")
    port = _int(value.get("port"), f"{where}.port", 1, 65535)
    weight = DEFAULT_WEIGHT if value.get("weight") is None else _int(value.get("weight"), f"{where}.weight", 0, MAX_WEIGHT)
    enabled = True if value.get("enabled") is None else _bool(value.get("enabled"), f"{where}.enabled")
    return {"address": address, "port": port, "weight": weight, "enabled": enabled, "endpoint": endpoint(address, version, port)}


def normalise_service(value: object, index: int) -> dict[str, Any]:
    """One service, defaults filled; the dict the template and the state file hold."""
    if not isinstance(value, Mapping):
        raise SpecError(f"services[{index}]", value, "must be a mapping with name, address, port and backends")
    _unknown(value, SERVICE_KEYS, f"services[{index}]")
    name = _name(value.get("name"), f"services[{index}].name")
    where = f"services[{name}]"
    address, version = check_address(value.get("address"), f"{where}.address")
    port = _int(value.get("port"), f"{where}.port", 1, 65535)
    protocol = "tcp" if value.get("protocol") is None else value.get("protocol")
    if not isinstance(protocol, str) or protocol.lower() not in PROTOCOLS:
        raise SpecError(f"{where}.protocol", protocol, "only tcp is supported: haproxy balances TCP (and HTTP over it), not UDP or SCTP")
    balance = DEFAULT_BALANCE if value.get("balance") is None else value.get("balance")
    if balance not in BALANCES:
        raise SpecError(f"{where}.balance", balance, f"must be one of {', '.join(BALANCES)}")
    backends_in = value.get("backends")
    if backends_in is None:
        backends_in = []
    if not isinstance(backends_in, (list, tuple)):
        raise SpecError(f"{where}.backends", backends_in, "must be a list of {address, port}")
    backends = [normalise_backend(b, f"{where}.backends[{i}]") for i, b in enumerate(backends_in)]
    seen: set[str] = set()
    for i, backend in enumerate(backends):
        if backend["endpoint"] in seen:
            raise SpecError(f"{where}.backends[{i}]", f"{backend['address']}:{backend['port']}", "is listed twice")
        seen.add(backend["endpoint"])
    check = value.get("check")
    check_enabled, interval = False, DEFAULT_CHECK_INTERVAL
    if check is not None:
        if isinstance(check, bool):
            check_enabled = check
        elif isinstance(check, Mapping):
            _unknown(check, CHECK_KEYS, f"{where}.check")
            check_enabled = False if check.get("enabled") is None else _bool(check.get("enabled"), f"{where}.check.enabled")
            if check.get("interval") is not None:
                interval = _int(check.get("interval"), f"{where}.check.interval", MIN_CHECK_INTERVAL, MAX_CHECK_INTERVAL)
        else:
            raise SpecError(f"{where}.check", check, "must be true, false or a mapping with enabled and interval (milliseconds)")
    return {
        "name": name,
        "address": address,
        "family": f"ipv{version}",
        "port": port,
        "protocol": "tcp",
        "bind": endpoint(address, version, port),
        "balance": balance,
        "check": {"enabled": check_enabled, "interval": interval},
        "backends": backends,
    }


def normalise_services(value: object, state: str) -> list[dict[str, Any]]:
    """The listed services: whole specs for ``present``; for ``absent`` only their names matter."""
    if state not in STATES:
        raise SpecError("state", state, f"must be one of {', '.join(STATES)}")
    if value is None:
        value = []
    if not isinstance(value, (list, tuple)):
        raise SpecError("services", value, "must be a list of services")
    if state == "absent":
        listed = []
        for index, item in enumerate(value):
            name = item.get("name") if isinstance(item, Mapping) else item
            listed.append({"name": _name(name, f"services[{index}].name")})
    else:
        listed = [normalise_service(item, index) for index, item in enumerate(value)]
    names: set[str] = set()
    for index, service in enumerate(listed):
        if service["name"] in names:
            raise SpecError(f"services[{index}].name", service["name"], "is listed twice")
        names.add(service["name"])
    return listed


def final_services(current: Sequence[Mapping[str, Any]], listed: Sequence[Mapping[str, Any]], state: str, purge: bool) -> list[dict[str, Any]]:
    """The pod's services after the task, sorted by name; two on one address:port is an error naming both."""
    listed_names = {s["name"] for s in listed}
    kept = [] if purge else [dict(s) for s in current if s["name"] not in listed_names]
    if state == "present":
        kept += [dict(s) for s in listed]
    result = sorted(kept, key=lambda s: str(s["name"]))
    by_bind: dict[str, str] = {}
    for service in result:
        other = by_bind.get(service["bind"])
        if other is not None:
            raise SpecError(f"services[{service['name']}].port", f"{service['address']}:{service['port']}", f"is used by service {other} as well")
        by_bind[service["bind"]] = service["name"]
    return result


def service_vips(services: Sequence[Mapping[str, Any]]) -> list[str]:
    """The addresses the pod's ``lo`` must carry: one per distinct service address, loopback ones excepted."""
    vips = {str(s["address"]) for s in services if not ipaddress.ip_address(str(s["address"])).is_loopback}
    return sorted(vips, key=lambda a: (ipaddress.ip_address(a).version, ipaddress.ip_address(a)))


def vip_prefix(address: str) -> str:
    """``10.96.0.10/32`` or ``fd00::10/128``: the host address as ``ip addr`` takes it."""
    return f"{address}/{ipaddress.ip_address(address).max_prefixlen}"


def check_state(value: Optional[object]) -> str:
    state = "present" if value is None else value
    if state not in STATES:
        raise SpecError("state", state, f"must be one of {', '.join(STATES)}")
    return str(state)
