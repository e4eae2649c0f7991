# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-container options: docker's forms accepted and normalised, every bad value named, the stored form round-trips."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.container_checks import check_pod_limits, normalise_options, parse_duration, parse_memory
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.container_options import (
    CAPABILITIES,
    ContainerOptions,
    Healthcheck,
    TmpfsMount,
    Ulimit,
    capability_set,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.spec import normalise_pod
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredContainer, StoredPod, StoredSpecError

MIB = 1 << 20
W = "containers[app]"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (32, 32 * MIB),
        ("32", 32 * MIB),
        (0.5 * 1024, 512 * MIB),
        ("64m", 64 * MIB),
        ("64M", 64 * MIB),
        ("64MB", 64 * MIB),
        ("64MiB", 64 * MIB),
        ("1g", 1 << 30),
        ("8192k", 8 * MIB),
        ("33554432b", 32 * MIB),
        (" 1.5g ", int(1.5 * (1 << 30))),
    ],
)
def test_memory_forms(value: Any, expected: int) -> None:
    assert parse_memory(value, "m") == expected


@pytest.mark.parametrize("value", [5, "5m", "lots", "-1", "1x", True, None, [], "6291455b", "2t", float("nan")])
def test_bad_memory_is_named(value: Any) -> None:
    with pytest.raises(SpecError, match=r"option m="):
        parse_memory(value, "m")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(30, 30.0), ("30", 30.0), ("30s", 30.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0), ("1.5s", 1.5), (0.004, 0.0)],
)
def test_duration_forms(value: Any, expected: float) -> None:
    assert parse_duration(value, "d", 0.0, 86400.0) == expected


@pytest.mark.parametrize("value", ["soon", "1d", "s", "1m 30s", "-1", True, None, [], 86401, "25h"])
def test_bad_durations_are_named(value: Any) -> None:
    with pytest.raises(SpecError, match=r"option d="):
        parse_duration(value, "d", 0.0, 86400.0)


DEFAULT = ("CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW")


@pytest.mark.parametrize(
    ("add", "drop", "expected"),
    [
        ((), (), list(DEFAULT)),
        (("CAP_SYS_TIME",), (), [*DEFAULT, "CAP_SYS_TIME"]),
        ((), ("CAP_NET_RAW",), ["CAP_CHOWN", "CAP_KILL"]),
        ((), ("ALL",), []),
        (("CAP_CHOWN",), ("ALL",), ["CAP_CHOWN"]),
        (("ALL",), (), list(CAPABILITIES)),
        (("ALL",), ("CAP_SYS_ADMIN",), [c for c in CAPABILITIES if c != "CAP_SYS_ADMIN"]),
    ],
)
def test_capability_set_is_dockers(add: tuple[str, ...], drop: tuple[str, ...], expected: list[str]) -> None:
    assert capability_set(DEFAULT, add, drop) == expected


