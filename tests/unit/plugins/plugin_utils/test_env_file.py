# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A container's env_file as docker_container reads it, merged under env on the controller; errors never show a value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError
from ansible_collections.hyper.pods.plugins.plugin_utils._env_file import expand_env_files, parse_env_file


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("A=1\nB=two words\n", {"A": "1", "B": "two words"}),
        ("# comment\n\n   \n  A=1  \n", {"A": "1"}),
        ("A=\"quoted\"\nB='x'\n", {"A": '"quoted"', "B": "'x'"}),
        ("A=x=y\n", {"A": "x=y"}),
        ("A=\n", {"A": ""}),
        ("A=1\nA=2\n", {"A": "2"}),
        ("A=1\r\nB=2\r\n", {"A": "1", "B": "2"}),
        ("  # indented comment\nA=1", {"A": "1"}),
    ],
)
def test_docker_env_file_lines(text: str, expected: dict[str, str]) -> None:
    assert parse_env_file(text, "o", "/f") == expected


@pytest.mark.parametrize(("text", "line"), [("A=1\nsecret-without-equals\n", 2), ("=value\n", 1), ("A=1\nB=x\x00y\n", 2)])
def test_bad_lines_name_the_line_not_the_value(text: str, line: int) -> None:
    with pytest.raises(SpecError, match=f"line {line} ") as failed:
        parse_env_file(text, "containers[app].env_file", "/f")
    assert "secret" not in failed.value.message and "x\x00y" not in failed.value.message


def test_merged_under_env(tmp_path: Path) -> None:
    (tmp_path / "app.env").write_text("A=file\nB=file\n")
    args: dict[str, Any] = {
        "name": "p",
        "containers": [{"name": "app", "image": "i", "env_file": "app.env", "env": {"B": "env"}}, {"name": "other", "image": "i"}],
    }
    out = expand_env_files(args, lambda path: str(tmp_path / path))
    assert out["containers"] == [{"name": "app", "image": "i", "env": {"A": "file", "B": "env"}}, {"name": "other", "image": "i"}]
    assert args["containers"][0]["env_file"] == "app.env"  # the task's own args are left alone
    assert expand_env_files({"name": "p"}, str) == {"name": "p"}


def test_files_that_cannot_be_read(tmp_path: Path) -> None:
    def find(path: str) -> str:
        raise SpecError("env_file", path, "not found on the controller")

    with pytest.raises(SpecError, match=r"option containers\[app\]\.env_file='x.env': not found on the controller"):
        expand_env_files({"containers": [{"name": "app", "env_file": "x.env"}]}, find)
    with pytest.raises(SpecError, match=r"containers\[app\]\.env_file='/nonexistent/x': cannot read it"):
        expand_env_files({"containers": [{"name": "app", "env_file": "/nonexistent/x"}]}, str)
    (tmp_path / "bin.env").write_bytes(b"A=\xff\n")
    with pytest.raises(SpecError, match="is not UTF-8"):
        expand_env_files({"containers": [{"name": "app", "env_file": str(tmp_path / "bin.env")}]}, str)
