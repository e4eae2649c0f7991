# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""registry_auth: the option's rules, the skopeo argv it gives, and that the secret never shows (argv, errors, files left)."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any, Optional, Sequence

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import ImageError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.commands import CommandFailed, Completed
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.auth import (
    MASK,
    RegistryAuth,
    normalise_registry_auth,
    registry_of,
    skopeo_auth_args,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.oci import ImageCache, parse_image_ref

SECRET = "s3cr3t-Pa55"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ({}, None),
        ({"username": None, "password": None, "auth_file": None}, None),
        ({"username": "deploy", "password": SECRET}, RegistryAuth("deploy", SECRET)),
        ({"username": "deploy", "password": SECRET, "auth_file": None}, RegistryAuth("deploy", SECRET)),
    ],
)
def test_good_registry_auth(value: Any, expected: Optional[RegistryAuth]) -> None:
    assert normalise_registry_auth(value) == expected


def test_auth_file_must_exist(tmp_path: Any) -> None:
    path = tmp_path / "auth.json"
    path.write_text("{}")
    assert normalise_registry_auth({"auth_file": str(path)}) == RegistryAuth(auth_file=str(path))


@pytest.mark.parametrize(
    ("value", "option", "fragment"),
    [
        ("deploy:pw", "registry_auth", "must be a mapping"),
        ({"user": "x"}, "registry_auth", "unknown keys"),
        ({"username": "deploy"}, "registry_auth.password", "must be a non-empty string"),
        ({"password": SECRET}, "registry_auth.username", "must be a non-empty string"),
        ({"username": "", "password": SECRET}, "registry_auth.username", "must be a non-empty string"),
        ({"username": "a:b", "password": SECRET}, "registry_auth.username", "without ':'"),
        ({"username": "deploy", "password": SECRET + "\n"}, "registry_auth.password", "control characters"),
        ({"username": "deploy", "password": SECRET, "auth_file": "/etc/hostname"}, "registry_auth.auth_file", "not both"),
        ({"auth_file": "relative/auth.json"}, "registry_auth.auth_file", "absolute path"),
        ({"auth_file": "/nonexistent/auth.json"}, "registry_auth.auth_file", "no such file"),
    ],
)
def test_bad_registry_auth_names_the_option_never_the_password(value: Any, option: str, fragment: str) -> None:
    with pytest.raises(SpecError) as caught:
        normalise_registry_auth(value)
    assert caught.value.option == option and fragment in caught.value.reason
    assert SECRET not in caught.value.message and SECRET not in repr(caught.value.value)


def test_repr_hides_the_password() -> None:
    assert SECRET not in repr(RegistryAuth("deploy", SECRET))


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("docker://busybox:1.36", "docker.io"),
        ("docker://library/busybox", "docker.io"),
        ("docker://team/app:1", "docker.io"),
        ("docker://registry.example/app:1", "registry.example"),
        ("docker://registry.example:5000/team/app:1", "registry.example:5000"),
        ("docker://localhost/app", "localhost"),
        ("docker://localhost:5000/app", "localhost:5000"),
        ("quay.io/team/app", "quay.io"),
    ],
)
def test_registry_of(image: str, registry: str) -> None:
    assert registry_of(parse_image_ref(image)) == registry


@pytest.mark.parametrize("image", ["oci:/srv/images:tiny", "oci-archive:/srv/tiny.tar", "docker-archive:/srv/tiny.tar"])
def test_local_transports_get_no_credentials(image: str, tmp_path: Any) -> None:
    with skopeo_auth_args(RegistryAuth("deploy", SECRET), parse_image_ref(image), str(tmp_path)) as args:
        assert args == []
    assert not os.listdir(tmp_path)


def test_an_auth_file_is_passed_as_it_is(tmp_path: Any) -> None:
    with skopeo_auth_args(RegistryAuth(auth_file="/root/auth.json"), parse_image_ref("docker://busybox"), str(tmp_path)) as args:
        assert args == ["--src-authfile", "/root/auth.json"]
    assert not os.listdir(tmp_path)


