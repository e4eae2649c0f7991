# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from typing import Any, Optional, Sequence

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import ImageError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.commands import CommandFailed, CommandTimeout, Completed, run
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.oci import (
    ImageCache,
    ImageRef,
    check_pull_policy,
    file_lock,
    layout_tags,
    parse_image_ref,
)

TOOLS = ("skopeo", "umoci", "mke2fs")
needs_tools = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(tool) for tool in TOOLS), reason="needs root and skopeo, umoci, e2fsprogs on the host"
)

DIGEST = "sha256:" + "ab" * 32


# --- parse_image_ref: table of good references -------------------------------------------------

GOOD = [
    # value, default transport, (transport, reference, path, tag)
    ("docker://busybox", "docker://", ("docker", "//busybox", None, None)),
    ("docker://busybox:1.36", "docker://", ("docker", "//busybox:1.36", None, None)),
    ("docker://registry.example:5000/team/app:v1", "docker://", ("docker", "//registry.example:5000/team/app:v1", None, None)),
    (f"docker://busybox@{DIGEST}", "docker://", ("docker", f"//busybox@{DIGEST}", None, None)),
    ("oci:/srv/layout", "docker://", ("oci", "/srv/layout", "/srv/layout", None)),
    ("oci:/srv/layout:busybox", "docker://", ("oci", "/srv/layout:busybox", "/srv/layout", "busybox")),
    ("oci:/srv/layout:busybox:1.36", "docker://", ("oci", "/srv/layout:busybox:1.36", "/srv/layout", "busybox:1.36")),
    ("oci-archive:/tmp/a.tar", "docker://", ("oci-archive", "/tmp/a.tar", "/tmp/a.tar", None)),
    ("oci-archive:/tmp/a.tar:v1", "docker://", ("oci-archive", "/tmp/a.tar:v1", "/tmp/a.tar", "v1")),
    ("docker-archive:/tmp/d.tar", "docker://", ("docker-archive", "/tmp/d.tar", "/tmp/d.tar", None)),
    ("docker-archive:/tmp/d.tar:app:v1", "docker://", ("docker-archive", "/tmp/d.tar:app:v1", "/tmp/d.tar", "app:v1")),
    ("docker-archive:/tmp/d.tar:@1", "docker://", ("docker-archive", "/tmp/d.tar:@1", "/tmp/d.tar", "@1")),
    # Bare names take the default transport.
    ("busybox", "docker://", ("docker", "//busybox", None, None)),
    ("busybox:1.36", "docker://", ("docker", "//busybox:1.36", None, None)),
    (f"library/busybox@{DIGEST}", "docker://", ("docker", f"//library/busybox@{DIGEST}", None, None)),
    ("localhost:5000/app:v2", "docker://", ("docker", "//localhost:5000/app:v2", None, None)),
    ("app:v2", "docker://registry.example:5000/team/", ("docker", "//registry.example:5000/team/app:v2", None, None)),
    ("busybox", "oci:/var/lib/hyper-test/images/oci", ("oci", "/var/lib/hyper-test/images/oci:busybox", "/var/lib/hyper-test/images/oci", "busybox")),
    ("busybox:1", "oci:/srv/l/", ("oci", "/srv/l:busybox:1", "/srv/l", "busybox:1")),
]


@pytest.mark.parametrize(("value", "default", "expected"), GOOD, ids=[case[0] + "|" + case[1] for case in GOOD])
def test_parse_good(value: str, default: str, expected: tuple[str, str, Optional[str], Optional[str]]) -> None:
    ref = parse_image_ref(value, default)
    assert (ref.transport, ref.reference, ref.path, ref.tag) == expected
    assert ref.original == value
    assert ref.name == f"{expected[0]}:{expected[1]}"
    assert ref.is_local == (expected[0] != "docker")


# --- parse_image_ref: table of bad references, each with a fragment of its reason ---------------