GOOD: list[tuple[dict[str, Any], ContainerOptions]] = [
    ({}, ContainerOptions()),
    ({"cpus": 0.2}, ContainerOptions(cpus=0.2)),
    ({"cpus": "1.5"}, ContainerOptions(cpus=1.5)),
    ({"memory": "64m", "pids_limit": 100}, ContainerOptions(memory=64 * MIB, pids_limit=100)),
    (
        {"cap_add": ["net_admin", "CAP_SYS_TIME", "NET_ADMIN"], "cap_drop": ["all"]},
        ContainerOptions(cap_add=("CAP_NET_ADMIN", "CAP_SYS_TIME"), cap_drop=("ALL",)),
    ),
    ({"read_only": True, "no_new_privileges": False}, ContainerOptions(read_only=True)),
    ({"ulimits": ["nofile:1024:2048", "core:0"]}, ContainerOptions(ulimits=(Ulimit("nofile", 1024, 2048), Ulimit("core", 0, 0)))),
    ({"ulimits": [{"name": "NPROC", "soft": 10, "hard": "unlimited"}]}, ContainerOptions(ulimits=(Ulimit("nproc", 10, -1),))),
    ({"ulimits": {"memlock": "-1:-1"}}, ContainerOptions(ulimits=(Ulimit("memlock", -1, -1),))),
    ({"sysctls": {"net/ipv4/ip_forward": 1, "kernel.shmmax": "65536"}}, ContainerOptions(sysctls=(("kernel.shmmax", "65536"), ("net.ipv4.ip_forward", "1")))),
    (
        {"sysctls": {"fs.mqueue.msg_max": "20", "kernel.sem": "250 32000 32 128"}},
        ContainerOptions(sysctls=(("fs.mqueue.msg_max", "20"), ("kernel.sem", "250 32000 32 128"))),
    ),
    (
        {"tmpfs": ["/run", "/tmp:size=64m,exec"]},
        ContainerOptions(tmpfs=(TmpfsMount("/run", ("nosuid", "nodev", "noexec")), TmpfsMount("/tmp", ("nosuid", "nodev", "exec", "size=64m")))),
    ),
    (
        {"tmpfs": [{"path": "/cache/", "options": ["ro", "mode=0700"]}]},
        ContainerOptions(tmpfs=(TmpfsMount("/cache", ("nosuid", "nodev", "noexec", "ro", "mode=0700")),)),
    ),
    ({"labels": {"b": "2", "a.b/c": "1"}}, ContainerOptions(labels=(("a.b/c", "1"), ("b", "2")))),
    ({"hostname": "web-1.example"}, ContainerOptions(hostname="web-1.example")),
    ({"healthcheck": {"test": ["CMD", "wget", "-q", "localhost"]}}, ContainerOptions(healthcheck=Healthcheck(("wget", "-q", "localhost"), 30.0, 30.0, 3, 0.0))),
    (
        {"healthcheck": {"test": "curl -f x || exit 1", "interval": "5s", "timeout": 2, "retries": 5, "start_period": "1m"}},
        ContainerOptions(healthcheck=Healthcheck(("/bin/sh", "-c", "curl -f x || exit 1"), 5.0, 2.0, 5, 60.0)),
    ),
    (
        {"healthcheck": {"test": ["CMD-SHELL", "true"], "failure_action": "restart"}, "restart_policy": "always"},
        ContainerOptions(healthcheck=Healthcheck(("/bin/sh", "-c", "true"), 30.0, 30.0, 3, 0.0, "restart")),
    ),
    ({"healthcheck": {"test": ["pgrep", "app"]}}, ContainerOptions(healthcheck=Healthcheck(("pgrep", "app"), 30.0, 30.0, 3, 0.0))),
    ({"healthcheck": {"test": ["NONE"]}}, ContainerOptions()),
]


@pytest.mark.parametrize(("given", "expected"), GOOD)
def test_good_options_are_normalised(given: dict[str, Any], expected: ContainerOptions) -> None:
    assert normalise_options(given, W, str(given.get("restart_policy") or "never")) == expected


