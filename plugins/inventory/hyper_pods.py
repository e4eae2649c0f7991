# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: hyper_pods
short_description: Hyper pods and their containers as inventory hosts
version_added: 0.1.0
description:
  - Lists the hyper pods of one or more libvirt hosts (the persistent domains that M(hyper.pods.hyper_pod) defines)
    and adds one inventory host per container (V(pod/container)) or per pod (V(pod)).
  - Each host gets the variables the connection plugin C(hyper.pods.hyper) needs to reach it
    (C(ansible_connection), C(ansible_host), C(ansible_hyper_uri)), and C(hyper_pod) (and C(hyper_container))
    describing it.
  - Every value read from a domain's metadata or from the guest is marked unsafe, so Ansible never templates
    it, whatever it contains.
  - Uses a YAML configuration file whose name ends with C(.hyper_pods.yml) or C(.hyper_pods.yaml).
author:
  - hyper.pods developers (@hyper-pods)
extends_documentation_fragment:
  - constructed
  - inventory_cache
requirements:
  - The Python libvirt binding (C(libvirt-python) or C(python3-libvirt)) on the controller.
options:
  plugin:
    description: Marks the file as a configuration of this plugin.
    required: true
    type: str
    choices: [hyper.pods.hyper_pods]
  uris:
    description:
      - The libvirt URIs to list pods from, for example V(qemu:///system) on the controller or
        V(qemu+ssh://root@host1/system) for a remote hyper host.
      - A pod name found on two URIs is added once, from the first URI, with a warning.
    type: list
    elements: str
    default: [qemu:///system]
  filters:
    description: Which pods to add. A pod must pass every filter given.
    type: dict
    default: {}
    suboptions:
      names:
        description: Shell-style patterns (V(web-*)); the pod name must match one of them. All names when empty.
        type: list
        elements: str
        default: []
      labels:
        description: Labels the pod must have, each with exactly this value.
        type: dict
        default: {}
  hosts:
    description:
      - V(container) adds one host per container, named V(pod/container).
      - V(pod) adds one host per pod, named after the pod; commands then run in the guest VM itself.
    type: str
    choices: [container, pod]
    default: container
  running_only:
    description: Add only pods whose VM is running.
    type: bool
    default: false
  agent_addresses:
    description:
      - Ask the guest agent of each running pod for its network addresses (C(guest-network-get-interfaces)) and
        put them, loopback left out, in C(hyper_pod.addresses) and C(hyper_addresses).
      - A pod on a network (O(hyper.pods.hyper_pod#module:networks), the host role's V(hyper) by default) reports its
        address there, by DHCP or static; a pod with V(networks=none) has none. The addresses come from the guest, so
        they are marked unsafe like every other value from it.
      - To reach a pod over the network rather than through the agent, set C(ansible_host) and C(ansible_connection)
        with O(compose); the pods' network is a NATed bridge of the hyper host, reached from that host (or through
        O(hyper.pods.hyper_pod#module:ports) mappings).
      - A guest that does not answer gets an empty list and a warning.
    type: bool
    default: false
notes:
  - "Host variables: C(ansible_connection) is V(hyper.pods.hyper), C(ansible_host) the host name (V(pod/container) or
    V(pod)), C(ansible_hyper_uri) the libvirt URI of the pod. C(hyper_pod) holds C(name), C(vm_id), C(uuid), C(uri),
    C(state) (V(running), V(stopped), ...), C(hostname), C(vcpus), C(memory), C(labels), C(containers) (each with
    C(name), C(image), C(image_ref), C(digest), C(restart_policy)) and, with O(agent_addresses), C(addresses).
    C(hyper_container) is the host's container (container hosts only). Container environments are never exposed
    (they may hold secrets)."
  - "Groups: V(hyper_pods) holds every host; V(pod_<name>) the hosts of one pod (characters other than letters,
    digits and V(_) become V(_)). O(groups) and O(keyed_groups) add more."
  - Pods whose stored name or container names are not valid pod and container names are skipped with a warning.
seealso:
  - module: hyper.pods.hyper_pod
  - module: hyper.pods.hyper_pod_info
"""

EXAMPLES = r"""
# pods.hyper_pods.yml: every container of every pod on this host
plugin: hyper.pods.hyper_pods

# web.hyper_pods.yml: the running pods labelled tier=web on two hosts, one host per pod,
# grouped by the app label, cached for ten minutes
plugin: hyper.pods.hyper_pods
uris:
  - qemu+ssh://root@host1/system
  - qemu+ssh://root@host2/system
filters:
  names: ["web-*"]
  labels:
    tier: web
hosts: pod
running_only: true
keyed_groups:
  - key: hyper_pod.labels.app | default('none')
    prefix: app
groups:
  big: hyper_pod.memory >= 512
compose:
  ansible_python_interpreter: "'/usr/bin/python3'"
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: /tmp/hyper_pods_cache
cache_timeout: 600
"""

import fnmatch  # noqa: E402
import re  # noqa: E402
from typing import Any, Callable, Mapping, Optional  # noqa: E402

from ansible.errors import AnsibleParserError  # noqa: E402
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable  # noqa: E402
from ansible.utils.unsafe_proxy import wrap_var  # noqa: E402

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import GuestAgent, LibvirtAgentTransport  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.layout import CONTAINER_NAME  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.names import POD_NAME  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.store import list_pods  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import Domain, LibvirtClient  # noqa: E402
from ansible_collections.hyper.pods.plugins.plugin_utils._adapter import inventory_error  # noqa: E402

CONNECTION = "hyper.pods.hyper"
ALL_GROUP = "hyper_pods"
# Only these container fields reach the inventory: never env (secrets), nothing the connection does not need.
CONTAINER_FIELDS = ("name", "image", "image_ref", "digest", "restart_policy")
_GROUP_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
# One guest-network-get-interfaces round trip, in whole seconds.
AGENT_TIMEOUT = 5


def pod_group(name: str) -> str:
    return "pod_" + _GROUP_UNSAFE.sub("_", name)


def is_loopback(interface: Mapping[str, Any], address: str) -> bool:
    return interface.get("name") == "lo" or address.startswith("127.") or address == "::1"


def guest_addresses(interfaces: object) -> list[dict[str, Any]]:
    """The non-loopback addresses of a ``guest-network-get-interfaces`` reply."""
    addresses: list[dict[str, Any]] = []
    if not isinstance(interfaces, list):
        return addresses
    for interface in interfaces:
        if not isinstance(interface, Mapping):
            continue
        for entry in interface.get("ip-addresses") or []:
            if not isinstance(entry, Mapping):
                continue
            address = str(entry.get("ip-address") or "")
            if not address or is_loopback(interface, address):
                continue
            addresses.append(
                {
                    "interface": str(interface.get("name") or ""),
                    "address": address,
                    "family": str(entry.get("ip-address-type") or ""),
                    "prefix": entry.get("prefix"),
                }
            )
    return addresses


def pod_record(uri: str, vm_id: str, uuid: str, state: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """What the inventory keeps (and caches) of a pod: plain JSON data, no container environments."""
    containers = [c for c in spec.get("containers") or [] if isinstance(c, Mapping)]
    labels = spec.get("labels")
    return {
        "name": spec.get("name"),
        "vm_id": vm_id,
        "uuid": uuid,
        "uri": uri,
        "state": state,
        "hostname": spec.get("hostname"),
        "vcpus": spec.get("vcpus"),
        "memory": spec.get("memory"),
        "labels": dict(labels) if isinstance(labels, Mapping) else {},
        "containers": [{key: c.get(key) for key in CONTAINER_FIELDS} for c in containers],
    }


def bad_names(record: Mapping[str, Any]) -> Optional[str]:
    """Why a pod's names cannot become host and group names, or None when they can."""
    name = record.get("name")
    if not isinstance(name, str) or not POD_NAME.fullmatch(name):
        return f"pod name {name!r} is not a valid pod name"
    for container in record["containers"]:
        cname = container.get("name")
        if not isinstance(cname, str) or not CONTAINER_NAME.fullmatch(cname):
            return f"container name {cname!r} is not a valid container name"
    return None


def matches(record: Mapping[str, Any], names: list[str], labels: Mapping[str, Any], running_only: bool) -> bool:
    if running_only and record["state"] != "running":
        return False
    if names and not any(fnmatch.fnmatchcase(str(record["name"]), pattern) for pattern in names):
        return False
    return all(record["labels"].get(key) == str(value) for key, value in labels.items())


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):  # type: ignore[misc]
    NAME = "hyper.pods.hyper_pods"

    # Tests replace these to run without libvirt.
    open_client: Callable[[str], LibvirtClient] = staticmethod(LibvirtClient.open)  # type: ignore[assignment]

    @staticmethod
    def read_interfaces(dom: Domain) -> object:
        agent = GuestAgent(LibvirtAgentTransport(dom), call_timeout=AGENT_TIMEOUT)
        return agent.command("guest-network-get-interfaces")

    def verify_file(self, path: str) -> bool:
        return bool(super().verify_file(path)) and path.endswith((".hyper_pods.yml", ".hyper_pods.yaml"))

    # -- reading libvirt -----------------------------------------------------------------------

    def _fetch(self) -> list[dict[str, Any]]:
        """Every pod that passes the filters, as pod_record dicts, in URI order then name order."""
        filters = self.get_option("filters") or {}
        names = list(filters.get("names") or [])
        labels = dict(filters.get("labels") or {})
        running_only = bool(self.get_option("running_only"))
        want_addresses = bool(self.get_option("agent_addresses"))
        records: list[dict[str, Any]] = []
        for uri in self.get_option("uris") or []:
            try:
                with self.open_client(uri) as client:
                    for found in list_pods(client):
                        cur = found.current
                        record = pod_record(uri, cur.vm_id, cur.uuid, cur.state, cur.spec)
                        if not matches(record, names, labels, running_only):
                            continue
                        if want_addresses:
                            record["addresses"] = self._addresses(found.dom, record) if cur.running else []
                        records.append(record)
            except HyperError as err:
                raise inventory_error(err, f"hyper_pods: listing the pods at {uri} failed") from None
        return records

    def _addresses(self, dom: Domain, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        try:
            return guest_addresses(self.read_interfaces(dom))
        except HyperError as err:
            self.display.warning(f"hyper_pods: pod {record['name']} ({record['vm_id']} at {record['uri']}): no addresses from the guest agent: {err}")
            return []

    # -- building the inventory ----------------------------------------------------------------

    def _data(self) -> Any:
        """The inventory parse() was given."""
        if self.inventory is None:
            raise AnsibleParserError("hyper_pods: parse() was not called")
        return self.inventory

    def _populate(self, records: list[dict[str, Any]]) -> None:
        inventory = self._data()
        strict = bool(self.get_option("strict"))
        per_container = self.get_option("hosts") == "container"
        inventory.add_group(ALL_GROUP)
        seen: dict[str, str] = {}
        duplicates = self._duplicates(records)
        for record in records:
            problem = bad_names(record)
            name = str(record["name"])
            if problem is not None:
                self.display.warning(f"hyper_pods: skipping domain {record['vm_id']} at {record['uri']}: {problem}")
                continue
            if (record["uri"], name) in duplicates:
                self.display.warning(f"hyper_pods: skipping pod {name} at {record['uri']}: several VMs claim it ({duplicates[(record['uri'], name)]})")
                continue
            if name in seen:
                self.display.warning(f"hyper_pods: pod {name} at {record['uri']} is also at {seen[name]}; keeping the one at {seen[name]}")
                continue
            seen[name] = str(record["uri"])
            # Everything below came from the domain metadata or the guest: never a template.
            pod = wrap_var(record)
            group = inventory.add_group(pod_group(name))
            inventory.add_child(ALL_GROUP, group)
            if per_container:
                for container in pod["containers"]:
                    host = wrap_var(f"{name}/{container['name']}")
                    self._add_host(host, group, pod, container, strict)
            else:
                self._add_host(wrap_var(name), group, pod, None, strict)

    @staticmethod
    def _duplicates(records: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
        vm_ids: dict[tuple[str, str], list[str]] = {}
        for record in records:
            vm_ids.setdefault((str(record["uri"]), str(record["name"])), []).append(str(record["vm_id"]))
        return {key: ", ".join(ids) for key, ids in vm_ids.items() if len(ids) > 1}

    def _add_host(self, host: str, group: str, pod: Mapping[str, Any], container: Optional[Mapping[str, Any]], strict: bool) -> None:
        inventory = self._data()
        inventory.add_host(host, group=group)
        hostvars: dict[str, Any] = {
            "ansible_connection": CONNECTION,
            "ansible_host": host,
            "ansible_hyper_uri": pod["uri"],
            "hyper_pod": pod,
        }
        if container is not None:
            hostvars["hyper_container"] = container
        if "addresses" in pod:
            hostvars["hyper_addresses"] = [a["address"] for a in pod["addresses"]]
        for key, value in hostvars.items():
            inventory.set_variable(host, key, wrap_var(value))
        self._set_composite_vars(self.get_option("compose"), hostvars, host, strict=strict)
        self._add_host_to_composed_groups(self.get_option("groups"), hostvars, host, strict=strict)
        self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, host, strict=strict)

    def parse(self, inventory: Any, loader: Any, path: str, cache: bool = True) -> None:
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        cache_key = self.get_cache_key(path)
        use_cache = bool(self.get_option("cache"))
        records: Optional[list[dict[str, Any]]] = None
        update_cache = use_cache and not cache  # --flush-cache / refresh_inventory: read libvirt, then store
        if use_cache and cache:
            try:
                records = self._cache[cache_key]
            except KeyError:
                update_cache = True
        if records is None:
            records = self._fetch()
        if update_cache:
            self._cache[cache_key] = records
        self._populate(records)
