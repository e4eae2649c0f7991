# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The hyper_pods inventory plugin against a fake libvirt: hosts, groups, filters, constructed, unsafe data, cache."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
from ansible.errors import AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import inventory_loader
from ansible.template import Templar

from ansible_collections.hyper.pods.plugins.inventory import hyper_pods
from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import AgentUnavailable, LibvirtFailure

PWNED = "/tmp/hyper-pods-unit-pwned"
EVIL = "{{ lookup('pipe', 'touch " + PWNED + "') }}"
URI = "qemu:///system"
URI2 = "qemu+ssh://root@host2/system"


class FakeDom:
    def __init__(self, vm_id: str, meta: Optional[dict[str, Any]], state: str) -> None:
        self.vm_id = vm_id
        self.meta = meta
        self.libvirt_state = state

    def name(self) -> str:
        return self.vm_id

    def UUIDString(self) -> str:  # libvirt's name
        return "00000000-0000-0000-0000-" + self.vm_id[-8:].rjust(12, "0")


class FakeClient:
    """What list_pods uses of LibvirtClient."""

    def __init__(self, uri: str, doms: list[FakeDom]) -> None:
        self.uri = uri
        self.doms = doms

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def list_domains(self, prefix: str = "") -> list[FakeDom]:
        return [d for d in self.doms if d.name().startswith(prefix)]

    def get_metadata(self, dom: FakeDom) -> Optional[dict[str, Any]]:
        return dom.meta

    def state(self, dom: FakeDom) -> str:
        return dom.libvirt_state

    def is_active(self, dom: FakeDom) -> bool:
        return dom.libvirt_state == "running"


def pod_dom(vm_id: str, name: str, containers: list[str], state: str = "running", labels: Optional[dict[str, str]] = None) -> FakeDom:
    spec = {
        "name": name,
        "hostname": name,
        "vcpus": 1,
        "memory": 128,
        "accelerator": "tcg",
        "guest": {"image": "/var/lib/hyper/images/default"},
        "kernel_args": "",
        "labels": labels or {},
        "containers": [
            {
                "name": c,
                "image": "oci:/images/oci:busybox",
                "image_ref": "oci:/images/oci:busybox",
                "digest": "sha256:" + "ab" * 32,
                "env": {"SECRET": "hunter2"},
                "restart_policy": "never",
            }
            for c in containers
        ],
    }
    return FakeDom(vm_id, {"format": 1, "name": name, "spec": spec, "spec_hash": "sha256:x"}, state)


def default_hosts() -> dict[str, list[FakeDom]]:
    return {
        URI: [
            pod_dom("hyper-00000001", "web-1", ["httpd", "sleeper"], labels={"tier": "web", "app": "shop"}),
            pod_dom("hyper-00000002", "db", ["pg"], state="shutoff", labels={"tier": "db"}),
            FakeDom("hyper-check-00000003", None, "running"),  # not a pod: no metadata
            FakeDom("other-vm", None, "running"),
        ]
    }


def new_plugin() -> Any:
    """The plugin as ansible's loader makes it: with its options (and the doc fragments') known to the config manager.

    The loader itself cannot find the collection here: pytest imported ``ansible_collections`` as a
    plain namespace package before ansible's collection finder could be installed.
    """
    load_name = "ansible_collections.hyper.pods.plugins.inventory.hyper_pods"
    inventory_loader._load_config_defs(load_name, hyper_pods, hyper_pods.__file__)  # pylint: disable=protected-access
    plugin = hyper_pods.InventoryModule()
    plugin._load_name = load_name  # pylint: disable=protected-access
    plugin.ansible_name = "hyper.pods.hyper_pods"
    plugin._redirected_names = ["hyper.pods.hyper_pods"]  # pylint: disable=protected-access
    return plugin