def test_credentials_go_through_a_private_auth_file_removed_afterwards(tmp_path: Any) -> None:
    ref = parse_image_ref("docker://registry.example:5000/team/app:1")
    with skopeo_auth_args(RegistryAuth("deploy", SECRET), ref, str(tmp_path)) as args:
        assert args[0] == "--src-authfile" and SECRET not in " ".join(args)
        path = args[1]
        assert os.path.dirname(path) == str(tmp_path)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        content = json.loads(Path(path).read_text(encoding="utf-8"))
        # Keyed by the image's registry only: no other registry is sent these credentials.
        assert list(content["auths"]) == ["registry.example:5000"]
        assert base64.b64decode(content["auths"]["registry.example:5000"]["auth"]).decode() == f"deploy:{SECRET}"
    assert not os.path.exists(path)


def test_the_auth_file_goes_when_the_copy_fails(tmp_path: Any) -> None:
    with pytest.raises(RuntimeError), skopeo_auth_args(RegistryAuth("deploy", SECRET), parse_image_ref("docker://busybox"), str(tmp_path)):
        raise RuntimeError("skopeo died")
    assert not os.listdir(tmp_path)


class Recorder:
    """A skopeo that records its argv and what the auth file held at the time, and can fail echoing the secret."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.auth_files: list[dict[str, Any]] = []
        self.fail = fail

    def __call__(self, argv: Sequence[str], **kwargs: Any) -> Completed:
        self.calls.append(list(argv))
        if "--src-authfile" in argv:
            path = argv[list(argv).index("--src-authfile") + 1]
            self.auth_files.append(json.loads(Path(path).read_text(encoding="utf-8")))
        if self.fail:
            encoded = base64.b64encode(f"deploy:{SECRET}".encode()).decode()
            raise CommandFailed(argv, 1, f"token {SECRET}", f"unauthorized for {SECRET} ({encoded})", "failed (rc=1)")
        return Completed(tuple(argv), 0, "", "", 0.0)


def test_skopeo_argv_with_credentials(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    auth_dir = tmp_path / "auth"
    auth_dir.mkdir(mode=0o700)
    monkeypatch.setattr("ansible_collections.hyper.pods.plugins.module_utils._hyper.images.auth.auth_dir", lambda: str(auth_dir))
    runner = Recorder()
    cache = ImageCache(str(tmp_path / "root"), runner=runner)
    with pytest.raises(ImageError):  # the recorder copies nothing: no manifest under the tag
        cache.pull(parse_image_ref("docker://registry.example/app:1"), "always", RegistryAuth("deploy", SECRET))
    argv = runner.calls[0]
    assert argv[:4] == ["skopeo", "copy", "--quiet", "--remove-signatures"]
    assert argv[4] == "--src-authfile" and argv[5].startswith(str(auth_dir))
    assert argv[6:] == ["docker://registry.example/app:1", f"oci:{cache.layout}:{parse_image_ref('docker://registry.example/app:1').cache_tag}"]
    assert all(SECRET not in arg for arg in argv)
    assert list(runner.auth_files[0]["auths"]) == ["registry.example"]
    assert not os.listdir(auth_dir)


def test_skopeo_argv_without_credentials_is_unchanged(tmp_path: Any) -> None:
    runner = Recorder()
    cache = ImageCache(str(tmp_path / "root"), runner=runner)
    with pytest.raises(ImageError):
        cache.pull(parse_image_ref("docker://busybox"), "always")
    assert runner.calls[0][:5] == ["skopeo", "copy", "--quiet", "--remove-signatures", "docker://busybox"]


def test_a_failed_copy_never_shows_the_secret(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    auth_dir = tmp_path / "auth"
    auth_dir.mkdir(mode=0o700)
    monkeypatch.setattr("ansible_collections.hyper.pods.plugins.module_utils._hyper.images.auth.auth_dir", lambda: str(auth_dir))
    cache = ImageCache(str(tmp_path / "root"), runner=Recorder(fail=True))
    with pytest.raises(ImageError) as caught:
        cache.pull(parse_image_ref("docker://registry.example/app:1"), "missing", RegistryAuth("deploy", SECRET))
    encoded = base64.b64encode(f"deploy:{SECRET}".encode()).decode()
    text = caught.value.message + json.dumps(caught.value.details)
    assert SECRET not in text and encoded not in text and MASK in text
    assert not os.listdir(auth_dir)
