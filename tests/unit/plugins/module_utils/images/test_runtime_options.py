# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A container's options in the OCI runtime config crun gets: each option where crun reads it, nothing else touched."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.bundle import DEFAULT_CAPABILITIES, runtime_config
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.runtime_options import HEALTH_ANNOTATION, apply_options, health_annotation
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.container_checks import normalise_options
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.container_options import ContainerOptions, Healthcheck

BASE: dict[str, Any] = {
    "ociVersion": "1.0.0",
    "process": {"args": ["sh"], "env": ["PATH=/bin"], "cwd": "/"},
    "root": {"path": "rootfs"},
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}, {"destination": "/tmp", "type": "bind", "source": "/x"}],
    "annotations": {"org.opencontainers.image.os": "linux"},
    "linux": {"resources": {"devices": [{"allow": False, "access": "rwm"}]}, "namespaces": [{"type": "pid"}]},
}


def config(**given: Any) -> dict[str, Any]:
    base = runtime_config(BASE, {"name": "app"}, hostname="pod")
    return apply_options(base, normalise_options(given, "containers[app]", str(given.pop("restart_policy", "never"))))


def test_no_options_change_nothing() -> None:
    base = runtime_config(BASE, {"name": "app"}, hostname="pod")
    before = copy.deepcopy(base)
    assert apply_options(base, ContainerOptions()) == before
    assert base == before  # pure


def test_resources() -> None:
    linux = config(cpus=0.2, memory="32m", pids_limit=16)["linux"]
    assert linux["resources"] == {
        "devices": [{"allow": False, "access": "rwm"}],
        "cpu": {"quota": 20000, "period": 100000},
        "memory": {"limit": 32 << 20, "swap": 32 << 20},
        "pids": {"limit": 16},
    }
    assert config(cpus=0.01)["linux"]["resources"]["cpu"]["quota"] == 1000  # the kernel's minimum quota is 1 ms


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"cap_drop": ["ALL"]}, []),
        ({"cap_drop": ["ALL"], "cap_add": ["NET_BIND_SERVICE"]}, ["CAP_NET_BIND_SERVICE"]),
        ({"cap_drop": ["CHOWN"]}, [c for c in DEFAULT_CAPABILITIES if c != "CAP_CHOWN"]),
        ({"cap_add": ["SYS_TIME"]}, [*DEFAULT_CAPABILITIES, "CAP_SYS_TIME"]),
    ],
)
def test_capabilities_in_every_set(given: dict[str, Any], expected: list[str]) -> None:
    caps = config(**given)["process"]["capabilities"]
    assert caps == {"bounding": expected, "effective": expected, "permitted": expected}


def test_hardening() -> None:
    out = config(read_only=True, no_new_privileges=True, ulimits=["nofile:1024:2048", "core:0:-1"])
    assert out["root"] == {"path": "rootfs", "readonly": True}
    assert out["process"]["noNewPrivileges"] is True
    assert out["process"]["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": (1 << 64) - 1},
    ]


def test_sysctls_ipc_in_the_spec_net_by_a_runtime_hook() -> None:
    out = config(sysctls={"kernel.shmmax": "4096", "net.ipv4.ip_forward": 1, "fs.mqueue.msg_max": "20"})
    assert out["linux"]["sysctl"] == {"fs.mqueue.msg_max": "20", "kernel.shmmax": "4096"}
    # crun refuses net.* without a network namespace of the container's own: the pod's is set before it starts.
    assert out["hooks"] == {"createRuntime": [{"path": "/bin/busybox", "args": ["sysctl", "-w", "net.ipv4.ip_forward=1"]}]}


def test_tmpfs_labels_hostname_annotation() -> None:
    out = config(tmpfs=["/tmp:size=8m", "/run"], labels={"team": "web", "org.opencontainers.image.os": "mine"})
    assert out["mounts"] == [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "noexec", "size=8m"]},
        {"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "noexec"]},
    ]
    assert out["annotations"] == {"org.opencontainers.image.os": "mine", "team": "web"}


def test_an_image_cannot_bring_its_own_health_annotation() -> None:
    base = runtime_config({**BASE, "annotations": {HEALTH_ANNOTATION: "1 1 1 1 0 none dHJ1ZQ=="}}, {"name": "app"}, hostname="pod")
    assert HEALTH_ANNOTATION not in apply_options(base, ContainerOptions(labels=(("a", "b"),)))["annotations"]


def test_health_annotation_is_what_the_guest_reads() -> None:
    check = Healthcheck(("/bin/sh", "-c", "echo 'a b' && exit 1", ""), 1.5, 30.0, 3, 0.25, "restart")
    text = health_annotation(check)
    words = text.split(" ")
    assert words[:6] == ["1", "1.5", "30", "3", "0.25", "restart"]
    assert [base64.b64decode(w).decode() if w != "-" else "" for w in words[6:]] == list(check.test)
    # The guest's sed takes [0-9A-Za-z+/=. -]*: nothing else may appear.
    assert set(text) <= set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+/=. -")
    out = config(healthcheck={"test": ["CMD", "true"], "interval": "2s"})
    assert out["annotations"][HEALTH_ANNOTATION] == "1 2 30 3 0 none dHJ1ZQ=="
