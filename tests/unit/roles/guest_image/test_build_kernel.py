# Copyright: hyper.pods developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure parts of roles/guest_image/files/build_kernel.py and the shipped config fragment; built_kernel of build_initrd.py."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

FILES = Path(__file__).resolve().parents[4] / "roles" / "guest_image" / "files"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, FILES / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


bk = _load("build_kernel")
bi = _load("build_initrd")
FRAGMENT = (FILES / "pod_kernel.config").read_text()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("CONFIG_A=y\n", {"CONFIG_A": "y"}),
        ("# reason\nCONFIG_A=y\n\n# CONFIG_B is not set\n", {"CONFIG_A": "y", "CONFIG_B": None}),
        ("CONFIG_A=n\n", {"CONFIG_A": None}),
        ('CONFIG_CMDLINE="a b"\nCONFIG_NR=64\n', {"CONFIG_CMDLINE": '"a b"', "CONFIG_NR": "64"}),
        ("# Automatically generated file; DO NOT EDIT.\n# Linux/x86 6.1 Kernel Configuration\n", {}),
    ],
)
def test_parse_config(text: str, expected: dict[str, str | None]) -> None:
    assert bk.parse_config(text) == expected


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("CONFIG_A=y # why\n", "reasons go on the line above"),
        ('CONFIG_A="open\n', "a value is"),
        ("CONFIG_A=y\nCONFIG_A=n\n", "CONFIG_A is set twice"),
        ("VIRTIO=y\n", "neither CONFIG_X=value"),
    ],
)
def test_bad_fragments_name_the_line(text: str, needle: str) -> None:
    with pytest.raises(bk.BuildError, match="line ") as err:
        bk.parse_config(text)
    assert needle in str(err.value)


@pytest.mark.parametrize(
    ("fragment", "final", "expected"),
    [
        ({"CONFIG_A": "y"}, {"CONFIG_A": "y", "CONFIG_B": "y"}, []),
        ({"CONFIG_A": "y"}, {}, ["CONFIG_A=y (got n, or not offered)"]),
        ({"CONFIG_A": None}, {"CONFIG_A": "y"}, ["CONFIG_A=n (got y)"]),
        ({"CONFIG_A": None}, {}, []),
        ({"CONFIG_NR": "64"}, {"CONFIG_NR": "1"}, ["CONFIG_NR=64 (got 1)"]),
    ],
)
def test_config_mismatches(fragment: dict[str, str | None], final: dict[str, str | None], expected: list[str]) -> None:
    assert bk.config_mismatches(fragment, final) == expected


def test_digest_changes_with_every_input() -> None:
    base = bk.build_digest("aa", "CONFIG_A=y\n", ["gcc 12", "ld 2.40"])
    assert base == bk.build_digest("aa", "CONFIG_A=y\n", ["gcc 12", "ld 2.40"])
    others = {
        bk.build_digest("ab", "CONFIG_A=y\n", ["gcc 12", "ld 2.40"]),
        bk.build_digest("aa", "CONFIG_A=n\n", ["gcc 12", "ld 2.40"]),
        bk.build_digest("aa", "CONFIG_A=y\n", ["gcc 13", "ld 2.40"]),
    }
    assert base not in others and len(others) == 3


@pytest.mark.parametrize(
    ("which", "headers", "expected"),
    [
        ({"gcc": "/usr/bin/gcc", "flex": "/usr/bin/flex"}, {"/usr/include/gelf.h": True}, []),
        ({"gcc": None, "flex": None, "ld": None}, {"/usr/include/gelf.h": True}, ["binutils", "flex", "gcc"]),
        ({"bc": "/usr/bin/bc"}, {"/usr/include/gelf.h": False}, ["libelf-dev"]),
    ],
)
def test_missing_tools_are_packages(which: dict[str, str | None], headers: dict[str, bool], expected: list[str]) -> None:
    assert bk.missing_tools(which, headers) == expected


@pytest.mark.parametrize(("value", "cpus", "expected"), [(0, 2, 2), ("", 4, 4), (None, 0, 1), (3, 2, 3), ("1", 8, 1)])
def test_parse_jobs(value: object, cpus: int, expected: int) -> None:
    assert bk.parse_jobs(value, cpus) == expected


