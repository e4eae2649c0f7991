# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Guest image names and manifests; host.json and accelerator choice."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import ImageError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest_image.manifest import DEFAULT_KERNEL_ARGS, check_image_name, resolve_image
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.info import load_host_info, parse_host_info, resolve_accelerator

GOOD_NAMES = ["default", "bench-zstd", "a", "0", "img_1.2", "x-y.z_w"]
BAD_NAMES = ["", "Default", "-lead", ".hidden", "_x", "a/b", "../etc", "a..b", "a b", "ä", "a\n", "/abs", "x/"]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_image_names(name: str) -> None:
    assert check_image_name(name) == name


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_image_names_name_the_option_and_value(name: str) -> None:
    with pytest.raises(SpecError) as err:
        check_image_name(name)
    assert err.value.option == "image"
    assert err.value.value == name
    assert f"image={name!r}" in err.value.message


def make_image(root: Path, name: str, manifest: dict[str, Any] | str | None, files: tuple[str, ...] = ("vmlinuz", "initrd.img")) -> Path:
    directory = root / "images" / name
    directory.mkdir(parents=True)
    for file in files:
        (directory / file).write_bytes(b"\x00")
    if manifest is not None:
        (directory / "manifest.json").write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    return directory


MANIFEST = {
    "name": "default",
    "format": 1,
    "kernel": {"version": "6.1.0-41-cloud-amd64", "sha256": "00"},
    "components": {"crun": "1.8.1-1+deb12u1", "qemu-guest-agent": "1:7.2+dfsg-7"},
    "kernel_args": "console=ttyS0 panic=-1 quiet",
    "agent_channel": "org.qemu.guest_agent.0",
}


def test_image_by_name_reads_the_manifest(tmp_path: Path) -> None:
    directory = make_image(tmp_path, "default", MANIFEST)
    image = resolve_image(str(tmp_path))
    assert image.name == "default"
    assert image.kernel == str(directory / "vmlinuz")
    assert image.initrd == str(directory / "initrd.img")
    assert image.kernel_args == "console=ttyS0 panic=-1 quiet"
    assert image.kernel_version == "6.1.0-41-cloud-amd64"
    assert image.components["crun"] == "1.8.1-1+deb12u1"


@pytest.mark.parametrize(
    ("kernel", "files", "expected"),
    [
        ({"version": "6.1.0-41-cloud-amd64"}, ("vmlinuz", "initrd.img"), "vmlinuz"),
        ({"file": "vmlinuz"}, ("vmlinuz", "initrd.img"), "vmlinuz"),
        ({"file": "vmlinux", "version": "6.1.192"}, ("vmlinux", "initrd.img"), "vmlinux"),
        ("not a dict", ("vmlinuz", "initrd.img"), "vmlinuz"),
    ],
)
def test_kernel_file_from_the_manifest(tmp_path: Path, kernel: Any, files: tuple[str, ...], expected: str) -> None:
    directory = make_image(tmp_path, "k", {**MANIFEST, "kernel": kernel}, files)
    assert resolve_image(str(tmp_path), "k").kernel == str(directory / expected)


def test_kernel_args_override_and_list_form(tmp_path: Path) -> None:
    make_image(tmp_path, "listy", {**MANIFEST, "kernel_args": ["console=ttyS0", "quiet"], "agent_channel": "org.x.0"})
    assert resolve_image(str(tmp_path), "listy").kernel_args == "console=ttyS0 quiet"
    assert resolve_image(str(tmp_path), "listy").agent_channel == "org.x.0"
    assert resolve_image(str(tmp_path), "listy", kernel_args="init=/bin/sh").kernel_args == "init=/bin/sh"