BAD: list[tuple[object, str]] = [
    ("", "must not be empty"),
    ("   ", "must not be empty"),
    (None, "must be a string"),
    (42, "must be a string"),
    ("busy box", "whitespace"),
    ("busybox\n", "whitespace"),
    ("busybox\x00", "control"),
    ("foo:/x", "unknown transport foo:"),
    ("http://example.com/image", "unknown transport http:"),
    ("containers-storage:busybox", "transport containers-storage: is not supported"),
    ("dir:/tmp/x", "transport dir: is not supported"),
    ("docker-daemon:busybox:latest", "transport docker-daemon: is not supported"),
    ("docker:busybox", "docker://NAME"),
    ("docker://", "not a valid registry reference"),
    ("docker://Busybox", "not a valid registry reference"),
    ("docker://busybox:", "not a valid registry reference"),
    ("oci:relative/layout:tag", "absolute path"),
    ("oci:", "absolute path"),
    ("oci:/srv/layout:", "empty tag"),
    ("oci:/srv/layout:bad//tag", "not a valid OCI reference name"),
    ("oci-archive:a.tar", "absolute path"),
    ("docker-archive:/tmp/d.tar:@x", "NAME[:TAG] or @INDEX"),
    ("Busybox", "lower case"),
    ("busybox:", "unknown transport busybox:"),  # as skopeo reads it
    ("/just/a/path", "not an image reference"),
]


