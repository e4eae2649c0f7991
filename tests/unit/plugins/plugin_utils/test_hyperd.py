# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""from_hyperd on pod files in hyperd's format (UserPod of hyperhq/hyperd types/types.proto; its examples/ and hack/pods/)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.spec import normalise_pod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.spec import normalise_services
from ansible_collections.hyper.pods.plugins.plugin_utils._convert import ConversionError
from ansible_collections.hyper.pods.plugins.plugin_utils._hyperd import from_hyperd

# Two containers sharing an empty volume and a host directory, with a resource block (hack/pods/with-volume.pod's shape).
WITH_VOLUME = """
{
  "id": "shared-volumes",
  "containers": [{
      "name": "writer",
      "image": "busybox",
      "command": ["/bin/sh", "-c", "echo hello > /data/greeting"],
      "volumes": [{"volume": "scratch", "path": "/data", "readOnly": false},
                  {"volume": "logs", "path": "/var/log/app", "readOnly": true}]
  }, {
      "name": "reader",
      "image": "busybox",
      "workdir": "/",
      "command": ["/bin/sh", "-c", "cat /data/greeting"],
      "volumes": [{"volume": "scratch", "path": "/data"}]
  }],
  "resource": {"vcpu": 2, "memory": 512},
  "files": [],
  "volumes": [{"name": "scratch", "source": "", "driver": ""},
              {"name": "logs", "source": "/srv/logs", "format": "vfs"}],
  "tty": true
}
"""

# Files injected from the pod's file list: raw, base64, a host file, a directory path (hack/pods/insert-file.pod's shape).
INSERT_FILE = """
{
  "id": "inject",
  "containers": [{
      "name": "files",
      "image": "busybox:latest",
      "command": ["/bin/sh", "-c", "ls -l /etc/app"],
      "files": [{"path": "/etc/app/", "filename": "app.conf", "perm": "0600"},
                {"path": "/etc/app/motd", "filename": "motd", "perm": "0644", "user": "1000", "group": "1000"},
                {"path": "/etc/app/resolv.conf", "filename": "resolver"}]
  }],
  "files": [{"name": "app.conf", "encoding": "raw", "content": "listen 8080\\n"},
            {"name": "motd", "encoding": "base64", "content": "d2VsY29tZQo="},
            {"name": "resolver", "encoding": "raw", "uri": "file:///etc/resolv.conf"}]
}
"""

# A service VIP with backends, DNS, port mappings with ranges, a pod restart policy, labels (hack/pods/service.pod,
# examples/port-mapping.pod and multi-container.pod's fields, keys in hyperd's mixed cases).
SERVICE = """
{
  "id": "frontend",
  "hostname": "frontend",
  "restartPolicy": "onFailure",
  "labels": {"tier": "web"},
  "dns": ["192.0.2.53"],
  "containers": [{
      "name": "web",
      "image": "busybox:1.36",
      "entrypoint": ["httpd"],
      "command": ["-f", "-p", "8080"],
      "envs": [{"env": "MODE", "value": "prod"}],
      "user": {"name": "www-data", "group": "www-data"},
      "stopSignal": "SIGINT"
  }, {
      "name": "tail",
      "image": "busybox:1.36",
      "command": ["sleep", "3600"],
      "restartPolicy": "always",
      "ports": [{"hostPort": 9090, "containerPort": 90, "protocol": "tcp"}]
  }],
  "services": [{"serviceip": "10.96.0.24", "serviceport": 80, "protocol": "TCP",
                "hosts": [{"hostip": "127.0.0.1", "hostport": 8080}]}],
  "portmappings": [{"containerport": "1300-1310", "hostport": "3000-3010", "protocol": "tcp"},
                   {"containerPort": "8080", "hostPort": "80"}],
  "type": "pod"
}
"""


def convert(text: str, **kwargs: Any) -> dict[str, Any]:
    options = from_hyperd(json.loads(text), **kwargs)
    normalise_pod({key: value for key, value in options.items() if key not in ("warnings", "services")})
    if "services" in options:
        normalise_services(options["services"], "present")
    return options


def test_with_volume() -> None:
    options = convert(WITH_VOLUME)
    warnings = options.pop("warnings")
    assert options == {
        "name": "shared-volumes",
        "vcpus": 2,
        "memory": 512,
        "volumes": [{"name": "shared-volumes-scratch", "size": "1G"}, {"name": "logs", "host_path": "/srv/logs"}],
        "containers": [
            {
                "name": "writer",
                "image": "busybox",
                "command": ["/bin/sh", "-c", "echo hello > /data/greeting"],
                "restart_policy": "never",
                "volumes": [{"name": "shared-volumes-scratch", "path": "/data"}, {"name": "logs", "path": "/var/log/app", "read_only": True}],
            },
            {
                "name": "reader",
                "image": "busybox",
                "command": ["/bin/sh", "-c", "cat /data/greeting"],
                "workdir": "/",
                "restart_policy": "never",
                "volumes": [{"name": "shared-volumes-scratch", "path": "/data"}],
            },
        ],
    }
    assert [w.split(":")[0] for w in warnings] == ["from_hyperd tty", "from_hyperd volumes[0]", "from_hyperd volumes[1]"]


def test_insert_file() -> None:
    options = convert(INSERT_FILE)
    assert "warnings" not in options
    assert options["containers"][0]["files"] == [
        {"path": "/etc/app/app.conf", "content": "listen 8080\n", "mode": "0600", "owner": "0:0"},
        {"path": "/etc/app/motd", "content": "welcome\n", "mode": "0644", "owner": "1000:1000"},
        {"path": "/etc/app/resolv.conf", "src": "/etc/resolv.conf", "mode": "0755", "owner": "0:0"},
    ]


