# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""apply_plan and run_services against a fake service container: order, rollback, check mode, phases."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import AgentError, HyperError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.engine import apply_plan, run_services
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.haproxy import ServiceError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.plan import plan_services, services_hash, stored_state
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.spec import normalise_services

WEB = {"name": "web", "address": "10.96.0.10", "port": 80, "backends": [{"address": "127.0.0.1", "port": 8081}]}
WEB6 = {"name": "web6", "address": "fd00::10", "port": 80, "backends": [{"address": "127.0.0.1", "port": 8081}]}


class FakeServiceGuest:
    """Records every call; ``fail`` maps a method name to the error it raises."""

    config_path = "/etc/haproxy/haproxy.cfg"

    def __init__(self, state: Optional[dict[str, Any]] = None, config: str = "image\n", fail: Optional[dict[str, HyperError]] = None) -> None:
        self.state = state
        self.config = config
        self.candidate: Optional[str] = None
        self.vips: set[str] = set((state or {}).get("vips") or [])
        self.fail = fail or {}
        self.calls: list[str] = []

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name in self.fail:
            raise self.fail[name]

    def check_running(self) -> None:
        self._call("check_running")

    def read_config(self) -> str:
        self._call("read_config")
        return self.config

    def read_state(self) -> Optional[dict[str, Any]]:
        self._call("read_state")
        return self.state

    def validate(self, config: str) -> None:
        self._call("validate")
        self.candidate = config

    def install_config(self) -> None:
        self._call("install_config")
        assert self.candidate is not None
        self.config, self.candidate = self.candidate, None

    def write_config(self, config: str) -> None:
        self._call("write_config")
        self.config = config

    def discard_candidate(self) -> None:
        self._call("discard_candidate")
        self.candidate = None

    def add_vips(self, vips: Sequence[str]) -> None:
        self._call("add_vips")
        self.vips |= set(vips)

    def remove_vips(self, vips: Sequence[str]) -> None:
        self._call("remove_vips")
        self.vips -= set(vips)

    def reload(self) -> None:
        self._call("reload")

    def write_state(self, state: dict[str, Any]) -> None:
        self._call("write_state")
        self.state = state


def params(*services: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"services": list(services), "state": "present", "purge": False, "config": "cfg\n", **extra}


def test_first_phase_reports_the_final_list_only() -> None:
    current = normalise_services([WEB6], "present")
    guest = FakeServiceGuest(state=stored_state(current, "old\n"))
    result = run_services(guest, params(WEB, config=None), check_mode=False)
    assert [s["name"] for s in result["services"]] == ["web", "web6"]
    assert result["services_hash"] == services_hash(result["services"])
    assert result["changed"] is False
    assert guest.calls == ["check_running", "read_state"]


def test_apply_order_and_result() -> None:
    guest = FakeServiceGuest()
    result = run_services(guest, params(WEB), check_mode=False, diff=True)
    assert guest.calls == ["check_running", "read_state", "read_config", "validate", "add_vips", "install_config", "reload", "write_state"]
    assert result["changed"] and result["reloaded"] and result["config_changed"]
    assert result["vips_added"] == ["10.96.0.10"]
    assert result["diff"][0]["after"] == "cfg\n"
    assert guest.config == "cfg\n" and guest.vips == {"10.96.0.10"}
    # again: nothing to do
    guest.calls.clear()
    again = run_services(guest, params(WEB), check_mode=False)
    assert again["changed"] is False and again["reloaded"] is False and again["actions"] == []
    assert guest.calls == ["check_running", "read_state", "read_config"]


def test_check_mode_changes_nothing() -> None:
    guest = FakeServiceGuest()
    result = run_services(guest, params(WEB), check_mode=True)
    assert result["changed"] and not result["reloaded"]
    assert guest.calls == ["check_running", "read_state", "read_config"]
    assert guest.config == "image\n" and guest.vips == set() and guest.state is None


def test_hash_mismatch_is_refused() -> None:
    guest = FakeServiceGuest()
    with pytest.raises(HyperError, match="changed while the configuration was rendered"):
        run_services(guest, params(WEB, services_hash="sha256:other"), check_mode=False)
    assert "validate" not in guest.calls


def test_bad_input_before_any_guest_call() -> None:
    guest = FakeServiceGuest()
    with pytest.raises(SpecError):
        run_services(guest, params({**WEB, "protocol": "udp"}), check_mode=False)
    assert guest.calls == []


def test_validation_failure_changes_nothing() -> None:
    guest = FakeServiceGuest(fail={"validate": ServiceError("haproxy rejected the new configuration")})
    with pytest.raises(ServiceError):
        run_services(guest, params(WEB), check_mode=False)
    assert guest.calls[-1] == "validate"
    assert guest.config == "image\n" and guest.vips == set() and guest.state is None


def test_reload_failure_rolls_back_config_and_added_vips() -> None:
    before = normalise_services([WEB], "present")
    guest = FakeServiceGuest(state=stored_state(before, "old\n"), config="old\n", fail={"reload": ServiceError("Loading failure!")})
    with pytest.raises(ServiceError):
        run_services(guest, params(WEB, WEB6), check_mode=False)
    assert guest.calls[3:] == ["validate", "add_vips", "install_config", "reload", "write_config", "remove_vips"]
    assert guest.config == "old\n"
    assert guest.vips == {"10.96.0.10"}
    assert guest.state == stored_state(before, "old\n")


def test_vip_failure_discards_the_candidate() -> None:
    guest = FakeServiceGuest(fail={"add_vips": AgentError("ip: RTNETLINK answers: Operation not permitted")})
    with pytest.raises(AgentError):
        run_services(guest, params(WEB), check_mode=False)
    assert guest.calls[-2:] == ["add_vips", "discard_candidate"]
    assert guest.config == "image\n" and guest.state is None


def test_rollback_errors_never_hide_the_first_one() -> None:
    guest = FakeServiceGuest(
        fail={"reload": ServiceError("Loading failure!"), "write_config": AgentError("agent gone"), "remove_vips": AgentError("agent gone")}
    )
    with pytest.raises(ServiceError, match="Loading failure"):
        run_services(guest, params(WEB), check_mode=False)


def test_counts_vip_operations_and_reloads() -> None:
    guest = FakeServiceGuest()
    plan = plan_services(None, "image\n", normalise_services([WEB, WEB6], "present"), "cfg\n")
    counts = apply_plan(guest, plan)
    assert (counts.vip_operations, counts.reloads, counts.rolled_back) == (2, 1, [])