@pytest.mark.parametrize(("value", "reason"), BAD, ids=[repr(case[0]) for case in BAD])
def test_parse_bad(value: object, reason: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_image_ref(value)
    assert caught.value.option == "image"
    assert caught.value.value == value
    assert reason in caught.value.reason


@pytest.mark.parametrize("default", ["", "docker:", "docker://registry", "oci:relative", "oci:/a:b", "dir:/x"])
def test_bad_default_transport(default: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_image_ref("busybox", default)
    assert caught.value.option == "default_transport"


def test_default_transport_ignored_for_explicit_transport() -> None:
    assert parse_image_ref("oci:/a:b", "dir:/nonsense").transport == "oci"


def test_cache_tag_is_stable_and_valid() -> None:
    one, two = parse_image_ref("busybox"), parse_image_ref("docker://busybox")
    assert one.cache_tag == two.cache_tag  # same skopeo name, same cache entry
    assert one.cache_tag != parse_image_ref("busybox:1").cache_tag
    assert len(one.cache_tag) == 44 and one.cache_tag.startswith("ref-")


@pytest.mark.parametrize(("policy", "ok"), [("missing", True), ("always", True), ("never", True), ("Never", False), (None, False), ("", False)])
def test_pull_policy(policy: object, ok: bool) -> None:
    if ok:
        assert check_pull_policy(policy) == policy
    else:
        with pytest.raises(SpecError, match="option pull="):
            check_pull_policy(policy)


# --- runner ------------------------------------------------------------------------------------


def test_run_captures_output() -> None:
    result = run(["sh", "-c", "echo out; echo err >&2"], env={"X": "1"})
    assert (result.rc, result.stdout, result.stderr) == (0, "out\n", "err\n")


@pytest.mark.parametrize(
    ("argv", "kind", "fragment"),
    [
        (["sh", "-c", "echo one >&2; echo two >&2; exit 3"], CommandFailed, "sh failed (rc=3): one | two"),
        (["/nonexistent/tool"], CommandFailed, "not found"),
        (["sleep", "5"], CommandTimeout, "timed out after 0.2 s"),
    ],
)
def test_run_errors(argv: list[str], kind: type[Exception], fragment: str) -> None:
    with pytest.raises(kind) as caught:
        run(argv, timeout=0.2)
    assert fragment in str(caught.value)


@pytest.mark.parametrize("argv", ["echo hi", [], ["echo", 1]])
def test_run_wants_an_argv(argv: Any) -> None:
    with pytest.raises(TypeError):
        run(argv)


def test_run_unchecked() -> None:
    assert run(["false"], check=False).rc == 1


# --- file_lock ---------------------------------------------------------------------------------


def test_file_lock_excludes_and_times_out(tmp_path: Any) -> None:
    path = str(tmp_path / "sub" / "x.lock")
    with file_lock(path), pytest.raises(ImageError, match=r"waited 0\.2 s for the lock"), file_lock(path, timeout=0.2):
        pass
    with file_lock(path, exclusive=False), file_lock(path, exclusive=False, timeout=0.2):
        pass  # readers share


# --- ImageCache against real skopeo on a tiny image built here -----------------------------------


def build_tiny_layout(layout: str, tag: str = "tiny", *, cmd: str = "sh", extra_layer: bool = False) -> str:
    """An OCI layout with one tiny image: /bin/sh (a script), /etc/passwd+group, a file owned by 1000."""
    bundle = layout + ".bundle"
    shutil.rmtree(bundle, ignore_errors=True)
    if not os.path.exists(layout):
        subprocess.run(["umoci", "init", "--layout", layout], check=True)
    subprocess.run(["umoci", "new", "--image", f"{layout}:{tag}"], check=True)
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:{tag}", bundle], check=True, capture_output=True)
    rootfs = os.path.join(bundle, "rootfs")
    for sub in ("bin", "etc", "home/alice", "data"):
        os.makedirs(os.path.join(rootfs, sub), exist_ok=True)
    with open(os.path.join(rootfs, "bin/sh"), "w") as handle:
        handle.write("#!/bin/sh\n")
    os.chmod(os.path.join(rootfs, "bin/sh"), 0o755)
    os.symlink("sh", os.path.join(rootfs, "bin/true"))
    with open(os.path.join(rootfs, "etc/passwd"), "w") as handle:
        handle.write("root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nnobody:x:65534:65534::/nonexistent:/bin/false\n")
    with open(os.path.join(rootfs, "etc/group"), "w") as handle:
        handle.write("root:x:0:\nalice:x:1000:\nwheel:x:10:alice\nnogroup:x:65534:\n")
    with open(os.path.join(rootfs, "data/gone"), "w") as handle:
        handle.write("deleted by the second layer\n")
    os.chown(os.path.join(rootfs, "home/alice"), 1000, 1000)
    subprocess.run(["umoci", "repack", "--image", f"{layout}:{tag}", bundle], check=True, capture_output=True)
    if extra_layer:
        os.unlink(os.path.join(rootfs, "data/gone"))  # becomes a whiteout in the new layer
        subprocess.run(["umoci", "repack", "--image", f"{layout}:{tag}", bundle], check=True, capture_output=True)
    subprocess.run(
        ["umoci", "config", "--image", f"{layout}:{tag}", "--config.cmd", cmd, "--config.entrypoint", "/bin/sh", "--config.workingdir", "/data"],
        check=True,
    )
    shutil.rmtree(bundle)
    return layout


@pytest.fixture
def tiny(tmp_path: Any) -> str:
    return build_tiny_layout(str(tmp_path / "src"))


class Recorder:
    """Runs commands for real, remembering them; optionally swaps a docker:// source for a local one."""

    def __init__(self, docker_source: Optional[str] = None) -> None:
        self.calls: list[list[str]] = []
        self.docker_source = docker_source

    def __call__(self, argv: Sequence[str], **kwargs: Any) -> Completed:
        args = list(argv)
        self.calls.append(args)
        if self.docker_source:
            args = [self.docker_source if arg.startswith("docker://") else arg for arg in args]
        return run(args, **kwargs)


def _tree(path: str) -> list[str]:
    return sorted(os.path.relpath(os.path.join(base, name), path) for base, dirs, files in os.walk(path) for name in dirs + files)


@needs_tools
def test_pull_local_oci_then_cached_then_source_changed(tiny: str, tmp_path: Any) -> None:
    runner = Recorder()
    cache = ImageCache(str(tmp_path / "root"), runner=runner)
    ref = parse_image_ref(f"oci:{tiny}:tiny")
    first = cache.pull(ref)
    assert first.changed and first.digest == layout_tags(tiny)["tiny"]["digest"]  # oci → oci keeps the manifest as is
    assert first.layout == str(tmp_path / "root" / "cache" / "oci") and first.tag == ref.cache_tag
    assert cache.image_config(first)["Cmd"] == ["sh"]
    again = cache.pull(ref)
    assert (again.changed, again.digest, len(runner.calls)) == (False, first.digest, 1)
    assert cache.lookup(ref) == again
    build_tiny_layout(tiny, cmd="true")  # same tag, new content
    third = cache.pull(ref)
    assert third.changed and third.digest != first.digest and len(runner.calls) == 2
    forced = cache.pull(ref, "always")
    assert not forced.changed and forced.digest == third.digest and len(runner.calls) == 3


@needs_tools
@pytest.mark.parametrize("transport", ["oci-archive", "docker-archive"])
def test_pull_archives(tiny: str, tmp_path: Any, transport: str) -> None:
    archive = str(tmp_path / f"{transport}.tar")
    subprocess.run(["skopeo", "copy", "--quiet", f"oci:{tiny}:tiny", f"{transport}:{archive}"], check=True)
    cache = ImageCache(str(tmp_path / "root"))
    image = cache.pull(parse_image_ref(f"{transport}:{archive}"))
    assert image.changed and cache.image_config(image)["Entrypoint"] == ["/bin/sh"]
    assert not cache.pull(parse_image_ref(f"{transport}:{archive}")).changed


@needs_tools
def test_docker_pull_policy_without_network(tiny: str, tmp_path: Any) -> None:
    runner = Recorder(docker_source=f"oci:{tiny}:tiny")
    cache = ImageCache(str(tmp_path / "root"), runner=runner)
    ref = parse_image_ref("registry.example/tiny:1")
    assert cache.lookup(ref) is None
    assert cache.pull(ref).changed
    assert not cache.pull(ref).changed and len(runner.calls) == 1  # missing: cached → no registry round trip
    assert not cache.pull(ref, "always").changed and len(runner.calls) == 2
    assert runner.calls[0][-2:] == ["docker://registry.example/tiny:1", f"oci:{cache.layout}:{ref.cache_tag}"]


@needs_tools
def test_registry_failure_is_an_image_error(tmp_path: Any) -> None:
    cache = ImageCache(str(tmp_path / "root"), pull_timeout=20)
    with pytest.raises(ImageError) as caught:
        cache.pull(parse_image_ref("docker://registry.invalid/nothing:1"))
    assert "registry.invalid" in caught.value.message and "check the registry name" in caught.value.message
    assert caught.value.details["cmd"][:2] == ["skopeo", "copy"]


@needs_tools
@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("oci:{tiny}:nope", "no image tagged 'nope' in the OCI layout"),
        ("oci:{tmp}/missing:tiny", "is not an OCI image layout"),
        ("oci-archive:{tmp}/missing.tar", "No such file or directory"),
        ("docker-archive:{tmp}", "is not a file"),
    ],
)
def test_missing_local_image_creates_nothing(tiny: str, tmp_path: Any, value: str, fragment: str) -> None:
    root = tmp_path / "root"
    with pytest.raises(SpecError) as caught:
        ImageCache(str(root)).pull(parse_image_ref(value.format(tiny=tiny, tmp=tmp_path)))
    assert caught.value.option == "image" and fragment in caught.value.reason
    assert not root.exists()


@needs_tools
def test_concurrent_pulls_share_one_entry(tiny: str, tmp_path: Any) -> None:
    cache = ImageCache(str(tmp_path / "root"))
    ref = parse_image_ref(f"oci:{tiny}:tiny")
    results: list[str] = []
    errors: list[BaseException] = []

    def pull() -> None:
        try:
            results.append(cache.pull(ref).digest)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=pull) for _thread in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(set(results)) == 1 and len(results) == 4
    index = json.loads((tmp_path / "root" / "cache" / "oci" / "index.json").read_text())
    assert [d["annotations"]["org.opencontainers.image.ref.name"] for d in index["manifests"]] == [ref.cache_tag]
    assert not [name for name in _tree(str(tmp_path / "root" / "cache")) if ".tmp-" in name]


def test_image_ref_is_hashable_value() -> None:
    assert {parse_image_ref("busybox"), parse_image_ref("busybox")} == {ImageRef("docker", "//busybox", "busybox")}
