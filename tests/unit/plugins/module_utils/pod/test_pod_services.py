# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""hyper_pod with services: the haproxy container added, the pod first, bad services before any change."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod import services as pod_services
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.service_container import ADD_PARAM
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


# -- hyper_service on a pod without its service container ---------------------------------------------


class OnePod:
    """The session as ensure_service_on_pod uses it: one running pod, with or without a haproxy container."""

    def __init__(self, names: list[str]) -> None:
        from types import SimpleNamespace  # pylint: disable=import-outside-toplevel

        self.names = names
        self.pod = SimpleNamespace(container=lambda name: name if name in self.names else None)
        self.forgotten = 0

    def __enter__(self) -> OnePod:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def running(self, pod: str) -> Any:
        from types import SimpleNamespace  # pylint: disable=import-outside-toplevel

        return SimpleNamespace(current=SimpleNamespace(pod=self.pod))

    def forget(self) -> None:
        self.forgotten += 1


@pytest.fixture
def service_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []

    def fake_ensure_pod(params: dict[str, Any], check_mode: bool, diff: bool, deps: Any) -> dict[str, Any]:
        calls.append(("pod", params, check_mode))
        if not check_mode:
            deps.names.append(params[ADD_PARAM]["name"])
        return {"changed": True, "actions": ["add container haproxy"]}

    def fake_ensure_services(params: dict[str, Any], check_mode: bool, diff: bool, deps: Any) -> dict[str, Any]:
        calls.append(("services", check_mode))
        return {"changed": True, "actions": ["validate_config", "reload"], "services": []}

    monkeypatch.setattr(pod_services, "ensure_pod", fake_ensure_pod)
    monkeypatch.setattr(pod_services, "ensure_services", fake_ensure_services)
    return calls


SERVICE_PARAMS = {"pod": "p", "services": [WEB], "service_image": "oci:/x:haproxy"}


def test_a_pod_with_its_service_container_goes_straight_to_the_services(service_calls: list[Any]) -> None:
    result = pod_services.ensure_service_on_pod({**SERVICE_PARAMS, "config": "cfg"}, False, session=OnePod(["web1", "haproxy"]))  # type: ignore[arg-type]
    assert service_calls == [("services", False)] and "container_added" not in result


def test_the_first_phase_adds_nothing(service_calls: list[Any]) -> None:
    result = pod_services.ensure_service_on_pod(SERVICE_PARAMS, False, session=OnePod(["web1"]))  # type: ignore[arg-type]
    assert service_calls == [] and result["changed"] is False and [s["name"] for s in result["services"]] == ["web"]


def test_check_mode_plans_the_container_and_the_services(service_calls: list[Any]) -> None:
    session = OnePod(["web1"])
    result = pod_services.ensure_service_on_pod({**SERVICE_PARAMS, "config": "cfg"}, True, session=session)  # type: ignore[arg-type]
    assert result["changed"] is True and result["container_added"] is True
    assert result["actions"][0] == "add container haproxy" and "validate_config" in result["actions"]
    assert [c[0] for c in service_calls] == ["pod"] and service_calls[0][2] is True and session.names == ["web1"]


def test_the_container_is_added_then_the_services_applied(service_calls: list[Any]) -> None:
    session = OnePod(["web1"])
    result = pod_services.ensure_service_on_pod({**SERVICE_PARAMS, "config": "cfg"}, False, session=session)  # type: ignore[arg-type]
    kind, params, check = service_calls[0]
    assert (kind, check, params[ADD_PARAM]) == ("pod", False, {"name": "haproxy", "image": "oci:/x:haproxy"})
    assert service_calls[1] == ("services", False) and session.forgotten == 1
    assert result["actions"] == ["add container haproxy", "validate_config", "reload"] and result["container_added"] is True


def test_absent_on_a_pod_without_services_changes_nothing(service_calls: list[Any]) -> None:
    params = {"pod": "p", "services": [{"name": "web"}], "state": "absent"}
    result = pod_services.ensure_service_on_pod(params, False, session=OnePod(["web1"]))  # type: ignore[arg-type]
    assert (result["changed"], service_calls) == (False, [])


def test_a_bad_container_name_fails_before_the_pod_is_looked_up(service_calls: list[Any]) -> None:
    with pytest.raises(SpecError, match="container"):
        pod_services.ensure_service_on_pod({**SERVICE_PARAMS, "container": "Bad!"}, False, session=None)
