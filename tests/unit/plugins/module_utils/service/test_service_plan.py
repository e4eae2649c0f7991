# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""plan_services: a table of stored states and desired services → actions, VIP operations, diff."""

from __future__ import annotations

from typing import Any, Optional

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.plan import plan_services, services_hash, stored_state
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.spec import normalise_services


def services(*specs: tuple[str, str, int]) -> list[dict[str, Any]]:
    return normalise_services(
        [{"name": name, "address": address, "port": port, "backends": [{"address": "127.0.0.1", "port": 8081}]} for name, address, port in specs], "present"
    )


WEB = services(("web", "10.96.0.10", 80))
WEB_API = services(("api", "10.96.0.10", 81), ("web", "10.96.0.10", 80))
WEB_V6 = services(("web", "10.96.0.10", 80), ("web6", "fd00::10", 80))
FULL = ["validate_config", "add_vips", "install_config", "reload", "write_state"]


@pytest.mark.parametrize(
    ("current", "current_config", "desired", "config", "actions", "add", "remove"),
    [
        # a fresh service container: no state file, the image's config
        (None, "image", WEB, "cfg-web", FULL, ["10.96.0.10"], []),
        # nothing to do
        (stored_state(WEB, "cfg-web"), "cfg-web", WEB, "cfg-web", [], [], []),
        # a backend changed: new config, no VIP operation
        (stored_state(WEB, "cfg-web"), "cfg-web", WEB, "cfg-web-2", ["validate_config", "install_config", "reload", "write_state"], [], []),
        # a second service on the same VIP: no VIP operation
        (stored_state(WEB, "cfg-web"), "cfg-web", WEB_API, "cfg-both", ["validate_config", "install_config", "reload", "write_state"], [], []),
        # removing one of two services sharing a VIP keeps the VIP
        (stored_state(WEB_API, "cfg-both"), "cfg-both", WEB, "cfg-web", ["validate_config", "install_config", "reload", "write_state"], [], []),
        # a new VIP
        (stored_state(WEB, "cfg-web"), "cfg-web", WEB_V6, "cfg-v6", FULL, ["fd00::10"], []),
        # the VIP goes after the reload
        (
            stored_state(WEB_V6, "cfg-v6"),
            "cfg-v6",
            WEB,
            "cfg-web",
            ["validate_config", "install_config", "reload", "remove_vips", "write_state"],
            [],
            ["fd00::10"],
        ),
        # everything removed
        (
            stored_state(WEB, "cfg-web"),
            "cfg-web",
            [],
            "cfg-none",
            ["validate_config", "install_config", "reload", "remove_vips", "write_state"],
            [],
            ["10.96.0.10"],
        ),
        # the config in place is not the one the state file says (edited by hand): put ours back
        (stored_state(WEB, "cfg-web"), "edited", WEB, "cfg-web", ["validate_config", "install_config", "reload", "write_state"], [], []),
        # config already right but the state file is missing: write it only
        (None, "cfg-web", WEB, "cfg-web", ["add_vips", "write_state"], ["10.96.0.10"], []),
    ],
)
def test_plan(
    current: Optional[dict[str, Any]], current_config: str, desired: list[dict[str, Any]], config: str, actions: list[str], add: list[str], remove: list[str]
) -> None:
    plan = plan_services(current, current_config, desired, config)
    expected = list(actions)
    assert plan.actions == expected
    assert plan.vips_add == add
    assert plan.vips_remove == remove
    assert plan.changed == bool(expected)
    assert plan.reload == ("reload" in expected)
    assert plan.config_changed == ("install_config" in expected)
    assert plan.state == stored_state(desired, config)


def test_diff_shows_config_and_vips() -> None:
    plan = plan_services(stored_state(WEB, "a\n"), "a\n", WEB_V6, "b\n")
    assert plan.diff("/etc/haproxy/haproxy.cfg") == [
        {"before_header": "/etc/haproxy/haproxy.cfg", "after_header": "/etc/haproxy/haproxy.cfg", "before": "a\n", "after": "b\n"},
        {"before_header": "VIPs on lo", "after_header": "VIPs on lo", "before": "10.96.0.10\n", "after": "10.96.0.10\nfd00::10\n"},
    ]


def test_services_hash_is_order_and_key_stable() -> None:
    assert services_hash(WEB_API) == services_hash([dict(reversed(list(s.items()))) for s in WEB_API])
    assert services_hash(WEB_API) != services_hash(WEB)


def test_one_change_among_many_is_one_reload_and_no_vip_operation() -> None:
    many = services(*[(f"s{i}", f"10.96.{i // 250}.{i % 250 + 1}", 80) for i in range(1000)])
    changed = [dict(s) for s in many]
    changed[500] = {**changed[500], "balance": "leastconn"}
    plan = plan_services(stored_state(many, "cfg"), "cfg", changed, "cfg-2")
    assert plan.vips_add == [] and plan.vips_remove == []
    assert plan.actions.count("reload") == 1