class Run:
    """Parses one config through the plugin with fake libvirt hosts; records every connection opened."""

    def __init__(self, tmp_path: Path, hosts: dict[str, list[FakeDom]]) -> None:
        self.tmp_path = tmp_path
        self.hosts = hosts
        self.opened: list[str] = []
        self.interfaces: Callable[[Any], object] = lambda dom: []
        self.warnings: list[str] = []

    def open_client(self, uri: str) -> FakeClient:
        self.opened.append(uri)
        if uri not in self.hosts:
            raise LibvirtFailure(f"cannot connect to libvirt at {uri}: no route to host (is libvirtd running?)")
        return FakeClient(uri, self.hosts[uri])

    def parse(self, config: dict[str, Any], cache: bool = True, name: str = "test.hyper_pods.yml") -> InventoryData:
        path = self.tmp_path / name
        path.write_text(json.dumps({"plugin": "hyper.pods.hyper_pods", **config}))
        plugin = new_plugin()
        plugin.open_client = self.open_client
        plugin.read_interfaces = self.interfaces
        plugin.display.warning = self.warnings.append  # type: ignore[method-assign]
        inventory = InventoryData()
        plugin.parse(inventory, DataLoader(), str(path), cache=cache)
        with contextlib.suppress(AttributeError):  # as InventoryManager.parse_source does: no cache, no _cache
            plugin.update_cache_if_changed()
        return inventory


def hosts_of(inventory: InventoryData, group: str = "hyper_pods") -> list[str]:
    return sorted(h.name for h in inventory.groups[group].get_hosts())


def host_vars(inventory: InventoryData, host: str) -> dict[str, Any]:
    return dict(inventory.get_host(host).get_vars())


def test_verify_file(tmp_path: Path) -> None:
    plugin = new_plugin()
    for name, ok in (("a.hyper_pods.yml", True), ("a.hyper_pods.yaml", True), ("a.yml", False), ("hyper_pods.yml", False)):
        (tmp_path / name).write_text("plugin: hyper.pods.hyper_pods\n")
        assert plugin.verify_file(str(tmp_path / name)) is ok, name
    assert plugin.verify_file(str(tmp_path / "missing.hyper_pods.yml")) is False


def test_container_hosts_vars_and_groups(tmp_path: Path) -> None:
    inventory = Run(tmp_path, default_hosts()).parse({})
    assert hosts_of(inventory) == ["db/pg", "web-1/httpd", "web-1/sleeper"]
    assert hosts_of(inventory, "pod_web_1") == ["web-1/httpd", "web-1/sleeper"]
    assert hosts_of(inventory, "pod_db") == ["db/pg"]
    assert inventory.groups["pod_web_1"] in inventory.groups["hyper_pods"].child_groups
    hv = host_vars(inventory, "web-1/httpd")
    assert hv["ansible_connection"] == "hyper.pods.hyper"
    assert hv["ansible_host"] == "web-1/httpd"
    assert hv["ansible_hyper_uri"] == URI
    assert hv["hyper_container"] == {
        "name": "httpd",
        "image": "oci:/images/oci:busybox",
        "image_ref": "oci:/images/oci:busybox",
        "digest": "sha256:" + "ab" * 32,
        "restart_policy": "never",
    }
    pod = hv["hyper_pod"]
    assert (pod["name"], pod["vm_id"], pod["state"], pod["uri"]) == ("web-1", "hyper-00000001", "running", URI)
    assert pod["uuid"].endswith("00000001")
    assert pod["labels"] == {"tier": "web", "app": "shop"}
    assert [c["name"] for c in pod["containers"]] == ["httpd", "sleeper"]
    assert host_vars(inventory, "db/pg")["hyper_pod"]["state"] == "stopped"
    assert "hunter2" not in json.dumps(hv), "container environments must not reach the inventory"


def test_pod_hosts(tmp_path: Path) -> None:
    inventory = Run(tmp_path, default_hosts()).parse({"hosts": "pod"})
    assert hosts_of(inventory) == ["db", "web-1"]
    hv = host_vars(inventory, "web-1")
    assert hv["ansible_host"] == "web-1"
    assert "hyper_container" not in hv
    assert hosts_of(inventory, "pod_web_1") == ["web-1"]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"filters": {"names": ["web-*"]}}, ["web-1"]),
        ({"filters": {"names": ["nope", "d?"]}}, ["db"]),
        ({"filters": {"labels": {"tier": "db"}}}, ["db"]),
        ({"filters": {"labels": {"tier": "web", "app": "shop"}}}, ["web-1"]),
        ({"filters": {"labels": {"tier": "web", "app": "other"}}}, []),
        ({"filters": {"labels": {"missing": ""}}}, []),
        ({"running_only": True}, ["web-1"]),
        ({"running_only": True, "filters": {"labels": {"tier": "db"}}}, []),
    ],
)
def test_filters(tmp_path: Path, config: dict[str, Any], expected: list[str]) -> None:
    inventory = Run(tmp_path, default_hosts()).parse({"hosts": "pod", **config})
    assert hosts_of(inventory) == expected


