# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The warm pool's pure parts (template, fit, metadata, plan) and its claim against a scripted libvirt:
pool VMs are never pods, a claim takes a ready VM of the pod's template only, two claims never get the same VM."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import DomainNotFound, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.store import list_pods, pod_of
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredPod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pool import claim as pool_claim
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pool.engine import PoolSpec, normalise_pool, plan_pool
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pool.template import POOL_HOTPLUG_SLOTS, PoolTemplate, pod_template, pool_misfit
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pool.vms import (
    BOOTING,
    READY,
    PoolVm,
    list_pool_vms,
    parse_pool_metadata,
    pool_domain_spec,
    pool_metadata,
    remove_idle,
    vm_lock,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.domain_xml import render_domain_xml

ARGS = "console=ttyS0 quiet"
CHANNEL = "org.qemu.guest_agent.0"


def stored_pod(**changes: Any) -> StoredPod:
    spec = {
        "name": "web",
        "vcpus": 1,
        "memory": 128,
        "accelerator": "tcg",
        "guest": {"image": "default", "kernel": "/k", "initrd": "/i", "initrd_sha256": "aa"},
        "networks": [{"name": "hyper", "address": None}],
        "containers": [],
    }
    spec.update(changes)
    return StoredPod.from_json(spec)


TEMPLATE = pod_template(stored_pod(), ARGS, CHANNEL)


class Dom:
    def __init__(self, name: str, meta: Any, state: str) -> None:
        self._name, self.meta, self.st = name, meta, state

    def name(self) -> str:
        return self._name

    def UUIDString(self) -> str:  # pylint: disable=invalid-name
        return "00000000-0000-0000-0000-" + self._name[-8:].rjust(12, "0")


class Client:
    def __init__(self, *doms: Dom) -> None:
        self.doms = list(doms)
        self.destroyed: list[str] = []

    def list_domains(self, prefix: str = "") -> list[Dom]:
        return [d for d in self.doms if d.name().startswith(prefix)]

    def get_metadata(self, dom: Dom) -> Any:
        if dom not in self.doms:
            raise DomainNotFound(dom.name())
        return dom.meta

    def state(self, dom: Dom) -> str:
        return dom.st

    def is_active(self, dom: Dom) -> bool:
        return dom.st != "shutoff"

    def destroy(self, dom: Dom) -> bool:
        self.destroyed.append(dom.name())
        self.doms.remove(dom)
        return True


def pool_dom(vm_id: str, status: str = READY, state: str = "paused", template: PoolTemplate = TEMPLATE, pool: str = "small") -> Dom:
    return Dom(vm_id, pool_metadata(pool, template, status), state)


# -- template -------------------------------------------------------------------------------------


def test_template_round_trip_and_key() -> None:
    again = PoolTemplate.from_json(TEMPLATE.to_json())
    assert again == TEMPLATE and again.key == TEMPLATE.key and len(TEMPLATE.key) == 16


@pytest.mark.parametrize(
    "change",
    [
        {"vcpus": 2},
        {"memory": 256},
        {"accelerator": "kvm"},
        {"networks": []},
        {"guest": {"image": "default", "kernel": "/k", "initrd": "/i", "initrd_sha256": "bb"}},
    ],
)
def test_every_template_field_changes_the_key(change: dict[str, Any]) -> None:
    assert pod_template(stored_pod(**change), ARGS, CHANNEL).key != TEMPLATE.key


def test_a_pods_own_options_do_not_change_the_key() -> None:
    other = stored_pod(name="other", hostname="x", networks=[{"name": "hyper", "address": "10.88.0.9/24"}], labels={"a": "b"})
    assert pod_template(other, ARGS, CHANNEL).key == TEMPLATE.key


@pytest.mark.parametrize("bad", [None, {}, {**TEMPLATE.to_json(), "format": 2}, {**TEMPLATE.to_json(), "vcpus": "1"}, {**TEMPLATE.to_json(), "networks": [1]}])
def test_a_bad_stored_template_is_a_spec_error(bad: Any) -> None:
    with pytest.raises(SpecError):
        PoolTemplate.from_json(bad)


@pytest.mark.parametrize(
    "pod, disks, shares, needle",
    [
        (stored_pod(), 3, 0, None),
        (stored_pod(), POOL_HOTPLUG_SLOTS, 0, None),
        (stored_pod(), POOL_HOTPLUG_SLOTS + 1, 0, "hot-plug slots"),
        (stored_pod(), 3, 1, "virtio-fs"),
        (stored_pod(kernel_args="quiet"), 3, 0, "kernel_args"),
    ],
)
def test_what_only_a_fresh_boot_gives_takes_the_cold_path(pod: StoredPod, disks: int, shares: int, needle: Optional[str]) -> None:
    reason = pool_misfit(pod, disks, shares)
    assert (reason is None) if needle is None else (needle in str(reason))


# -- metadata: pool VMs are not pods -------------------------------------------------------------


@pytest.mark.parametrize(
    "meta, expected",
    [
        (pool_metadata("small", TEMPLATE, READY), ("small", TEMPLATE.key, READY)),
        ({"format": 1, "name": "web", "spec": {"name": "web"}}, None),
        ({"format": 1, "pool": "small", "key": "k", "status": "ready", "spec": {}}, None),
        ({"format": 2, "pool": "small", "key": "k", "status": "ready"}, None),
        ({"format": 1, "pool": "", "key": "k", "status": "ready"}, None),
        ({"format": 1, "pool": "small", "key": 3, "status": "ready"}, None),
        (None, None),
        ("text", None),
    ],
)
def test_pool_metadata_is_parsed_strictly(meta: Any, expected: Any) -> None:
    assert parse_pool_metadata(meta) == expected


def test_pool_vms_are_not_listed_as_pods() -> None:
    pod = Dom("hyper-00000001", {"format": 1, "name": "web", "spec": {"name": "web"}, "spec_hash": "x"}, "running")
    client = Client(pod, pool_dom("hyper-00000002"), Dom("hyper-00000003", {"format": 1, "pool": "p", "name": "x", "spec": {"name": "x"}}, "running"))
    assert [f.current.vm_id for f in list_pods(client)] == ["hyper-00000001"]  # type: ignore[arg-type]
    assert pod_of(client, client.doms[2]) is None  # type: ignore[arg-type]
    assert [v.vm_id for v in list_pool_vms(client)] == ["hyper-00000002"]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "status, state, expected",
    [(READY, "paused", "ready"), (READY, "running", "failed"), (BOOTING, "running", "booting"), (BOOTING, "shutoff", "failed"), (READY, "crashed", "failed")],
)
def test_pool_vm_states(status: str, state: str, expected: str) -> None:
    client = Client(pool_dom("hyper-00000002", status, state))
    assert list_pool_vms(client)[0].status == expected  # type: ignore[arg-type]


