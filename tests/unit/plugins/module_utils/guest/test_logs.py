# Copyright: hyper.pods developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A container's log lines as the guest's log writer stamps them (guest/logs.py), read as guest input."""

from __future__ import annotations

from typing import Optional

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.logs import LogLine, log_lines, parse_log_line


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("1796276516.450161 hello", LogLine(1796276516.450161, "hello")),
        ("1796276516.450161 ", LogLine(1796276516.450161, "")),
        ("1796276516.450161  two spaces", LogLine(1796276516.450161, " two spaces")),
        ("hello", LogLine(None, "hello")),  # written before the writer stamped lines
        ("1796276516.45 short", LogLine(None, "1796276516.45 short")),
        ("9" * 40 + ".000000 huge", LogLine(None, "9" * 40 + ".000000 huge")),  # a hostile stamp is text, not a number
        ("", LogLine(None, "")),
    ],
)
def test_parse(line: str, expected: LogLine) -> None:
    got = parse_log_line(line)
    assert got.text == expected.text
    assert (got.time is None) == (expected.time is None)
    if expected.time is not None:
        assert got.time == pytest.approx(expected.time)


TEXT = "old line\n100.000001 a\n200.500000 b\n300.000000 c\n"


@pytest.mark.parametrize(
    ("since", "expected"),
    [(None, ["old line", "a", "b", "c"]), (0.0, ["a", "b", "c"]), (200.5, ["c"]), (200.4, ["b", "c"]), (300.0, [])],
)
def test_since(since: Optional[float], expected: list[str]) -> None:
    assert log_lines(TEXT, since) == expected