def test_several_uris_and_name_clashes(tmp_path: Path) -> None:
    hosts = default_hosts()
    hosts[URI2] = [pod_dom("hyper-0000000a", "web-1", ["other"]), pod_dom("hyper-0000000b", "cache", ["redis"])]
    run = Run(tmp_path, hosts)
    inventory = run.parse({"uris": [URI, URI2]})
    assert run.opened == [URI, URI2]
    assert hosts_of(inventory) == ["cache/redis", "db/pg", "web-1/httpd", "web-1/sleeper"]
    assert host_vars(inventory, "cache/redis")["ansible_hyper_uri"] == URI2
    assert host_vars(inventory, "web-1/httpd")["ansible_hyper_uri"] == URI
    assert any("web-1" in w and URI2 in w for w in run.warnings), run.warnings


def test_two_vms_claiming_one_pod_are_skipped(tmp_path: Path) -> None:
    hosts = default_hosts()
    hosts[URI].append(pod_dom("hyper-00000009", "web-1", ["httpd"]))
    run = Run(tmp_path, hosts)
    inventory = run.parse({"hosts": "pod"})
    assert hosts_of(inventory) == ["db"]
    assert any("hyper-00000001" in w and "hyper-00000009" in w for w in run.warnings), run.warnings


def test_invalid_stored_names_are_skipped(tmp_path: Path) -> None:
    hosts = {URI: [pod_dom("hyper-00000001", "{{ 7 * 7 }}", ["c"]), pod_dom("hyper-00000002", "ok", ["{{ x }}"]), pod_dom("hyper-00000003", "good", ["c"])]}
    run = Run(tmp_path, hosts)
    inventory = run.parse({})
    assert hosts_of(inventory) == ["good/c"]
    assert len(run.warnings) == 2 and all("skipping domain" in w for w in run.warnings), run.warnings


def test_unreachable_uri_fails_naming_it(tmp_path: Path) -> None:
    with pytest.raises(AnsibleParserError, match=r"qemu\+ssh://nowhere/system.*no route to host"):
        Run(tmp_path, default_hosts()).parse({"uris": [URI, "qemu+ssh://nowhere/system"]})


def test_constructed_groups_keyed_groups_compose(tmp_path: Path) -> None:
    config = {
        "groups": {"running": "hyper_pod.state == 'running'", "httpd": "hyper_container.name == 'httpd'"},
        "keyed_groups": [{"key": "hyper_pod.labels", "prefix": "label"}, {"key": "hyper_pod.state", "prefix": "state"}],
        "compose": {"pod_memory": "hyper_pod.memory * 2", "ansible_python_interpreter": "'/usr/bin/python3'"},
        "strict": True,
    }
    inventory = Run(tmp_path, default_hosts()).parse(config)
    assert hosts_of(inventory, "running") == ["web-1/httpd", "web-1/sleeper"]
    assert hosts_of(inventory, "httpd") == ["web-1/httpd"]
    assert hosts_of(inventory, "label_tier_web") == ["web-1/httpd", "web-1/sleeper"]
    assert hosts_of(inventory, "label_app_shop") == ["web-1/httpd", "web-1/sleeper"]
    assert hosts_of(inventory, "label_tier_db") == ["db/pg"]
    assert hosts_of(inventory, "state_stopped") == ["db/pg"]
    hv = host_vars(inventory, "db/pg")
    assert hv["pod_memory"] == 256
    assert hv["ansible_python_interpreter"] == "/usr/bin/python3"


