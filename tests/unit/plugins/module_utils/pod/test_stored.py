# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The typed stored spec: every spec this collection writes reads back to the same JSON, and bad metadata is a clear error."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.spec import normalise_pod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredPod, StoredSpecError, spec_hash

GUEST = {"image": "default", "kernel": "/k", "initrd": "/i", "initrd_sha256": "ab" * 32}
WEB = {"name": "web", "image": "docker://busybox:1.36", "command": ["httpd", "-f"], "env": {"A": "1"}}

CASES: dict[str, dict[str, Any]] = {
    "minimal": {"name": "p1", "containers": [WEB]},
    "everything": {
        "name": "p2",
        "hostname": "p2.example",
        "vcpus": 2,
        "memory": 256,
        "labels": {"team": "web", "tier": "front"},
        "kernel_args": "quiet",
        "containers": [
            {
                **WEB,
                "workdir": "/srv",
                "user": "1000:1000",
                "restart_policy": "always",
                "stop_signal": "INT",
                "stop_timeout": 3,
                "volumes": [{"name": "data", "path": "/data", "read_only": True}],
                "files": [{"path": "/etc/app.conf", "content": "x=1\n", "mode": "0600", "owner": "0:0"}],
            },
            {"name": "sleeper", "image": "oci:/srv/images:tools", "entrypoint": [], "command": None},
        ],
        "volumes": [{"name": "data", "size": "64M"}, {"name": "share", "host_path": "/srv/share"}],
        "networks": [{"name": "hyper", "address": "10.88.0.5/24"}],
        "ports": [{"host_port": 8080, "pod_port": 80}, {"host_port": "9000-9001", "protocol": "udp", "host_ip": "192.0.2.1"}],
        "dns": ["10.88.0.1"],
        "dns_search": ["example.com"],
        "dns_options": ["ndots:2"],
    },
    "isolated": {"name": "p3", "networks": "none", "containers": []},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_round_trip(case: str) -> None:
    spec, _user_set = normalise_pod(CASES[case])
    stored = spec.to_stored(accelerator="tcg", guest=GUEST, digests={"web": "sha256:" + "1" * 64})
    pod = StoredPod.from_json(stored)
    assert pod.to_json() == stored
    assert spec_hash(pod.to_json()) == spec_hash(stored)


def test_typed_access() -> None:
    spec, _user_set = normalise_pod(CASES["everything"])
    pod = StoredPod.from_json(spec.to_stored(accelerator="tcg", guest=GUEST, digests={}))
    web = pod.container("web")
    assert web is not None and web.env == (("A", "1"),) and web.volumes[0].read_only
    assert [v.name for v in pod.disk_volumes] == ["data"] and [v.name for v in pod.host_volumes] == ["share"]
    assert pod.ports[1].host_port == (9000, 9001) and pod.networks[0].address == "10.88.0.5/24"
    assert pod.dns.search == ("example.com",) and pod.guest.initrd_sha256 == "ab" * 32


def test_older_specs_get_their_defaults() -> None:
    """A spec from before networks, ports, dns and volumes existed still reads."""
    pod = StoredPod.from_json({"name": "old", "containers": [{"name": "c", "image": "busybox"}], "guest": GUEST, "vcpus": 1, "memory": 128})
    assert pod.networks == () and pod.ports == () and pod.volumes == () and pod.dns.servers == ()
    assert pod.containers[0].restart_policy == "never" and pod.containers[0].stop_timeout == 10


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("text", "spec is str, not an object"),
        ({"containers": []}, "name is missing"),
        ({"name": "p", "vcpus": "2"}, "vcpus is str, not int"),
        ({"name": "p", "vcpus": True}, "vcpus is bool, not int"),
        ({"name": "p", "containers": [{"name": "c"}]}, r"containers\[c\].image is missing"),
        ({"name": "p", "containers": [{"name": "c", "image": "i", "command": "ls"}]}, r"containers\[c\].command is not a list of strings"),
        ({"name": "p", "containers": [{"name": "c", "image": "i", "env": {"A": 1}}]}, r"containers\[c\].env is not a mapping of strings"),
        ({"name": "p", "ports": [{"host_port": [1], "pod_port": [1, 1]}]}, r"ports\[0\].host_port is not a \[low, high\] pair"),
        ({"name": "p", "volumes": [{"name": "v", "kind": "nfs"}]}, r"volumes\[0\].kind is 'nfs'"),
        ({"name": "p", "labels": {"a": 1}}, "labels is not a mapping of strings"),
    ],
)
def test_bad_metadata_is_a_clear_error(spec: Any, message: str) -> None:
    with pytest.raises(StoredSpecError, match=message):
        StoredPod.from_json(spec)
