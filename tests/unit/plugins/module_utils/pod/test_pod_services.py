# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""hyper_pod with services: the haproxy container added, the pod first, bad services before any change."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod import services as pod_services
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.services import DEFAULT_SERVICE_IMAGE, ensure_pod_with_services, with_service_container

WEB = {"name": "web", "address": "10.96.0.10", "port": 80, "backends": [{"address": "127.0.0.1", "port": 8081}]}
BUSYBOX = {"name": "web1", "image": "oci:/images:busybox"}


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"services": [WEB], "containers": [BUSYBOX]}, ["web1", "haproxy"]),
        ({"services": [WEB], "containers": [BUSYBOX, {"name": "haproxy", "image": "mine"}]}, ["web1", "haproxy"]),
        ({"services": None, "containers": [BUSYBOX]}, ["web1"]),
        ({"services": [WEB], "containers": None}, None),
    ],
)
def test_with_service_container(params: dict[str, Any], names: Any) -> None:
    containers = with_service_container(params)["containers"]
    assert (None if containers is None else [c["name"] for c in containers]) == names


def test_service_image() -> None:
    assert with_service_container({"services": [], "containers": []})["containers"][-1]["image"] == DEFAULT_SERVICE_IMAGE
    assert with_service_container({"services": [], "containers": [], "service_image": "oci:/x:h"})["containers"][-1]["image"] == "oci:/x:h"


@pytest.fixture
def pods(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def fake_ensure_pod(params: dict[str, Any], check_mode: bool, diff: bool, deps: Any) -> dict[str, Any]:
        calls.append(params)
        return {"changed": True, "actions": ["create", "start"]}

    monkeypatch.setattr(pod_services, "ensure_pod", fake_ensure_pod)
    return calls


def test_without_services_only_the_pod(pods: list[dict[str, Any]]) -> None:
    assert ensure_pod_with_services({"name": "p", "containers": [BUSYBOX]}, False) == {"changed": True, "actions": ["create", "start"]}
    assert pods[0]["containers"] == [BUSYBOX]


def test_bad_service_before_the_pod(pods: list[dict[str, Any]]) -> None:
    with pytest.raises(SpecError) as err:
        ensure_pod_with_services({"name": "p", "containers": [BUSYBOX], "services": [{**WEB, "protocol": "udp"}]}, False)
    assert err.value.option == "services[web].protocol"
    assert pods == []


def test_check_mode_of_a_new_pod_reports_the_services(pods: list[dict[str, Any]]) -> None:
    result = ensure_pod_with_services({"name": "p", "containers": [BUSYBOX], "services": [WEB]}, True)
    assert [c["name"] for c in pods[0]["containers"]] == ["web1", "haproxy"]
    assert [s["name"] for s in result["services"]] == ["web"]
    assert result["services_applied"] is False


def test_stopped_pod_leaves_services_alone(pods: list[dict[str, Any]]) -> None:
    result = ensure_pod_with_services({"name": "p", "state": "stopped", "containers": [BUSYBOX], "services": [WEB]}, False)
    assert "services" not in result


def test_services_need_the_rendered_config(pods: list[dict[str, Any]]) -> None:
    with pytest.raises(SpecError, match="action plugin"):
        ensure_pod_with_services({"name": "p", "containers": [BUSYBOX], "services": [WEB]}, False)