def test_values_from_metadata_are_never_templated(tmp_path: Path) -> None:
    if os.path.exists(PWNED):
        os.unlink(PWNED)
    hosts = {URI: [pod_dom("hyper-00000001", "evil", ["c"], labels={"x": EVIL})]}
    hosts[URI][0].meta["spec"]["containers"][0]["image"] = EVIL  # type: ignore[index]
    config = {"compose": {"copied": "hyper_pod.labels.x"}, "keyed_groups": [{"key": "hyper_pod.labels.x", "prefix": "k"}], "strict": True}
    inventory = Run(tmp_path, hosts).parse(config)
    hv = host_vars(inventory, "evil/c")
    templar = Templar(loader=DataLoader(), variables=hv)
    from ansible.template import trust_as_template  # pylint: disable=import-outside-toplevel

    for expression in ("hyper_pod.labels.x", "hyper_container.image", "copied", "hyper_pod.containers[0].image"):
        assert templar.template(trust_as_template("{{ " + expression + " }}")) == EVIL, expression
    # The stored string itself, templated directly, stays as it is.
    assert templar.template(hv["hyper_pod"]["labels"]["x"]) == EVIL
    assert templar.template(hv["copied"]) == EVIL
    assert not os.path.exists(PWNED), "a value from the domain metadata was templated"


def test_cache_is_used_and_refreshed(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    config = {"cache": True, "cache_plugin": "jsonfile", "cache_connection": str(cache_dir), "cache_timeout": 600}
    run = Run(tmp_path, default_hosts())
    assert hosts_of(run.parse(config)) == ["db/pg", "web-1/httpd", "web-1/sleeper"]
    assert run.opened == [URI]
    assert list(cache_dir.iterdir()), "the cache was not written"
    assert "hunter2" not in "".join(p.read_text() for p in cache_dir.iterdir())

    # From the cache: libvirt is not asked, even though the pods changed meanwhile.
    run.hosts[URI] = [pod_dom("hyper-00000005", "new", ["c"])]
    inventory = run.parse(config)
    assert run.opened == [URI]
    assert hosts_of(inventory) == ["db/pg", "web-1/httpd", "web-1/sleeper"]
    assert host_vars(inventory, "web-1/httpd")["hyper_pod"]["labels"]["app"] == "shop"

    # cache=False (--flush-cache, refresh_inventory): libvirt is read and the cache updated.
    assert hosts_of(run.parse(config, cache=False)) == ["new/c"]
    assert run.opened == [URI, URI]
    assert hosts_of(run.parse(config)) == ["new/c"]
    assert run.opened == [URI, URI]


def test_cache_off_reads_libvirt_every_time(tmp_path: Path) -> None:
    run = Run(tmp_path, default_hosts())
    run.parse({})
    run.parse({})
    assert run.opened == [URI, URI]


def test_agent_addresses(tmp_path: Path) -> None:
    interfaces = [
        {"name": "lo", "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8}, {"ip-address-type": "ipv6", "ip-address": "::1"}]},
        {"name": "eth0", "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "10.0.0.5", "prefix": 24}]},
    ]
    run = Run(tmp_path, default_hosts())
    asked: list[str] = []

    def read_interfaces(dom: Any) -> object:
        asked.append(dom.name())
        return interfaces

    run.interfaces = read_interfaces
    inventory = run.parse({"hosts": "pod", "agent_addresses": True, "compose": {"ansible_host": "hyper_addresses[0]"}})
    assert asked == ["hyper-00000001"], "only running pods are asked"
    hv = host_vars(inventory, "web-1")
    assert hv["hyper_pod"]["addresses"] == [{"interface": "eth0", "address": "10.0.0.5", "family": "ipv4", "prefix": 24}]
    assert hv["hyper_addresses"] == ["10.0.0.5"]
    assert hv["ansible_host"] == "10.0.0.5"
    assert host_vars(inventory, "db")["hyper_addresses"] == []


def test_agent_addresses_guest_not_answering(tmp_path: Path) -> None:
    run = Run(tmp_path, default_hosts())

    def no_agent(dom: Any) -> object:
        raise AgentUnavailable("hyper-00000001: guest agent is not connected")

    run.interfaces = no_agent
    inventory = run.parse({"hosts": "pod", "agent_addresses": True})
    assert host_vars(inventory, "web-1")["hyper_addresses"] == []
    assert any("web-1" in w and "not connected" in w for w in run.warnings), run.warnings


def test_without_agent_addresses_there_is_no_address_var(tmp_path: Path) -> None:
    inventory = Run(tmp_path, default_hosts()).parse({"hosts": "pod"})
    assert "hyper_addresses" not in host_vars(inventory, "web-1")
    assert "addresses" not in host_vars(inventory, "web-1")["hyper_pod"]
