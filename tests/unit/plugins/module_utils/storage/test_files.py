# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Injected files: option checks, digests without content, the host copies."""

from __future__ import annotations

import os
from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.spec import normalise_pod, read_file_sources
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.stored import StoredContainer
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage import files as fl

IMAGE = "oci:/srv/images:busybox"
SECRET = "hunter2-very-secret"


def _container(data: dict[str, Any]) -> StoredContainer:
    """A typed stored container from its JSON form; image, mode and owner filled in where the test leaves them out."""
    files = [{"mode": "0644", "owner": "0:0", **item} for item in data.get("files") or []]
    return StoredContainer.from_json({"image": IMAGE, **data, "files": files}, "containers[0]")


@pytest.mark.parametrize(("value", "mode"), [("0640", 0o640), ("640", 0o640), ("4755", 0o4755), (0o600, 0o600), ("0", 0)])
def test_parse_mode(value: Any, mode: int) -> None:
    assert fl.parse_mode(value, "m") == mode


@pytest.mark.parametrize("value", ["0999", "u=rw", "", "-1", True, 0o10000, 1.5])
def test_parse_mode_refuses(value: Any) -> None:
    with pytest.raises(SpecError) as err:
        fl.parse_mode(value, "containers[app].files[0].mode")
    assert err.value.option == "containers[app].files[0].mode"


@pytest.mark.parametrize("value", ["0", "0:0", "nobody", "www-data:adm", "1000:1000", 33])
def test_check_owner(value: Any) -> None:
    assert fl.check_owner(value, "o") == str(value)


@pytest.mark.parametrize("value", ["no body", "a:", ":b", "a:b:c", "-x", "x;y", None, -1])
def test_check_owner_refuses(value: Any) -> None:
    with pytest.raises(SpecError):
        fl.check_owner(value, "o")


def _pod(files: Any) -> dict[str, Any]:
    return {"name": "p", "containers": [{"name": "app", "image": IMAGE, "files": files}]}


@pytest.mark.parametrize(
    ("files", "option", "needle"),
    [
        ([{"path": "etc/x", "content": "x"}], "containers[app].files[0].path", "absolute"),
        ([{"path": "/etc/x"}], "containers[app].files[0]", "exactly one of content and src"),
        ([{"path": "/etc/x", "content": "x", "src": "/y"}], "containers[app].files[0]", "exactly one"),
        ([{"path": "/etc/x", "src": "y"}], "containers[app].files[0].src", "absolute"),
        ([{"path": "/etc/x", "content": 5}], "containers[app].files[0].content", "string"),
        ([{"path": "/etc/x", "content": "x"}, {"path": "/etc//x", "content": "y"}], "containers[app].files[1].path", "also the path"),
        ([{"path": "/etc/x", "content": "x", "mode": "rw"}], "containers[app].files[0].mode", "octal"),
    ],
)
def test_bad_files_name_the_option(files: Any, option: str, needle: str) -> None:
    with pytest.raises(SpecError, match=needle) as err:
        normalise_pod(_pod(files))
    assert err.value.option == option


def test_content_never_in_a_message_or_the_stored_spec() -> None:
    with pytest.raises(SpecError) as err:
        normalise_pod(_pod([{"path": "/x", "content": SECRET, "src": "/y"}]))
    assert SECRET not in err.value.message
    spec = normalise_pod(_pod([{"path": "/x", "content": SECRET, "mode": "0400", "owner": "nobody"}]))[0]
    assert SECRET not in repr(spec)
    stored = spec.to_stored(accelerator="tcg", guest={}, digests={})
    files = stored["containers"][0]["files"]
    assert files == [{"path": "/x", "mode": "0400", "owner": "nobody", "sha256": fl.file_digest("p", "app", "/x", SECRET.encode())}]
    assert SECRET not in repr(stored)


def test_digest_is_salted_by_pod_container_and_path() -> None:
    digests = {fl.file_digest(*args, b"x") for args in [("p", "a", "/x"), ("q", "a", "/x"), ("p", "b", "/x"), ("p", "a", "/y")]}
    assert len(digests) == 4


def test_src_is_read_on_the_host(tmp_path: Any) -> None:
    src = tmp_path / "conf"
    src.write_bytes(b"\x00binary\xff")
    spec = normalise_pod(_pod([{"path": "/etc/conf", "src": str(src)}]))[0]
    loaded = read_file_sources(spec)
    assert loaded.containers[0].files[0].data == b"\x00binary\xff"
    stored = loaded.to_stored(accelerator="tcg", guest={}, digests={})["containers"][0]["files"][0]
    assert stored["src"] == str(src) and stored["sha256"] == fl.file_digest("p", "app", "/etc/conf", b"\x00binary\xff")
    missing = normalise_pod(_pod([{"path": "/etc/conf", "src": str(tmp_path / "missing")}]))[0]
    with pytest.raises(SpecError, match="cannot be read") as err:
        read_file_sources(missing)
    assert err.value.option == "containers[app].files[0].src"


def test_staged_copies_round_trip_and_are_checked(tmp_path: Any) -> None:
    root = str(tmp_path)
    data: dict[str, Any] = {"name": "app", "files": [{"path": "/a", "sha256": fl.file_digest("p", "app", "/a", b"one")}, {"path": "/b", "sha256": "sha256:00"}]}
    container = _container(data)
    fl.stage_files(root, "hyper-1", {"app": [b"one", b"two"]})
    first = fl.host_file(root, "hyper-1", "app", 0)
    assert oct(os.stat(first).st_mode & 0o777) == "0o600"
    with pytest.raises(HyperError, match="does not match its digest"):
        fl.load_staged(root, "hyper-1", "p", container)
    data["files"][1]["sha256"] = fl.file_digest("p", "app", "/b", b"two")
    container = _container(data)
    assert fl.load_staged(root, "hyper-1", "p", container) == [b"one", b"two"]
    fl.remove_pod_dir(root, "hyper-1")
    with pytest.raises(HyperError, match="not on the host"):
        fl.load_staged(root, "hyper-1", "p", container)
    fl.remove_pod_dir(root, "hyper-1")  # twice is fine


def test_oci_file_mounts() -> None:
    container = _container({"name": "app", "files": [{"path": "/etc/a"}, {"path": "/etc/b"}]})
    assert fl.oci_file_mounts(container) == [
        {"destination": "/etc/a", "type": "bind", "source": "/run/hyper/files/app/0", "options": ["bind", "rw"]},
        {"destination": "/etc/b", "type": "bind", "source": "/run/hyper/files/app/1", "options": ["bind", "rw"]},
    ]
