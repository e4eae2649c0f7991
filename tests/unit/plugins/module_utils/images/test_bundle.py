# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import copy
import os
import subprocess
import threading
from typing import Any, Optional, Sequence

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import ImageError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.commands import Completed
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.bundle import (
    DEFAULT_CAPABILITIES,
    DEFAULT_PATH,
    IMAGE_CONFIG_FILE,
    MIN_DISK_BYTES,
    NOFILE_LIMIT,
    TreeSize,
    UserDb,
    build_disk,
    disk_serial,
    disk_size,
    load_bundle,
    load_user_db,
    parse_user_db,
    resolve_user,
    runtime_config,
    unpack,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.oci import ImageCache, parse_image_ref
from ansible_collections.hyper.pods.tests.unit.plugins.module_utils.images.test_oci import build_tiny_layout, needs_tools

PASSWD = """root:x:0:0:root:/root:/bin/sh
# a comment
alice:x:1000:1000:Alice:/home/alice:/bin/sh
broken line
+nis
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
GROUP = "root:x:0:\nwheel:x:10:alice,bob\nstaff:x:50:alice\nalice:x:1000:\nnogroup:x:65534:\n"
USERS = parse_user_db(PASSWD, GROUP)

# What umoci writes for an image (abridged to what matters here).
BASE: dict[str, Any] = {
    "ociVersion": "1.0.0",
    "process": {
        "terminal": True,
        "consoleSize": {"height": 25, "width": 80},
        "user": {"uid": 0, "gid": 0},
        "args": ["/docker-entrypoint.sh", "nginx"],
        "env": ["PATH=/usr/bin:/bin", "TERM=xterm"],
        "cwd": "/",
        "capabilities": {"bounding": ["CAP_KILL"]},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs"},
    "hostname": "umoci-default",
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}, {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"}],
    "linux": {
        "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
        "maskedPaths": ["/proc/kcore"],
    },
}
IMAGE: dict[str, Any] = {
    "Entrypoint": ["/docker-entrypoint.sh"],
    "Cmd": ["nginx", "-g", "daemon off;"],
    "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "NGINX_VERSION=1.25", "EMPTY="],
    "WorkingDir": "/srv",
}


_DEFAULT: Any = object()  # the IMAGE/USERS tables below; None means "no image config"


def config(container: dict[str, Any], image: Any = _DEFAULT, users: Any = _DEFAULT, **kwargs: Any) -> dict[str, Any]:
    return runtime_config(
        BASE, container, hostname="web-1", image_config=IMAGE if image is _DEFAULT else image, users=USERS if users is _DEFAULT else users, **kwargs
    )


# --- argv: Docker's entrypoint/command rules ------------------------------------------------------

ARGV = [
    ("image defaults: Entrypoint + Cmd", IMAGE, {}, ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]),
    ("command replaces Cmd, keeps Entrypoint", IMAGE, {"command": ["nginx", "-t"]}, ["/docker-entrypoint.sh", "nginx", "-t"]),
    ("entrypoint replaces Entrypoint and drops Cmd", IMAGE, {"entrypoint": ["/bin/sh"]}, ["/bin/sh"]),
    ("entrypoint + command", IMAGE, {"entrypoint": ["/bin/sh", "-c"], "command": ["echo hi"]}, ["/bin/sh", "-c", "echo hi"]),
    ("empty entrypoint clears it", IMAGE, {"entrypoint": [], "command": ["sleep", "1"]}, ["sleep", "1"]),
    ("empty command keeps Entrypoint only", IMAGE, {"command": []}, ["/docker-entrypoint.sh"]),
    ("image with Cmd only", {"Cmd": ["sh"]}, {}, ["sh"]),
    ("image with Cmd only, command set", {"Cmd": ["sh"]}, {"command": ["httpd", "-f"]}, ["httpd", "-f"]),
    ("image with Entrypoint only", {"Entrypoint": ["/init"]}, {"command": ["--debug"]}, ["/init", "--debug"]),
    ("no image config: umoci's args count as Cmd", None, {}, ["/docker-entrypoint.sh", "nginx"]),
    ("no image config, command set", None, {"command": ["true"]}, ["true"]),
]


@pytest.mark.parametrize(("image", "container", "expected"), [case[1:] for case in ARGV], ids=[case[0] for case in ARGV])
def test_argv(image: Optional[dict[str, Any]], container: dict[str, Any], expected: list[str]) -> None:
    assert config(container, image)["process"]["args"] == expected


@pytest.mark.parametrize(
    ("image", "container", "option", "fragment"),
    [
        ({}, {"name": "c1"}, "containers[c1].command", "nothing to run"),
        (IMAGE, {"entrypoint": []}, "command", "nothing to run"),
        (IMAGE, {"name": "c1", "command": "nginx -t"}, "containers[c1].command", "list of strings"),
        (IMAGE, {"entrypoint": ["a", 1]}, "entrypoint", "list of strings"),
        (IMAGE, {"command": ["a\x00b"]}, "command", "NUL"),
        (IMAGE, {"workdir": "relative"}, "workdir", "absolute path"),
        ({"Cmd": ["sh"], "WorkingDir": "srv"}, {}, "image WorkingDir", "absolute path"),
        (IMAGE, {"env": ["A=1"]}, "env", "mapping"),
        (IMAGE, {"env": {"A=B": "1"}}, "env", "variable names"),
        (IMAGE, {"env": {"": "1"}}, "env", "variable names"),
        (IMAGE, {"env": {"DEBUG": True}}, "env", "values must be strings"),
        (IMAGE, {"env": {"A": None}}, "env", "values must be strings"),
        (IMAGE, {"user": "ghost"}, "user", "no user 'ghost'"),
        (IMAGE, {"user": "alice:ghosts"}, "user", "no group 'ghosts'"),
        (IMAGE, {"user": "1000:"}, "user", "UID[:GID]"),
        (IMAGE, {"user": True}, "user", "UID[:GID]"),
        (IMAGE, {"user": "4294967295"}, "user", "below"),
        ({"Cmd": ["sh"], "User": "daemon"}, {}, "image User", "no user 'daemon'"),
    ],
)
def test_bad_container_options(image: dict[str, Any], container: dict[str, Any], option: str, fragment: str) -> None:
    with pytest.raises(SpecError) as caught:
        config(container, image)
    assert caught.value.option == option
    assert fragment in caught.value.reason


def test_bad_hostname() -> None:
    with pytest.raises(SpecError, match="option hostname="):
        runtime_config(BASE, {}, hostname="", image_config=IMAGE)


# --- env ----------------------------------------------------------------------------------------

ENV = [
    (
        "image env, then defaults",
        {},
        ["PATH=/usr/local/bin:/usr/bin:/bin", "NGINX_VERSION=1.25", "EMPTY=", "HOSTNAME=web-1", "HOME=/root"],
    ),
    (
        "container env overrides in place and appends",
        {"env": {"NGINX_VERSION": "x", "B": "2", "PORT": 8080}},
        ["PATH=/usr/local/bin:/usr/bin:/bin", "NGINX_VERSION=x", "EMPTY=", "B=2", "PORT=8080", "HOSTNAME=web-1", "HOME=/root"],
    ),
    (
        "explicit HOSTNAME, HOME and PATH win",
        {"env": {"HOSTNAME": "h", "HOME": "/h", "PATH": "/p"}},
        ["PATH=/p", "NGINX_VERSION=1.25", "EMPTY=", "HOSTNAME=h", "HOME=/h"],
    ),
    (
        "HOME of the user",
        {"user": "alice", "env": {}},
        ["PATH=/usr/local/bin:/usr/bin:/bin", "NGINX_VERSION=1.25", "EMPTY=", "HOSTNAME=web-1", "HOME=/home/alice"],
    ),
    ("HOME of an unknown uid is /", {"user": 4242}, ["PATH=/usr/local/bin:/usr/bin:/bin", "NGINX_VERSION=1.25", "EMPTY=", "HOSTNAME=web-1", "HOME=/"]),
]


@pytest.mark.parametrize(("container", "expected"), [case[1:] for case in ENV], ids=[case[0] for case in ENV])
def test_env(container: dict[str, Any], expected: list[str]) -> None:
    assert config(container)["process"]["env"] == expected


def test_default_path_when_image_has_none() -> None:
    env = config({}, {"Cmd": ["sh"]}, users=UserDb())["process"]["env"]
    assert env == [f"PATH={DEFAULT_PATH}", "HOSTNAME=web-1", "HOME=/"]


# --- user ---------------------------------------------------------------------------------------

USER = [
    # value, (uid, gid, additional gids, home)
    ("0", (0, 0, [], "/root")),
    (0, (0, 0, [], "/root")),
    ("1000", (1000, 1000, [10, 50], "/home/alice")),
    (1000, (1000, 1000, [10, 50], "/home/alice")),
    ("alice", (1000, 1000, [10, 50], "/home/alice")),
    ("alice:wheel", (1000, 10, [50], "/home/alice")),
    ("alice:0", (1000, 0, [10, 50], "/home/alice")),
    ("nobody", (65534, 65534, [], "/nonexistent")),
    ("nobody:root", (65534, 0, [], "/nonexistent")),
    ("4242", (4242, 0, [], None)),
    ("4242:4242", (4242, 4242, [], None)),
    ("4242:staff", (4242, 50, [], None)),
]


@pytest.mark.parametrize(("value", "expected"), USER, ids=[repr(case[0]) for case in USER])
def test_resolve_user(value: object, expected: tuple[int, int, list[int], Optional[str]]) -> None:
    user = resolve_user(value, USERS, "user")
    assert (user.uid, user.gid, user.additional_gids, user.home) == expected


def test_user_in_config() -> None:
    assert config({"user": "alice:wheel"})["process"]["user"] == {"uid": 1000, "gid": 10, "additionalGids": [50]}
    assert config({"user": "nobody"})["process"]["user"] == {"uid": 65534, "gid": 65534}
    assert config({}, {"Cmd": ["sh"], "User": "nobody"})["process"]["user"] == {"uid": 65534, "gid": 65534}
    assert config({"user": "0"}, {"Cmd": ["sh"], "User": "nobody"})["process"]["user"] == {"uid": 0, "gid": 0}


def test_user_name_without_passwd() -> None:
    with pytest.raises(SpecError, match="it has no /etc/passwd"):
        config({"user": "alice"}, users=UserDb())
    assert config({"user": "1000:1000"}, users=UserDb())["process"]["user"] == {"uid": 1000, "gid": 1000}


def test_parse_user_db_skips_junk() -> None:
    assert [user.name for user in USERS.users] == ["root", "alice", "nobody"]
    assert USERS.present and not parse_user_db(None, None).present


# --- the rest of the config ---------------------------------------------------------------------


def test_pod_settings_and_kept_umoci_parts() -> None:
    base = copy.deepcopy(BASE)
    result = runtime_config(base, {"workdir": "/data"}, hostname="web-1", image_config=IMAGE, users=USERS, root_path="/run/hyper/c1/rootfs")
    assert base == BASE  # pure
    assert result["hostname"] == "web-1"
    assert result["root"] == {"path": "/run/hyper/c1/rootfs", "readonly": False}
    assert "terminal" not in result["process"] and "consoleSize" not in result["process"]
    assert result["process"]["cwd"] == "/data"
    assert result["process"]["capabilities"] == {kind: list(DEFAULT_CAPABILITIES) for kind in ("bounding", "effective", "permitted")}
    assert result["process"]["noNewPrivileges"] is False
    nofile = {"type": "RLIMIT_NOFILE", "hard": NOFILE_LIMIT, "soft": NOFILE_LIMIT}
    assert result["process"]["rlimits"] == [*(r for r in BASE["process"]["rlimits"] if r["type"] != "RLIMIT_NOFILE"), nofile]
    assert result["mounts"] == BASE["mounts"]
    assert result["linux"]["maskedPaths"] == ["/proc/kcore"]
    assert [ns["type"] for ns in result["linux"]["namespaces"]] == ["pid", "ipc", "uts", "mount"]
    assert config({})["process"]["cwd"] == "/srv"


@pytest.mark.parametrize(
    ("namespaces", "expected"),
    [
        ([], ["pid", "mount", "ipc", "uts"]),
        ([{"type": "network", "path": "/proc/1/ns/net"}, {"type": "cgroup"}], ["cgroup", "pid", "mount", "ipc", "uts"]),
        ([{"type": "uts"}, {"type": "pid"}], ["uts", "pid", "mount", "ipc"]),
    ],
)
def test_namespaces(namespaces: list[dict[str, str]], expected: list[str]) -> None:
    base = {**BASE, "linux": {"namespaces": namespaces}}
    result = runtime_config(base, {}, hostname="h", image_config=IMAGE)
    assert [ns["type"] for ns in result["linux"]["namespaces"]] == expected


# --- disks: sizes and names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tree", "at_least", "at_most"),
    [
        (TreeSize(blocks=0, inodes=1), MIN_DISK_BYTES, MIN_DISK_BYTES),
        (TreeSize(blocks=500, inodes=40), MIN_DISK_BYTES, MIN_DISK_BYTES),
        (TreeSize(blocks=25_000, inodes=10_000), 25_000 * 4096 + 10_000 * 256, 130 << 20),
        (TreeSize(blocks=1_000_000, inodes=50_000), 1_000_000 * 4096 + 50_000 * 256, int(4.5 * (1 << 30))),
    ],
)
def test_disk_size(tree: TreeSize, at_least: int, at_most: int) -> None:
    size, inodes = disk_size(tree)
    assert at_least <= size <= at_most and size % (1 << 20) == 0
    assert inodes >= tree.inodes + 64


def test_disk_serial() -> None:
    serial = disk_serial("sha256:" + "0123456789abcdef" * 4)
    assert serial == "hyper-img-0123456789" and len(serial) == 20


# --- real umoci and mke2fs on a tiny two-layer image --------------------------------------------


class Refuse:
    def __call__(self, argv: Sequence[str], **kwargs: Any) -> Completed:
        raise AssertionError(f"unexpected command {argv}")


@pytest.fixture
def pulled(tmp_path: Any) -> tuple[ImageCache, Any]:
    layout = build_tiny_layout(str(tmp_path / "src"), extra_layer=True)
    cache = ImageCache(str(tmp_path / "root"))
    return cache, cache.pull(parse_image_ref(f"oci:{layout}:tiny"))


def _debugfs(image: str, request: str) -> str:
    return subprocess.run(["debugfs", "-R", request, image], check=True, capture_output=True, text=True).stdout


@needs_tools
def test_unpack_and_disk(pulled: tuple[ImageCache, Any], tmp_path: Any) -> None:
    cache, image = pulled
    path = unpack(cache, image)
    assert path == os.path.join(cache.cache_dir, "bundles", image.hex)
    bundle = load_bundle(path)
    assert bundle.image_config["Entrypoint"] == ["/bin/sh"] and bundle.image_config["WorkingDir"] == "/data"
    assert os.path.isfile(os.path.join(path, IMAGE_CONFIG_FILE))
    assert not os.path.exists(os.path.join(bundle.rootfs, "data/gone"))  # umoci applied the whiteout
    assert os.stat(os.path.join(bundle.rootfs, "home/alice")).st_uid == 1000
    assert unpack(cache, image, runner=Refuse()) == path  # once per digest

    users = load_user_db(bundle.rootfs)
    result = runtime_config(bundle.base_config, {"user": "alice"}, hostname="p", image_config=bundle.image_config, users=users)
    assert result["process"]["args"] == ["/bin/sh", "sh"]
    assert result["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [10]}
    assert result["process"]["cwd"] == "/data"

    disk = build_disk(path)
    assert disk == os.path.join(cache.cache_dir, "disks", image.hex + ".img")
    assert os.stat(disk).st_mode & 0o777 == 0o444
    assert build_disk(path, runner=Refuse()) == disk
    fsck = subprocess.run(["e2fsck", "-fn", disk], check=False, capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    header = subprocess.run(["dumpe2fs", "-h", disk], check=True, capture_output=True, text=True).stdout
    assert "has_journal" not in header and f"hyper-{image.hex[:10]}" in header
    assert "gone" not in _debugfs(disk, "ls -l /data")
    assert " 1000 " in _debugfs(disk, "ls -l /home")
    assert "Type: symlink" in _debugfs(disk, "stat /bin/true")
    leftovers = [name for base, dirs, files in os.walk(cache.cache_dir) for name in dirs + files if name.startswith(".tmp-")]
    assert leftovers == []


@needs_tools
def test_disk_rebuild_is_stable(pulled: tuple[ImageCache, Any]) -> None:
    cache, image = pulled
    path = unpack(cache, image)
    first = build_disk(path)
    header = subprocess.run(["dumpe2fs", "-h", first], check=True, capture_output=True, text=True).stdout
    os.unlink(first)
    again = build_disk(path)
    assert subprocess.run(["dumpe2fs", "-h", again], check=True, capture_output=True, text=True).stdout == header  # UUID, hash seed, times


@needs_tools
def test_concurrent_unpack_and_disk(pulled: tuple[ImageCache, Any]) -> None:
    cache, image = pulled
    results: list[tuple[str, str]] = []

    def work() -> None:
        bundle = unpack(cache, image)
        results.append((bundle, build_disk(bundle)))

    threads = [threading.Thread(target=work) for _thread in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and len(set(results)) == 1
    assert sorted(os.listdir(os.path.join(cache.cache_dir, "bundles"))) == [image.hex]
    assert sorted(os.listdir(os.path.join(cache.cache_dir, "disks"))) == [image.hex + ".img"]


def test_build_disk_wants_a_cache_bundle(tmp_path: Any) -> None:
    with pytest.raises(ImageError, match="not a bundle of the image cache"):
        build_disk(str(tmp_path / "somewhere"))
    bundle = tmp_path / "bundles" / ("ab" * 32)
    bundle.mkdir(parents=True)
    with pytest.raises(ImageError, match="has no rootfs/"):
        build_disk(str(bundle))


def test_load_user_db_does_not_follow_symlinks(tmp_path: Any) -> None:
    outside = tmp_path / "outside"
    outside.write_text("root:x:0:0::/root:/bin/sh\n")
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "passwd").symlink_to(outside)
    (rootfs / "etc" / "group").write_text("root:x:0:\n")
    users = load_user_db(str(rootfs))
    assert not users.present and users.users == () and users.gid_of_group("root") == 0
    (tmp_path / "r2").mkdir()
    (tmp_path / "r2" / "etc").symlink_to(rootfs / "etc")
    assert load_user_db(str(tmp_path / "r2")) == UserDb()
