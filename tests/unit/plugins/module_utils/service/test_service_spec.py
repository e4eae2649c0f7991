# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Service specs: normalisation, the errors that keep user text out of haproxy.cfg, merging, VIPs."""

from __future__ import annotations

from typing import Any, Optional

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.spec import (
    final_services,
    normalise_service,
    normalise_services,
    service_vips,
    vip_prefix,
)


def svc(name: str = "web", address: Optional[str] = "10.96.0.10", port: Any = 80, **extra: Any) -> dict[str, Any]:
    return {"name": name, "address": address, "port": port, "backends": [{"address": "127.0.0.1", "port": 8081}], **extra}


def test_defaults_filled() -> None:
    assert normalise_service(svc(), 0) == {
        "name": "web",
        "address": "10.96.0.10",
        "family": "ipv4",
        "port": 80,
        "protocol": "tcp",
        "bind": "ipv4@10.96.0.10:80",
        "balance": "roundrobin",
        "check": {"enabled": False, "interval": 2000},
        "backends": [{"address": "127.0.0.1", "port": 8081, "weight": 1, "enabled": True, "endpoint": "ipv4@127.0.0.1:8081"}],
    }


def test_ipv6_canonical_and_explicit_family() -> None:
    service = normalise_service(svc(address="FD00:0:0::10", backends=[{"address": "::1", "port": "8082", "weight": 3, "enabled": "no"}]), 0)
    assert service["address"] == "fd00::10"
    assert service["bind"] == "ipv6@fd00::10:80"
    assert service["backends"] == [{"address": "::1", "port": 8082, "weight": 3, "enabled": False, "endpoint": "ipv6@::1:8082"}]


def test_check_forms() -> None:
    assert normalise_service(svc(check=True), 0)["check"] == {"enabled": True, "interval": 2000}
    assert normalise_service(svc(check={"enabled": True, "interval": 500}), 0)["check"] == {"enabled": True, "interval": 500}
    assert normalise_service(svc(check={"enabled": None, "interval": None}), 0)["check"] == {"enabled": False, "interval": 2000}


@pytest.mark.parametrize(
    ("service", "option", "value"),
    [
        (svc(name="web 1"), "services[0].name", "web 1"),
        (svc(name="web#1"), "services[0].name", "web#1"),
        (svc(name="web\nbind"), "services[0].name", "web\nbind"),
        (svc(name="Web"), "services[0].name", "Web"),
        (svc(name="-web"), "services[0].name", "-web"),
        (svc(name="a" * 64), "services[0].name", "a" * 64),
        (svc(address="web.example"), "services[web].address", "web.example"),
        (svc(address="10.96.0.10\n    bind 0.0.0.0:22"), "services[web].address", "10.96.0.10\n    bind 0.0.0.0:22"),
        (svc(address="fe80::1%lo"), "services[web].address", "fe80::1%lo"),
        (svc(address="0.0.0.0"), "services[web].address", "0.0.0.0"),
        (svc(address="224.0.0.1"), "services[web].address", "224.0.0.1"),
        (svc(address=None), "services[web].address", None),
        (svc(port=0), "services[web].port", 0),
        (svc(port=65536), "services[web].port", 65536),
        (svc(port=True), "services[web].port", True),
        (svc(port="80 #"), "services[web].port", "80 #"),
        (svc(protocol="udp"), "services[web].protocol", "udp"),
        (svc(protocol="sctp"), "services[web].protocol", "sctp"),
        (svc(balance="random"), "services[web].balance", "random"),
        (svc(check="sometimes"), "services[web].check", "sometimes"),
        (svc(check={"interval": 50, "enabled": True}), "services[web].check.interval", 50),
        (svc(backends="127.0.0.1:8081"), "services[web].backends", "127.0.0.1:8081"),
        (svc(backends=[{"address": "localhost", "port": 1}]), "services[web].backends[0].address", "localhost"),
        (svc(backends=[{"address": "127.0.0.1", "port": 1, "weight": 257}]), "services[web].backends[0].weight", 257),
        (svc(backends=[{"address": "127.0.0.1", "port": 1, "enabled": "maybe"}]), "services[web].backends[0].enabled", "maybe"),
        (svc(backends=[{"address": "127.0.0.1", "port": 1}, {"address": "127.0.0.1", "port": 1}]), "services[web].backends[1]", "127.0.0.1:1"),
        (svc(extra_key=1), "services[0]", ["extra_key"]),
        ("web", "services[0]", "web"),
    ],
)
def test_bad_service(service: Any, option: str, value: Any) -> None:
    with pytest.raises(SpecError) as err:
        normalise_services([service], "present")
    assert err.value.option == option
    assert err.value.value == value
    assert option in err.value.message


def test_udp_message_says_why() -> None:
    with pytest.raises(SpecError, match="only tcp is supported"):
        normalise_service(svc(protocol="udp"), 0)


def test_duplicate_names() -> None:
    with pytest.raises(SpecError, match="listed twice"):
        normalise_services([svc(), svc(port=81)], "present")


def test_absent_needs_only_names() -> None:
    assert normalise_services([{"name": "web"}, "api"], "absent") == [{"name": "web"}, {"name": "api"}]
    with pytest.raises(SpecError) as err:
        normalise_services([{"name": "no such"}], "absent")
    assert err.value.option == "services[0].name"


def test_bad_state_and_list() -> None:
    with pytest.raises(SpecError, match="state"):
        normalise_services([], "started")
    with pytest.raises(SpecError) as err:
        normalise_services("web", "present")
    assert err.value.option == "services"


def normal(*services: dict[str, Any]) -> list[dict[str, Any]]:
    return normalise_services(list(services), "present")


@pytest.mark.parametrize(
    ("state", "purge", "names"),
    [
        ("present", False, ["a", "b", "c"]),
        ("present", True, ["b", "c"]),
        ("absent", False, ["a"]),
        ("absent", True, []),
    ],
)
def test_final_services(state: str, purge: bool, names: list[str]) -> None:
    current = normal(svc("a", port=1), svc("b", port=2))
    listed = normal(svc("c", port=3), svc("b", port=4)) if state == "present" else [{"name": "b"}, {"name": "c"}]
    final = final_services(current, listed, state, purge)
    assert [s["name"] for s in final] == names
    if "b" in names and state == "present":
        assert next(s for s in final if s["name"] == "b")["port"] == 4  # the listed one wins


def test_address_port_clash_names_both() -> None:
    current = normal(svc("a", port=80))
    with pytest.raises(SpecError, match="used by service a"):
        final_services(current, normal(svc("b", port=80)), "present", False)


def test_same_address_other_port_is_fine() -> None:
    assert len(final_services([], normal(svc("a", port=80), svc("b", port=81)), "present", True)) == 2


def test_vips_distinct_sorted_loopback_skipped() -> None:
    services = normal(
        svc("a", address="10.96.0.10", port=80),
        svc("b", address="10.96.0.10", port=81),
        svc("c", address="10.96.0.9", port=80),
        svc("d", address="fd00::1", port=80),
        svc("e", address="127.0.0.2", port=80),
        svc("f", address="::1", port=80),
    )
    assert service_vips(services) == ["10.96.0.9", "10.96.0.10", "fd00::1"]
    assert [vip_prefix(v) for v in service_vips(services)] == ["10.96.0.9/32", "10.96.0.10/32", "fd00::1/128"]
