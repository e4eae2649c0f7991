# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""normalise_pod: defaults, which fields count as set, and a table of refused inputs naming their option."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.spec import (
    DEFAULT_MEMORY_MIB,
    MIN_MEMORY_MIB,
    check_signal,
    normalise_pod,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import spec_hash

WEB = {"name": "web", "image": "docker://busybox:1.36", "command": ["httpd", "-f", "-p", "8080"]}


def params(**kwargs: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "pod1"}
    base.update(kwargs)
    return base


def test_defaults_are_hyperds_and_nothing_counts_as_set() -> None:
    spec, user_set = normalise_pod(params())
    assert (spec.name, spec.hostname, spec.vcpus, spec.memory, spec.guest_image, spec.kernel_args) == ("pod1", "pod1", 1, DEFAULT_MEMORY_MIB, "default", "")
    assert spec.containers == ()
    assert user_set == frozenset()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"memory": 256}, {"memory"}),
        ({"vcpus": 2}, {"vcpus"}),
        ({"hostname": "www.example.org"}, {"hostname"}),
        ({"labels": {}}, {"labels"}),
        ({"containers": []}, {"containers"}),
        ({"guest_image": "default"}, {"guest"}),
        ({"kernel": "/k", "initrd": "/i"}, {"guest"}),
        ({"kernel_args": "quiet"}, {"kernel_args"}),
        ({"accelerator": "auto"}, set()),
        ({"accelerator": "tcg"}, {"accelerator"}),
        ({"memory": None, "state": "started", "wait": True, "recreate": False}, set()),
    ],
)
def test_user_set_holds_the_stored_fields_the_user_gave(given: dict[str, Any], expected: set[str]) -> None:
    assert normalise_pod(params(**given))[1] == frozenset(expected)


def test_container_defaults_and_normalised_values() -> None:
    spec = normalise_pod(params(containers=[WEB, {"name": "side_car.1", "image": "busybox", "stop_signal": "int", "entrypoint": []}]))[0]
    web, side = spec.containers
    assert web.command == ("httpd", "-f", "-p", "8080") and web.entrypoint is None
    assert (web.restart_policy, web.stop_signal, web.stop_timeout, web.env) == ("never", "SIGTERM", 10, ())
    assert side.entrypoint == () and side.command is None
    assert side.stop_signal == "SIGINT"
    assert side.ref.name == "docker://busybox"


def test_bare_names_follow_the_default_transport() -> None:
    spec = normalise_pod(params(default_transport="oci:/srv/images", containers=[{"name": "a", "image": "busybox"}]))[0]
    assert spec.containers[0].ref.name == "oci:/srv/images:busybox"


@pytest.mark.parametrize(("value", "expected"), [("TERM", "SIGTERM"), ("sigkill", "SIGKILL"), ("SIGHUP", "SIGHUP"), ("usr1", "SIGUSR1")])
def test_signals_by_name(value: str, expected: str) -> None:
    assert check_signal(value, "x") == expected


