# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ensure_pod with networks and ports, on the fakes of test_pod (FakePodNetwork, FakePorts)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.network.networks import guest_mac
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.boot import PodError
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.pod.test_pod import Harness, h  # noqa: F401  pylint: disable=unused-import

PORTS = [{"host_port": 8080, "pod_port": 80}]


def _interfaces(xml: str) -> list[tuple[str, str]]:
    root = ET.fromstring(xml)
    return [(str(i.find("source").get("network")), str(i.find("mac").get("address"))) for i in root.iter("interface")]  # type: ignore[union-attr]


def test_a_new_pod_joins_the_default_network(h: Harness) -> None:  # noqa: F811
    result = h.run()
    (dom,) = h.pods()
    assert _interfaces(dom.xml) == [("hyper", guest_mac(dom.vm_name, 0))]
    assert dom.meta["spec"]["networks"] == [{"name": "hyper", "address": None}]
    assert h.net_log == [f"net up {dom.vm_name} hyper"]
    assert result["pod"]["addresses"][0]["address"] == "10.88.0.100/24"


def test_none_means_no_interface(h: Harness) -> None:  # noqa: F811
    result = h.run(networks="none")
    (dom,) = h.pods()
    assert _interfaces(dom.xml) == []
    assert result["pod"]["networks"] == [] and result["pod"]["addresses"] == []


def test_a_static_address_gets_the_network_prefix(h: Harness) -> None:  # noqa: F811
    result = h.run(networks=[{"name": "hyper", "address": "10.88.0.9"}])
    assert result["pod"]["networks"] == [{"name": "hyper", "address": "10.88.0.9/24"}]
    assert h.run(networks=[{"name": "hyper", "address": "10.88.0.9/24"}])["changed"] is False


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"networks": ["nope"]}, "no such libvirt network"),
        ({"networks": [{"name": "hyper", "address": "10.88.0.200"}]}, "DHCP range"),
        ({"networks": "none", "ports": PORTS}, "cannot map ports"),
    ],
)
def test_bad_network_input_creates_nothing(h: Harness, params: dict[str, Any], match: str) -> None:  # noqa: F811
    with pytest.raises(SpecError, match=match):
        h.run(**params)
    with pytest.raises(SpecError, match=match):
        h.run(check_mode=True, **params)
    assert h.pods() == [] and h.ports.rules == {}


def test_ports_follow_the_pods_run_state(h: Harness) -> None:  # noqa: F811
    h.run(ports=PORTS)
    (dom,) = h.pods()
    assert h.ports.rules == {dom.vm_name: ("10.88.0.100", [{"host_ip": None, "host_port": [8080, 8080], "pod_port": [80, 80], "protocol": "tcp"}])}
    assert h.run(ports=PORTS)["changed"] is False
    h.run(ports=PORTS, state="stopped")
    assert h.ports.rules == {}
    h.run(ports=PORTS)
    assert list(h.ports.rules) == [dom.vm_name]
    h.run(state="absent")
    assert h.ports.rules == {}


def test_changed_ports_are_applied_in_place(h: Harness) -> None:  # noqa: F811
    first = h.run(ports=PORTS)
    result = h.run(ports=[{"host_port": 9090, "pod_port": 80}])
    assert result["actions"] == ["update_ports"] and result["pod"]["vm_id"] == first["pod"]["vm_id"]
    (dom,) = h.pods()
    assert h.ports.rules[dom.vm_name][1][0]["host_port"] == [9090, 9090]
    assert dom.meta["spec"]["ports"][0]["host_port"] == [9090, 9090]


def test_lost_rules_are_put_back(h: Harness) -> None:  # noqa: F811
    h.run(ports=PORTS)
    h.ports.rules.clear()  # a reboot, an nft flush
    result = h.run(ports=PORTS)
    assert result["changed"] is True and result["actions"] == ["sync_ports"]
    assert h.run(ports=PORTS)["changed"] is False


def test_a_host_port_of_another_pod_is_refused(h: Harness) -> None:  # noqa: F811
    h.run(ports=PORTS)
    with pytest.raises(SpecError, match=r"ports\[0\].host_port='8000-8100'.*8000-8100/tcp is already mapped by pod pe-test-1"):
        h.run(name="pe-test-2", ports=[{"host_port": "8000-8100"}])
    assert len(h.pods()) == 1


def test_a_pod_that_fails_to_start_leaves_no_rule(h: Harness) -> None:  # noqa: F811
    h.fail["start web"] = HyperError("hyper-container start web: boom")
    with pytest.raises(PodError):
        h.run(ports=PORTS)
    assert h.pods() == [] and h.ports.rules == {}


def test_network_failure_is_a_named_step(h: Harness) -> None:  # noqa: F811
    h.net_fail = HyperError("eth0: no DHCP lease within 10 s")
    with pytest.raises(PodError, match="configuring the network failed: eth0: no DHCP lease"):
        h.run(ports=PORTS)
    assert h.pods() == [] and h.ports.rules == {}