BAD: list[tuple[dict[str, Any], str]] = [
    ({"cpus": 0}, r"containers\[app\]\.cpus=0: must be between"),
    ({"cpus": "many"}, r"containers\[app\]\.cpus='many'"),
    ({"cpus": True}, r"containers\[app\]\.cpus=True"),
    ({"memory": "1x"}, r"containers\[app\]\.memory='1x'"),
    ({"pids_limit": 0}, r"containers\[app\]\.pids_limit=0"),
    ({"pids_limit": "10"}, r"containers\[app\]\.pids_limit='10'"),
    ({"cap_add": "NET_ADMIN"}, r"containers\[app\]\.cap_add='NET_ADMIN': must be a list"),
    ({"cap_add": ["FLY"]}, r"containers\[app\]\.cap_add='FLY': unknown capability"),
    ({"cap_drop": [7]}, r"containers\[app\]\.cap_drop=7"),
    ({"cap_add": ["CHOWN"], "cap_drop": ["CAP_CHOWN"]}, r"CAP_CHOWN is also in cap_drop"),
    ({"read_only": "yes"}, r"containers\[app\]\.read_only='yes'"),
    ({"no_new_privileges": 1}, r"containers\[app\]\.no_new_privileges=1"),
    ({"ulimits": ["nofile"]}, r"ulimits\[0\]='nofile': must be NAME:SOFT"),
    ({"ulimits": ["files:1"]}, r"ulimits\[0\]='files:1': unknown limit"),
    ({"ulimits": ["nofile:10:5"]}, r"ulimits\[0\]='nofile:10:5': the soft limit"),
    ({"ulimits": ["nofile:-1"]}, r"nofile cannot be above"),
    ({"ulimits": ["nofile:2000000"]}, r"nofile cannot be above"),
    ({"ulimits": ["core:x"]}, r"ulimits\[0\]='x'"),
    ({"ulimits": ["core:1", "core:2"]}, r"ulimits\[1\]='core:2': core is given twice"),
    ({"ulimits": [{"name": "core", "soft": 1, "max": 2}]}, r"ulimits\[0\]="),
    ({"ulimits": "nofile:1"}, r"containers\[app\]\.ulimits='nofile:1'"),
    ({"sysctls": {"kernel.hostname": "x"}}, r"sysctls='kernel.hostname': is not namespaced"),
    ({"sysctls": {"vm.swappiness": "1"}}, r"sysctls='vm.swappiness': is not namespaced"),
    ({"sysctls": {"kernel.shm_next_id": "1"}}, r"is not namespaced"),
    ({"sysctls": {"net": "1"}}, r"sysctls='net': sysctl names"),
    ({"sysctls": {"net.ipv4.x;y": "1"}}, r"sysctl names"),
    ({"sysctls": {"net.ipv4.ip_forward": True}}, r"sysctls\.net\.ipv4\.ip_forward=True"),
    ({"sysctls": {"net.ipv4.ip_forward": "1\n2"}}, r"must be one line"),
    ({"sysctls": ["net.ipv4.ip_forward=1"]}, r"containers\[app\]\.sysctls=\["),
    ({"tmpfs": "/tmp"}, r"containers\[app\]\.tmpfs='/tmp': must be a list"),
    ({"tmpfs": ["tmp"]}, r"tmpfs\[0\]\.path='tmp'"),
    ({"tmpfs": ["/"]}, r"tmpfs\[0\]\.path='/'"),
    ({"tmpfs": ["/a/../etc"]}, r"tmpfs\[0\]\.path='/a/../etc'"),
    ({"tmpfs": ["/tmp:size=big"]}, r"tmpfs\[0\]\.options='size=big'"),
    ({"tmpfs": ["/tmp:bind"]}, r"tmpfs\[0\]\.options='bind': unknown tmpfs option"),
    ({"tmpfs": ["/tmp", "/tmp/"]}, r"tmpfs\[1\]\.path='/tmp': is given twice"),
    ({"tmpfs": [{"path": "/tmp", "size": "1m"}]}, r"tmpfs\[0\]=.*unknown keys size"),
    ({"labels": {"hyper.pods.healthcheck": "x"}}, r"labels='hyper.pods.healthcheck': keys starting with hyper.pods."),
    ({"labels": {"a": 1}}, r"labels\.a=1"),
    ({"labels": {"-a": "1"}}, r"labels='-a'"),
    ({"hostname": "no_way"}, r"containers\[app\]\.hostname='no_way'"),
    ({"hostname": "a" * 64}, r"containers\[app\]\.hostname="),
    ({"healthcheck": "true"}, r"containers\[app\]\.healthcheck='true': must be a mapping"),
    ({"healthcheck": {"interval": 1}}, r"healthcheck\.test=None: is required"),
    ({"healthcheck": {"test": []}}, r"healthcheck\.test=\[\]"),
    ({"healthcheck": {"test": ["CMD"]}}, r"has no command to run"),
    ({"healthcheck": {"test": ["CMD-SHELL", "a", "b"]}}, r"takes exactly one command string"),
    ({"healthcheck": {"test": ["NONE", "x"]}}, r"\[NONE\] takes nothing"),
    ({"healthcheck": {"test": ["CMD", "a\x00"]}}, r"must not contain NUL"),
    ({"healthcheck": {"test": "true", "interval": "0.5s"}}, r"healthcheck\.interval='0.5s': must be between 1"),
    ({"healthcheck": {"test": "true", "timeout": "soon"}}, r"healthcheck\.timeout='soon'"),
    ({"healthcheck": {"test": "true", "retries": 0}}, r"healthcheck\.retries=0"),
    ({"healthcheck": {"test": "true", "start_period": -1}}, r"healthcheck\.start_period=-1"),
    ({"healthcheck": {"test": "true", "failure_action": "explode"}}, r"healthcheck\.failure_action='explode'"),
    ({"healthcheck": {"test": "true", "failure_action": "restart"}}, r"failure_action='restart': kills an unhealthy container"),
    ({"healthcheck": {"test": "true", "every": 1}}, r"healthcheck=\['every'\]: unknown keys"),
]