@pytest.mark.parametrize(
    ("given", "option", "reason"),
    [
        ({"name": "Pod"}, "name", "lower-case"),
        ({"name": "pod-"}, "name", "lower-case"),
        ({"name": "a" * 64}, "name", "1-63"),
        ({"name": "po_d"}, "name", "lower-case"),
        ({"kernel": "/boot/vmlinuz"}, "kernel", "needs initrd"),
        ({"initrd": "/boot/initrd.img"}, "initrd", "needs kernel"),
        ({"kernel": "/k", "initrd": "/i", "guest_image": "default"}, "guest_image", "not both"),
        ({"kernel": "k", "initrd": "/i"}, "kernel", "absolute"),
        ({"guest_image": "../etc"}, "guest_image", "no '..'"),
        ({"memory": MIN_MEMORY_MIB - 1}, "memory", f"between {MIN_MEMORY_MIB}"),
        ({"memory": 64}, "memory", "between"),
        ({"memory": "128"}, "memory", "integer"),
        ({"vcpus": 0}, "vcpus", "between 1"),
        ({"vcpus": True}, "vcpus", "integer"),
        ({"hostname": "bad_host"}, "hostname", "RFC 1123"),
        ({"hostname": "-a.b"}, "hostname", "RFC 1123"),
        ({"labels": {"env": 1}}, "labels.env", "string"),
        ({"labels": {"bad key": "x"}}, "labels", "keys"),
        ({"accelerator": "xen"}, "accelerator", "one of"),
        ({"kernel_args": "a\nb"}, "kernel_args", "one line"),
        ({"containers": [WEB, dict(WEB)]}, "containers[1].name", "unique"),
        ({"containers": [{"name": "Web", "image": "busybox"}]}, "containers[0].name", "lower-case"),
        ({"containers": [{"name": "web"}]}, "containers[web].image", "must be a string"),
        ({"containers": [{"name": "web", "image": "containers-storage:busybox"}]}, "containers[web].image", "not supported"),
        ({"containers": [{"name": "web", "image": "ftp://host/busybox"}]}, "containers[web].image", "unknown transport"),
        ({"containers": [{"name": "web", "image": "oci:relative/path"}]}, "containers[web].image", "absolute"),
        ({"containers": [{**WEB, "env": {"PORT": 8080}}]}, "containers[web].env.PORT", "not int"),
        ({"containers": [{**WEB, "env": {"DEBUG": True}}]}, "containers[web].env.DEBUG", "not bool"),
        ({"containers": [{**WEB, "env": {"1BAD": "x"}}]}, "containers[web].env", "variable names"),
        ({"containers": [{**WEB, "env": ["A=1"]}]}, "containers[web].env", "mapping"),
        ({"containers": [{**WEB, "command": "httpd -f"}]}, "containers[web].command", "list of strings"),
        ({"containers": [{**WEB, "workdir": "srv"}]}, "containers[web].workdir", "absolute"),
        ({"containers": [{**WEB, "user": "a b"}]}, "containers[web].user", "UID"),
        ({"containers": [{**WEB, "restart_policy": "unless-stopped"}]}, "containers[web].restart_policy", "one of"),
        ({"containers": [{**WEB, "stop_signal": "SIGNOPE"}]}, "containers[web].stop_signal", "unknown signal"),
        ({"containers": [{**WEB, "stop_timeout": -1}]}, "containers[web].stop_timeout", "between 0"),
        ({"containers": [{**WEB, "ports": [80]}]}, "containers[0]", "unknown keys"),
        ({"containers": ["web"]}, "containers[0]", "mapping"),
        ({"default_transport": "ftp://x", "containers": [{"name": "a", "image": "busybox"}]}, "default_transport", "docker://"),
    ],
)
def test_bad_input_names_the_option(given: dict[str, Any], option: str, reason: str) -> None:
    with pytest.raises(SpecError) as err:
        normalise_pod(params(**given))
    assert err.value.option == option
    assert reason in err.value.reason


def test_stored_form_and_hash() -> None:
    spec = normalise_pod(params(labels={"b": "2", "a": "1"}, containers=[{**WEB, "env": {"B": "2", "A": "1"}}]))[0]
    guest = {"image": "default", "kernel": "/k", "initrd": "/i", "initrd_sha256": "00"}
    stored = spec.to_stored(accelerator="tcg", guest=guest, digests={"web": "sha256:" + "a" * 64})
    assert stored["accelerator"] == "tcg" and stored["guest"] == guest
    assert stored["labels"] == {"a": "1", "b": "2"}
    (web,) = stored["containers"]
    assert web["digest"] == "sha256:" + "a" * 64
    assert web["image_ref"] == "docker://busybox:1.36"
    assert list(web["env"]) == ["B", "A"]  # env order is kept: it is the order of process.env
    again = spec.to_stored(accelerator="tcg", guest=dict(guest), digests={"web": "sha256:" + "a" * 64})
    assert spec_hash(stored) == spec_hash(again)
    other = spec.to_stored(accelerator="tcg", guest=guest, digests={"web": "sha256:" + "b" * 64})
    assert spec_hash(stored) != spec_hash(other)
    assert spec_hash(stored).startswith("sha256:")
