# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""hyper_pod's start from a warm pool (pod/engine.py's hook, pool/claim.py) against the scripted libvirt and
agent of test_pod/test_selfboot: the pool VM becomes the pod in place; a VM that fails is removed and the
pod boots cold; no pool means cold, with the reason."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import LibvirtFailure
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pool.engine import normalise_pool, pool_template
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pool.vms import pool_domain_spec, pool_metadata
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.domain_xml import render_domain_xml
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.pod import test_pod
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.pod.test_selfboot import sb  # noqa: F401  # pylint: disable=unused-import

POOL_VM = "hyper-0000beef"


class PoolClient(test_pod.FakeClient):
    """The scripted libvirt with what a claim uses: paused domains, live devices, a define over a running domain."""

    def __init__(self) -> None:
        super().__init__(console_lines=5)
        self.attach_error: Any = None
        self.define_error: Any = None
        self.paused: set[str] = set()

    def state(self, dom: test_pod.FakeDomain) -> str:
        return "paused" if dom.vm_name in self.paused else super().state(dom)

    def define(self, xml: str) -> test_pod.FakeDomain:
        new = test_pod.FakeDomain(xml)
        for dom in self.live():
            if dom.vm_name == new.vm_name:
                if self.define_error is not None:
                    raise self.define_error  # libvirt: the running domain gets this definition (persistent now)
                self.log.append(f"define {dom.vm_name} (over the running domain)")
                dom.meta, dom.title = new.meta, new.title
                return dom
        return super().define(xml)

    def attach_device(self, dom: test_pod.FakeDomain, xml: str, persistent: bool = True) -> None:
        if self.attach_error is not None:
            raise self.attach_error
        self.log.append(f"attach {dom.vm_name} persistent={persistent}")

    def xml_desc(self, dom: test_pod.FakeDomain) -> str:
        """The live XML as libvirt gives it: ports numbered; no device has an address here, so every port is free."""
        root = ET.fromstring(dom.xml)
        for index, port in enumerate(root.iterfind("devices/controller[@model='pcie-root-port']"), start=1):
            port.set("index", str(index))
        return ET.tostring(root, encoding="unicode")

    def set_title(self, dom: test_pod.FakeDomain, title: str, persistent: bool = True) -> None:
        dom.title = title

    def resume(self, dom: test_pod.FakeDomain) -> None:
        self.log.append(f"resume {dom.vm_name}")
        self.paused.discard(dom.vm_name)

    def destroy(self, dom: test_pod.FakeDomain) -> bool:
        self.paused.discard(dom.vm_name)
        if dom.meta and "pool" in dom.meta:  # transient: gone once stopped
            dom.defined = False
        return super().destroy(dom)


def add_pool_vm(h: test_pod.Harness, memory: int = 128) -> PoolClient:
    template = pool_template(normalise_pool({"name": "small", "memory": memory}), str(h.root))
    client = PoolClient()
    dom = test_pod.FakeDomain(render_domain_xml(pool_domain_spec(POOL_VM, "small", template, str(h.root))))
    dom.meta = pool_metadata("small", template, "ready")
    dom.active = True
    client.domains.append(dom)
    client.paused.add(POOL_VM)
    h.client = client
    return client


def test_a_pod_of_the_pools_template_takes_its_ready_vm_in_place(sb: test_pod.Harness) -> None:  # noqa: F811
    client = add_pool_vm(sb)
    result = sb.run(containers=[test_pod.SLEEPER])
    assert result["start"] == "pool", result["start_reason"]
    assert result["start_reason"] == f"VM {POOL_VM} of pool small"
    assert result["pod"]["vm_id"] == POOL_VM
    assert f"define {POOL_VM} (over the running domain)" in client.log and f"resume {POOL_VM}" in client.log
    attached = [e for e in client.log if e.startswith("attach")]
    assert attached and all(e.endswith("persistent=False") for e in attached)  # the definition has them already
    dom = client.lookup(POOL_VM)
    assert dom.meta["name"] == "pe-test-1" and "pool" not in dom.meta and dom.title == "pe-test-1"
    assert ["/usr/sbin/hyper-boot", "run"] in sb.agent.execs
    bring_up = next(e for e in sb.agent.execs if e[0] == "/bin/sh")
    assert bring_up[3:6] == ["sh", "pe-test-1", str(dom.meta["spec"]["log_size"])]  # hostname and log bound as argv
    assert [p["vm_id"] for p in sb.info()["pods"]] == [POOL_VM]


def test_a_pool_vm_that_fails_is_removed_and_the_pod_boots_cold(sb: test_pod.Harness) -> None:  # noqa: F811
    client = add_pool_vm(sb)
    client.attach_error = LibvirtFailure("attaching a device: no free slot")
    result = sb.run(containers=[test_pod.SLEEPER])
    assert result["start"] == "cold"
    assert POOL_VM in result["start_reason"] and "booted cold" in result["start_reason"]
    assert result["pod"]["vm_id"] != POOL_VM
    assert POOL_VM not in [d.vm_name for d in client.live()]
    assert [p["vm_id"] for p in sb.info()["pods"]] == [result["pod"]["vm_id"]]


def test_a_define_refused_over_the_pool_vm_means_cold_without_waiting_for_its_own_lock(sb: test_pod.Harness) -> None:  # noqa: F811
    client = add_pool_vm(sb)
    client.define_error = LibvirtFailure("defining a domain: domain already exists with another uuid")
    result = sb.run(containers=[test_pod.SLEEPER])
    assert result["start"] == "cold" and "another uuid" in result["start_reason"]
    assert POOL_VM not in [d.vm_name for d in client.live()] and result["pod"]["vm_id"] != POOL_VM


@pytest.mark.parametrize(
    "memory, options, needle",
    [
        (None, {}, "no warm pool VM on this host"),
        (256, {}, "no pool of this pod's template"),
        (128, {"kernel_args": "quiet"}, "kernel_args"),
    ],
)
def test_otherwise_the_pod_boots_cold_and_says_why(sb: test_pod.Harness, memory: Any, options: dict[str, Any], needle: str) -> None:  # noqa: F811
    client = add_pool_vm(sb, memory) if memory else None
    result = sb.run(containers=[test_pod.SLEEPER], **options)
    assert result["start"] == "cold" and needle in result["start_reason"]
    if client is not None:
        assert POOL_VM in client.paused  # untouched


def test_check_mode_and_a_pod_that_is_only_defined_claim_nothing(sb: test_pod.Harness, tmp_path: Path) -> None:  # noqa: F811
    client = add_pool_vm(sb)
    assert "start" not in sb.run(check_mode=True, containers=[test_pod.SLEEPER])
    assert "start" not in sb.run(state="present", containers=[test_pod.SLEEPER])
    assert POOL_VM in client.paused