def test_the_pool_vm_domain_has_no_disks_more_slots_and_the_pool_metadata() -> None:
    xml = render_domain_xml(pool_domain_spec("hyper-0000000a", "small", TEMPLATE, "/var/lib/hyper"))
    assert "<disk" not in xml and xml.count("pcie-root-port") >= POOL_HOTPLUG_SLOTS
    assert "<title>hyper pool small</title>" in xml and '"pool":"small"' in xml and '"spec"' not in xml
    assert '<source network="hyper"' in xml


# -- plan ------------------------------------------------------------------------------------------


def spec(**changes: Any) -> PoolSpec:
    return normalise_pool({"name": "small", "size": 2, **changes})


def vm(vm_id: str, status: str = READY, key: str = TEMPLATE.key) -> PoolVm:
    return PoolVm(None, vm_id, "u", "small", key, status)


DEFINED = {"format": 1, "name": "small", "size": 2, "template": TEMPLATE.to_json()}


@pytest.mark.parametrize(
    "the_spec, definition, vms, actions, boot, removed",
    [
        (spec(), None, [], ["boot 2 VM(s)", "write_definition"], 2, []),
        (spec(), DEFINED, [vm("a"), vm("b")], [], 0, []),
        (spec(), DEFINED, [vm("a")], ["boot 1 VM(s)"], 1, []),
        (spec(), DEFINED, [vm("a"), vm("b", key="old")], ["remove 1 VM(s): stale: its template changed", "boot 1 VM(s)"], 1, ["b"]),
        (spec(), DEFINED, [vm("a"), vm("b", "failed")], ["remove 1 VM(s): failed", "boot 1 VM(s)"], 1, ["b"]),
        (spec(), DEFINED, [vm("a"), vm("b", BOOTING)], ["remove 1 VM(s): failed", "boot 1 VM(s)"], 1, ["b"]),
        (spec(size=1), DEFINED, [vm("a"), vm("b")], ["remove 1 VM(s): beyond the pool's size", "write_definition"], 0, ["b"]),
        (spec(state="absent"), DEFINED, [vm("a"), vm("b", "failed")], ["remove 2 VM(s)", "remove_definition"], 0, ["a", "b"]),
        (spec(state="absent"), None, [], [], 0, []),
    ],
)
def test_plan_pool(the_spec: PoolSpec, definition: Any, vms: list[PoolVm], actions: list[str], boot: int, removed: list[str]) -> None:
    plan = plan_pool(the_spec, TEMPLATE if the_spec.state == "present" else None, definition, vms)
    assert plan.actions == actions and plan.boot == boot and [v.vm_id for v, _r in plan.remove] == removed
    assert plan.changed == bool(actions)