@pytest.mark.parametrize(("value", "needle"), [(-1, "0 or more"), ("two", "whole number")])
def test_bad_jobs_name_the_variable(value: object, needle: str) -> None:
    with pytest.raises(bk.BuildError, match="guest_image_kernel_build_jobs=") as err:
        bk.parse_jobs(value, 2)
    assert needle in str(err.value)


@pytest.mark.parametrize(("text", "ok"), [("6.1.192\n", True), ("", False), ("6.1 x", False), ("../x", False)])
def test_kernel_release(text: str, ok: bool) -> None:
    if ok:
        assert bk.kernel_release(text) == text.strip()
    else:
        with pytest.raises(bk.BuildError):
            bk.kernel_release(text)


# --------------------------------------------------------------------------- the shipped fragment


def test_fragment_parses_and_keeps_modules_off() -> None:
    options = bk.parse_config(FRAGMENT)
    assert options["CONFIG_MODULES"] is None
    for needed in (
        "CONFIG_PVH",
        "CONFIG_VIRTIO_PCI",
        "CONFIG_VIRTIO_BLK",
        "CONFIG_VIRTIO_NET",
        "CONFIG_VIRTIO_CONSOLE",
        "CONFIG_VIRTIO_FS",
        "CONFIG_OVERLAY_FS",
        "CONFIG_EXT4_FS",
        "CONFIG_CGROUPS",
        "CONFIG_SECCOMP_FILTER",
        "CONFIG_HOTPLUG_PCI_PCIE",
        "CONFIG_RD_LZ4",
    ):
        assert options[needed] == "y", needed


def test_every_option_of_the_fragment_has_a_reason_above_it() -> None:
    lines = FRAGMENT.splitlines()
    for number, line in enumerate(lines):
        if line.startswith("CONFIG_") or bk.UNSET_LINE.match(line):
            above = lines[number - 1] if number else ""
            assert above.startswith("# ") and not bk.UNSET_LINE.match(above) and len(above) > 4, f"line {number + 1}: {line} has no reason above it"


# --------------------------------------------------------------------------- build_initrd.py: reading a build


def _build_dir(tmp_path: Path, vmlinux: bytes = b"\x7fELF kernel", config: str = "CONFIG_RD_LZ4=y\n", record: dict[str, object] | None = None) -> Path:
    (tmp_path / "vmlinux").write_bytes(vmlinux)
    (tmp_path / "config").write_text(config)
    info = {"digest": "d" * 64, "release": "6.1.192", "vmlinux_sha256": hashlib.sha256(vmlinux).hexdigest(), "build_seconds": 600.0, "jobs": 2}
    (tmp_path / "build.json").write_text(json.dumps(record if record is not None else info))
    return tmp_path


def test_built_kernel_records_the_inputs_not_the_timing(tmp_path: Path) -> None:
    record, data, release = bi.built_kernel(str(_build_dir(tmp_path)), "lz4")
    assert data == b"\x7fELF kernel" and release == "6.1.192"
    assert record["digest"] == "d" * 64
    assert "build_seconds" not in record and "jobs" not in record


@pytest.mark.parametrize(
    ("kwargs", "compression", "needle"),
    [
        ({"vmlinux": b"MZ bzImage"}, "lz4", "not an ELF kernel"),
        ({"record": {"vmlinux_sha256": "00"}}, "lz4", "does not match its build.json"),
        ({"config": "CONFIG_RD_GZIP=y\n"}, "lz4", "CONFIG_RD_LZ4 is not set"),
    ],
)
def test_built_kernel_refuses_what_it_cannot_boot(tmp_path: Path, kwargs: dict[str, object], compression: str, needle: str) -> None:
    with pytest.raises(bi.BuildError, match=needle):
        bi.built_kernel(str(_build_dir(tmp_path, **kwargs)), compression)  # type: ignore[arg-type]


def test_built_kernel_without_a_record(tmp_path: Path) -> None:
    with pytest.raises(bi.BuildError, match="no finished pod kernel build"):
        bi.built_kernel(str(tmp_path), "lz4")