@pytest.mark.parametrize(
    ("manifest", "files", "needle"),
    [
        (None, ("vmlinuz", "initrd.img"), "not found"),
        ("{broken", ("vmlinuz", "initrd.img"), "not valid JSON"),
        ("[]", ("vmlinuz", "initrd.img"), "JSON object"),
        (MANIFEST, ("vmlinuz",), "initrd.img is missing"),
        (MANIFEST, ("initrd.img",), "vmlinuz is missing"),
        ({**MANIFEST, "kernel_args": 3}, ("vmlinuz", "initrd.img"), "kernel_args must be"),
        ({**MANIFEST, "kernel": {"file": "vmlinux"}}, ("vmlinuz", "initrd.img"), "vmlinux is missing"),
        ({**MANIFEST, "kernel": {"file": "../../etc/passwd"}}, ("vmlinuz", "initrd.img"), "kernel.file must be one of vmlinuz, vmlinux"),
        ({**MANIFEST, "kernel": {"file": 7}}, ("vmlinuz", "initrd.img"), "not 7"),
    ],
)
def test_broken_images_are_image_errors(tmp_path: Path, manifest: Any, files: tuple[str, ...], needle: str) -> None:
    make_image(tmp_path, "broken", manifest, files)
    with pytest.raises(ImageError) as err:
        resolve_image(str(tmp_path), "broken")
    assert needle in err.value.message


def test_missing_image_tells_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"build it with the hyper\.pods\.guest_image role"):
        resolve_image(str(tmp_path), "nothing-here")


def test_explicit_kernel_and_initrd(tmp_path: Path) -> None:
    (tmp_path / "k").write_bytes(b"k")
    (tmp_path / "i").write_bytes(b"i")
    image = resolve_image(str(tmp_path), None, str(tmp_path / "k"), str(tmp_path / "i"))
    assert (image.name, image.kernel_args, image.kernel_version) == ("custom", DEFAULT_KERNEL_ARGS, None)


@pytest.mark.parametrize(
    ("kernel", "initrd", "option"),
    [("/k", None, "kernel"), (None, "/i", "initrd"), ("/does/not/exist", "/nor/this", "kernel")],
)
def test_explicit_paths_need_both_and_must_exist(kernel: str | None, initrd: str | None, option: str) -> None:
    with pytest.raises(SpecError) as err:
        resolve_image("/nonexistent", None, kernel, initrd)
    assert err.value.option == option


# -- host.json -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "accelerator", "extra"),
    [
        ('{"accelerator": "tcg", "format": 1}', "tcg", {}),
        ('{"accelerator": "kvm", "format": 1, "qemu": "7.2"}', "kvm", {"qemu": "7.2"}),
        ('{"accelerator": "kvm"}', "kvm", {}),
    ],
)
def test_host_json_parsing(text: str, accelerator: str, extra: dict[str, Any]) -> None:
    info = parse_host_info(text)
    assert (info.accelerator, info.extra) == (accelerator, extra)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "not valid JSON"),
        ('"tcg"', "JSON object"),
        ('{"accelerator": "auto"}', "expected 'kvm' or 'tcg'"),
        ("{}", "accelerator is None"),
        ('{"accelerator": "tcg", "format": "1"}', "format is '1'"),
        ('{"accelerator": "tcg", "format": true}', "format is True"),
    ],
)
def test_bad_host_json(text: str, needle: str) -> None:
    with pytest.raises(ImageError) as err:
        parse_host_info(text, "/r/host.json")
    assert needle in err.value.message
    assert "/r/host.json" in err.value.message


@pytest.mark.parametrize(("requested", "stored", "expected"), [("kvm", "tcg", "kvm"), ("tcg", "kvm", "tcg"), ("auto", "tcg", "tcg"), ("auto", "kvm", "kvm")])
def test_resolve_accelerator(tmp_path: Path, requested: str, stored: str, expected: str) -> None:
    (tmp_path / "host.json").write_text(json.dumps({"accelerator": stored, "format": 1}))
    assert resolve_accelerator(requested, str(tmp_path)) == expected


def test_auto_without_host_json_says_to_run_the_host_role(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        resolve_accelerator("auto", str(tmp_path))
    assert err.value.option == "accelerator"
    assert "run the hyper.pods.host role first" in err.value.message
    assert resolve_accelerator("tcg", str(tmp_path)) == "tcg"  # explicit needs no host.json


def test_unknown_accelerator(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="accelerator='xen'"):
        resolve_accelerator("xen", str(tmp_path))


def test_unreadable_host_json(tmp_path: Path) -> None:
    os.mkdir(tmp_path / "host.json")
    with pytest.raises(ImageError, match="cannot read"):
        load_host_info(str(tmp_path))