@pytest.mark.parametrize(
    "params, option",
    [
        ({"name": "Bad_Name"}, "name"),
        ({"name": "p", "size": -1}, "size"),
        ({"name": "p", "size": 33}, "size"),
        ({"name": "p", "state": "started"}, "state"),
        ({"name": "p", "image": "../x"}, "image"),
        ({"name": "p", "networks": [{"name": "hyper", "address": "10.88.0.5/24"}]}, "networks[0]"),
        ({"name": "p", "boot_timeout": 0}, "boot_timeout"),
    ],
)
def test_bad_pool_options_name_the_option(params: dict[str, Any], option: str) -> None:
    with pytest.raises(SpecError) as err:
        normalise_pool(params)
    assert option in err.value.message


# -- claim ---------------------------------------------------------------------------------------


def test_a_claim_takes_a_ready_vm_of_the_template_only(tmp_path: Path) -> None:
    other = pod_template(stored_pod(memory=256), ARGS, CHANNEL)
    client = Client(pool_dom("hyper-00000001", template=other), pool_dom("hyper-00000002", BOOTING, "running"), pool_dom("hyper-00000003"))
    choice = pool_claim.choose_start(client, str(tmp_path), stored_pod(), ARGS, CHANNEL, 3, 0)  # type: ignore[arg-type]
    assert choice.path == "pool" and choice.claim is not None and choice.claim.vm_id == "hyper-00000003"
    assert choice.result() == {"start": "pool", "start_reason": "VM hyper-00000003 of pool small"}
    choice.claim.release()


def test_two_claims_never_get_the_same_vm(tmp_path: Path) -> None:
    client = Client(pool_dom("hyper-00000001"), pool_dom("hyper-00000002"))
    first = pool_claim.take_ready(client, str(tmp_path), TEMPLATE.key)  # type: ignore[arg-type]
    second = pool_claim.take_ready(client, str(tmp_path), TEMPLATE.key)  # type: ignore[arg-type]
    third = pool_claim.take_ready(client, str(tmp_path), TEMPLATE.key)  # type: ignore[arg-type]
    assert first is not None and second is not None and third is None
    assert first.vm_id != second.vm_id
    first.release()
    second.release()


def test_a_vm_that_became_a_pod_meanwhile_is_not_claimed(tmp_path: Path) -> None:
    dom = pool_dom("hyper-00000001")
    client = Client(dom)
    vms = list_pool_vms(client)  # type: ignore[arg-type]
    dom.meta = {"format": 1, "name": "web", "spec": {"name": "web"}}  # another task's claim finished
    assert vms and pool_claim.take_ready(client, str(tmp_path), TEMPLATE.key) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "doms, needle",
    [
        ([], "no warm pool VM"),
        ([pool_dom("hyper-00000001", template=pod_template(stored_pod(vcpus=2), ARGS, CHANNEL))], "no pool of this pod's template"),
        ([pool_dom("hyper-00000001", READY, "running")], "pool small has no ready VM"),
    ],
)
def test_no_ready_vm_means_cold_with_the_reason(tmp_path: Path, doms: list[Dom], needle: str) -> None:
    choice = pool_claim.choose_start(Client(*doms), str(tmp_path), stored_pod(), ARGS, CHANNEL, 3, 0)  # type: ignore[arg-type]
    assert choice.claim is None and choice.path == "cold" and needle in choice.reason


def test_a_pool_that_cannot_be_read_means_cold(tmp_path: Path) -> None:
    class Broken(Client):
        def list_domains(self, prefix: str = "") -> list[Dom]:
            raise DomainNotFound("libvirt went away")

    choice = pool_claim.choose_start(Broken(), str(tmp_path), stored_pod(), ARGS, CHANNEL, 3, 0)  # type: ignore[arg-type]
    assert choice.path == "cold" and "could not be read" in choice.reason


def test_removal_spares_a_vm_a_claim_holds(tmp_path: Path) -> None:
    client = Client(pool_dom("hyper-00000001"), pool_dom("hyper-00000002"))
    vms = list_pool_vms(client)  # type: ignore[arg-type]
    with vm_lock(str(tmp_path), "hyper-00000001") as mine:
        assert mine
        assert remove_idle(client, str(tmp_path), vms[0]) is False  # type: ignore[arg-type]
        assert remove_idle(client, str(tmp_path), vms[1]) is True  # type: ignore[arg-type]
    assert client.destroyed == ["hyper-00000002"]