@pytest.mark.parametrize(("given", "message"), BAD)
def test_bad_options_name_the_option_and_the_value(given: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        normalise_options(given, W)


def test_limits_against_the_pod() -> None:
    check_pod_limits("app", ContainerOptions(cpus=2.0, memory=128 * MIB), 2, 128)
    check_pod_limits("app", ContainerOptions(cpus=4.0, memory=1 << 40), None, None)  # not known here
    with pytest.raises(SpecError, match=r"containers\[app\]\.cpus=3\.0: is more than the pod's 2 vcpus"):
        check_pod_limits("app", ContainerOptions(cpus=3.0), 2, 128)
    with pytest.raises(SpecError, match=r"containers\[app\]\.memory=.*more than the pod's memory \(128 MiB\)"):
        check_pod_limits("app", ContainerOptions(memory=129 * MIB), 2, 128)


def _pod(*containers: dict[str, Any], **pod: Any) -> dict[str, Any]:
    return {"name": "p", **pod, "containers": [{"image": "busybox", **c} for c in containers]}


def test_the_pod_spec_checks_them_too() -> None:
    with pytest.raises(SpecError, match=r"containers\[b\]\.sysctls\.net\.ipv4\.ip_forward='0': containers\[a\] sets it to '1'"):
        normalise_pod(_pod({"name": "a", "sysctls": {"net.ipv4.ip_forward": "1"}}, {"name": "b", "sysctls": {"net.ipv4.ip_forward": "0"}}))
    normalise_pod(_pod({"name": "a", "sysctls": {"kernel.shmmax": "1"}}, {"name": "b", "sysctls": {"kernel.shmmax": "2"}}))  # each its own
    with pytest.raises(SpecError, match=r"containers\[a\]\.memory=.*more than the pod's memory \(128 MiB\)"):
        normalise_pod(_pod({"name": "a", "memory": "1g"}, memory=128))
    normalise_pod(_pod({"name": "a", "memory": "1g"}))  # the pod's memory is not given: checked when the config is made
    with pytest.raises(SpecError, match=r"containers\[a\]\.tmpfs\[0\]\.path='/data'.*also the path of containers\[a\]\.files\[0\]"):
        normalise_pod(_pod({"name": "a", "files": [{"path": "/data", "content": "x"}], "tmpfs": ["/data"]}))
    with pytest.raises(SpecError, match=r"containers\[a\]\.env_file='/x': is read on the controller"):
        normalise_pod(_pod({"name": "a", "env_file": "/x"}))


EVERYTHING = {
    "name": "app",
    "image": "busybox",
    "restart_policy": "on-failure",
    "cpus": 0.5,
    "memory": 64,
    "pids_limit": 32,
    "cap_add": ["SYS_TIME"],
    "cap_drop": ["NET_RAW"],
    "read_only": True,
    "no_new_privileges": True,
    "ulimits": ["nofile:1024:2048"],
    "sysctls": {"net.core.somaxconn": 1024},
    "tmpfs": ["/tmp:size=8m"],
    "labels": {"team": "web"},
    "hostname": "app-1",
    "healthcheck": {"test": ["CMD", "true"], "interval": "2s", "failure_action": "restart"},
}


def test_stored_form_round_trips_and_old_containers_are_unchanged() -> None:
    spec, _user_set = normalise_pod({"name": "p", "containers": [EVERYTHING, {"name": "plain", "image": "busybox"}]})
    stored = spec.to_stored(accelerator="tcg", guest={"image": "default", "kernel": "/k", "initrd": "/i", "initrd_sha256": None}, digests={})
    full, plain = stored["containers"]
    assert full["memory"] == 64 * MIB and full["cpus"] == 0.5 and full["cap_add"] == ["CAP_SYS_TIME"] and full["sysctls"] == {"net.core.somaxconn": "1024"}
    assert full["healthcheck"] == {"test": ["true"], "interval": 2.0, "timeout": 30.0, "retries": 3, "start_period": 0.0, "failure_action": "restart"}
    # A container without the options is stored as it was before they existed.
    assert sorted(plain) == sorted(
        ("name", "image", "image_ref", "digest", "command", "entrypoint", "env", "workdir", "user", "restart_policy", "stop_signal", "stop_timeout")
    )
    pod = StoredPod.from_json(stored)
    assert pod.to_json() == stored
    assert pod.containers[0].options == spec.containers[0].options
    assert pod.containers[1].options == ContainerOptions()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cpus": "1"}, r"containers\[app\]\.cpus is str, not a number"),
        ({"memory": 1.5}, r"containers\[app\]\.memory is float, not an integer"),
        ({"read_only": "yes"}, r"containers\[app\]\.read_only is str, not a boolean"),
        ({"cap_add": "ALL"}, r"containers\[app\]\.cap_add is str, not a list of strings"),
        ({"sysctls": {"a": 1}}, r"containers\[app\]\.sysctls is dict, not a mapping of strings"),
        ({"tmpfs": ["/tmp"]}, r"containers\[app\]\.tmpfs is list, not a list of objects"),
        ({"healthcheck": "true"}, r"containers\[app\]\.healthcheck is not an object"),
        ({"healthcheck": {"test": "true"}}, r"containers\[app\]\.healthcheck\.test is str"),
    ],
)
def test_bad_stored_options_are_a_clear_error(change: dict[str, Any], message: str) -> None:
    with pytest.raises(StoredSpecError, match=message):
        StoredContainer.from_json({"name": "app", "image": "busybox", **change}, "containers[0]")
