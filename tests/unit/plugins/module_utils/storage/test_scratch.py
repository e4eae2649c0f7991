# Copyright: hyper.pods developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pod VM's scratch disk (storage/scratch.py): sizes, the disk made with mke2fs, its removal."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import ImageError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.commands import CommandFailed
from ansible_collections.hyper.pods.plugins.module_utils._hyper.storage import scratch
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.domain_xml import DiskSpec


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1G", 1 << 30), ("64M", 64 << 20), ("2GiB", 2 << 30), (0, 0), ("0", 0), (str(512 << 20), 512 << 20), ("16T", 16 << 40)],
)
def test_scratch_sizes(value: Any, expected: int) -> None:
    assert scratch.parse_scratch_size(value) == expected


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("63M", "between 64M and 16T"),
        ("17T", "between 64M and 16T"),
        ("1.5G", "such as 512M"),
        ("1G\nx", "such as 512M"),
        (True, "such as 512M"),
        ("100K", "whole number of MiB"),
        ("9" * 5000, "such as 512M"),
    ],
)
def test_bad_scratch_sizes_name_the_option(value: Any, needle: str) -> None:
    with pytest.raises(SpecError) as err:
        scratch.parse_scratch_size(value)
    assert err.value.message.startswith("option scratch_size=") and needle in err.value.message


@pytest.mark.parametrize(("value", "ok"), [("10M", True), ("1M", True), ("1G", True), ("0", False), ("2G", False), ("512K", False)])
def test_log_sizes(value: str, ok: bool) -> None:
    if ok:
        assert scratch.parse_log_size(value) > 0
    else:
        with pytest.raises(SpecError, match=r"^option log_size="):
            scratch.parse_log_size(value)


def test_the_disk_is_writable_with_discard_and_its_serial(tmp_path: Path) -> None:
    disk = scratch.scratch_disk(str(tmp_path), "hyper-0123", "vdc")
    assert disk == DiskSpec(path=str(tmp_path / "scratch" / "hyper-0123.raw"), target="vdc", serial="hyper-scratch", readonly=False, discard=True)


@pytest.mark.skipif(shutil.which("mke2fs") is None or shutil.which("dumpe2fs") is None, reason="needs e2fsprogs")
def test_create_makes_a_sparse_ext4_that_only_root_reads(tmp_path: Path) -> None:
    path = scratch.create_scratch(str(tmp_path), "hyper-0123", 1 << 30)
    stat = os.stat(path)
    assert stat.st_size == 1 << 30 and stat.st_blocks * 512 < 4 << 20  # sparse: the journal and tables are holes
    assert oct(stat.st_mode & 0o777) == "0o600" and oct(os.stat(tmp_path / "scratch").st_mode & 0o777) == "0o711"
    header = subprocess.run(["dumpe2fs", "-h", path], capture_output=True, text=True, check=True).stdout
    assert "has_journal" in header and "Filesystem volume name:   hyper-scratch" in header
    assert os.listdir(tmp_path / "scratch") == ["hyper-0123.raw"]  # no temporary file left
    assert scratch.scratch_usage(str(tmp_path), "hyper-0123") == {"size": 1 << 30, "allocated": stat.st_blocks * 512}
    scratch.remove_scratch(str(tmp_path), "hyper-0123")
    scratch.remove_scratch(str(tmp_path), "hyper-0123")  # gone already: no error
    assert scratch.scratch_usage(str(tmp_path), "hyper-0123") is None


def test_a_failed_mkfs_leaves_nothing(tmp_path: Path) -> None:
    def failing(argv: Any, **_kwargs: Any) -> Any:
        raise CommandFailed(list(argv), 1, "", "mke2fs: no space", "exited with code 1")

    with pytest.raises(ImageError, match=r"cannot create the pod's scratch disk .*no space"):
        scratch.create_scratch(str(tmp_path), "hyper-0123", 64 << 20, runner=failing)
    assert os.listdir(tmp_path / "scratch") == []