def test_service_ports_and_policies() -> None:
    options = convert(SERVICE)
    assert options.pop("warnings") == ["from_hyperd type: is not needed: every hyper_pod is a pod"]
    web, tail = options.pop("containers")
    assert web == {
        "name": "web",
        "image": "busybox:1.36",
        "entrypoint": ["httpd"],
        "command": ["-f", "-p", "8080"],
        "env": {"MODE": "prod"},
        "user": "www-data:www-data",
        "restart_policy": "on-failure",
        "stop_signal": "SIGINT",
    }
    assert tail["restart_policy"] == "always"
    assert options == {
        "name": "frontend",
        "hostname": "frontend",
        "labels": {"tier": "web"},
        "dns": ["192.0.2.53"],
        "ports": [
            {"protocol": "tcp", "host_port": "3000-3010", "pod_port": "1300-1310"},
            {"protocol": "tcp", "host_port": 80, "pod_port": 8080},
            {"host_port": 9090, "pod_port": 90, "protocol": "tcp"},
        ],
        "services": [{"name": "service-0", "address": "10.96.0.24", "port": 80, "protocol": "tcp", "backends": [{"address": "127.0.0.1", "port": 8080}]}],
    }


def test_missing_container_name_is_made_from_the_image() -> None:
    options = from_hyperd({"id": "irc", "containers": [{"image": "docker.io/library/irssi:1", "user": {"name": "nobody"}, "command": ["sh"]}]})
    assert options["containers"][0]["name"] == "irssi"
    assert options["containers"][0]["user"] == "nobody"
    assert "hyper_pod calls it irssi" in options["warnings"][0]


def test_small_memory_is_raised_to_the_minimum() -> None:
    options = from_hyperd({"id": "tiny", "resource": {"vcpu": 1, "memory": 64}, "containers": [{"name": "c", "image": "busybox"}]})
    assert options["memory"] == 128
    assert "below hyper_pod's minimum" in options["warnings"][0]


def _pod(**fields: Any) -> dict[str, Any]:
    return {"id": "p", "containers": [{"name": "c", "image": "busybox"}], **fields}


@pytest.mark.parametrize(
    ("pod", "where", "why"),
    [
        (_pod(interfaces=[{"bridge": "hyper0", "ip": "192.168.123.2/24"}]), "interfaces", "not libvirt networks"),
        (_pod(portmappingWhiteLists={"internalNetworks": ["127.0.0.1/32"]}), "portmappingwhitelists", "open the ports"),
        (_pod(containers=[{"name": "c", "image": "busybox", "sysctl": {"net.ipv4.ip_forward": "1"}}]), "containers[0].sysctl", "no sysctl"),
        (_pod(containers=[{"name": "c", "image": "busybox", "user": {"name": "a", "additionalGroups": ["b"]}}]), "additionalGroups", "one group"),
        (_pod(volumes=[{"name": "v", "source": "/dev/sdb", "format": "raw"}]), "volumes[0].source", "cannot attach an image file"),
        (_pod(volumes=[{"name": "v", "source": "pool/img", "format": "rbd"}]), "volumes[0].format", "no network volumes"),
        (_pod(volumes=[{"name": "v", "source": "TMPDIR", "driver": "vfs"}]), "volumes[0].source", "absolute path"),
        (_pod(files=[{"name": "logo", "uri": "http://example.org/logo.png"}]), "files[0].uri", "hyper host only"),
        (_pod(files=[{"name": "bad", "encoding": "base64", "content": "not*base64"}]), "files[0].content", "not valid base64"),
        (_pod(files=[{"name": "bin", "encoding": "base64", "content": "/wA="}]), "files[0].content", "is binary"),
        (
            _pod(files=[], containers=[{"name": "c", "image": "busybox", "files": [{"path": "/x", "filename": "nope"}]}]),
            "containers[c].files[0].filename",
            "not in the pod's files",
        ),
        (_pod(containers=[{"name": "c", "image": "busybox", "volumes": [{"volume": "nope", "path": "/x"}]}]), "volumes[0].volume", "not in the pod's volumes"),
        (_pod(services=[{"serviceip": "10.0.0.1", "serviceport": 53, "protocol": "udp", "hosts": []}]), "services[0].protocol", "TCP only"),
        (_pod(restartPolicy="sometimes"), "restartPolicy", "never, always or onFailure"),
        (_pod(portmappings=[{"containerport": "80", "hostport": "eighty"}]), "portmappings[0].hostport", "not a port"),
        (_pod(frobnicate=1), "frobnicate", "is not a field from_hyperd knows"),
        ({"id": "Not_A_Name", "containers": [{"name": "c", "image": "busybox"}]}, "id", "pass name="),
        ({"id": "p", "containers": []}, "containers", "at least one container"),
        (_pod(tty=True), "tty", "strict=true"),
    ],
)
def test_refused(pod: dict[str, Any], where: str, why: str) -> None:
    with pytest.raises(ConversionError) as caught:
        from_hyperd(pod, strict=(why == "strict=true"))
    assert where in caught.value.where and why in str(caught.value)


def test_keys_differing_only_in_case_are_refused() -> None:
    with pytest.raises(ConversionError, match="given twice"):
        from_hyperd({"id": "p", "ID": "q", "containers": [{"name": "c", "image": "busybox"}]})
