# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A container's health from the guest's status reply: read when well formed, refused when not (the guest is hostile)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.containers import parse_status
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.health import last_output, parse_health
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.replies import GuestReplyError


def b64(text: str | bytes) -> str:
    return base64.b64encode(text if isinstance(text, bytes) else text.encode()).decode()


def result(code: int = 0, output: str = "", duration: int = 31, age: int = 240) -> dict[str, Any]:
    return {"exit_code": code, "duration_cs": duration, "age_cs": age, "output": b64(output)}


def test_a_good_reply() -> None:
    health = parse_health({"status": "unhealthy", "failing_streak": 3, "log": [result(1, "bad\n"), result(-1, "slow"), result(0, "ok")]}, "web")
    assert health == {
        "status": "unhealthy",
        "failing_streak": 3,
        "log": [
            {"exit_code": 1, "duration": 0.31, "age": 2.4, "output": "bad\n"},
            {"exit_code": None, "duration": 0.31, "age": 2.4, "output": "slow"},
            {"exit_code": 0, "duration": 0.31, "age": 2.4, "output": "ok"},
        ],
    }
    assert last_output(health) == "bad"
    assert last_output(parse_health({"status": "starting", "failing_streak": 0, "log": []}, "web")) == ""


def test_control_characters_and_bad_utf8_become_question_marks() -> None:
    health = parse_health({"status": "healthy", "failing_streak": 0, "log": [{**result(), "output": b64(b"a\x1b[2Jb\xff\tc\n")}]}, "web")
    assert health["log"][0]["output"] == "a?[2Jb\ufffd\tc\n"


@pytest.mark.parametrize(
    ("health", "message"),
    [
        ("healthy", "not a JSON object"),
        ({"status": "dead", "failing_streak": 0, "log": []}, "unknown status 'dead'"),
        ({"status": "healthy", "failing_streak": -1, "log": []}, "failing_streak"),
        ({"status": "healthy", "failing_streak": True, "log": []}, "failing_streak"),
        ({"status": "healthy", "failing_streak": 0, "log": {}}, "log is not a list"),
        ({"status": "healthy", "failing_streak": 0, "log": [result()] * 6}, "at most 5"),
        ({"status": "healthy", "failing_streak": 0, "log": ["x"]}, r"log\[0\]: str, not a JSON object"),
        ({"status": "healthy", "failing_streak": 0, "log": [{**result(), "exit_code": 256}]}, "exit_code"),
        ({"status": "healthy", "failing_streak": 0, "log": [{**result(), "exit_code": -2}]}, "exit_code"),
        ({"status": "healthy", "failing_streak": 0, "log": [{**result(), "duration_cs": -5}]}, "duration_cs"),
        ({"status": "healthy", "failing_streak": 0, "log": [{**result(), "age_cs": "1"}]}, "age_cs"),
        ({"status": "healthy", "failing_streak": 0, "log": [{**result(), "output": "!!!"}]}, "not valid base64"),
        ({"status": "healthy", "failing_streak": 0, "log": [{**result(), "output": "é"}]}, "not valid base64"),
        ({"status": "healthy", "failing_streak": 0, "log": [{**result(), "output": b64("x" * 8192)}]}, "at most"),
        ({"status": "healthy", "failing_streak": 0, "log": [{**result(), "output": None}]}, "output is not a base64 text"),
    ],
)
def test_a_hostile_reply_is_refused(health: Any, message: str) -> None:
    with pytest.raises(GuestReplyError, match=message):
        parse_health(health, "web")


def test_status_carries_health_only_where_the_guest_gives_it() -> None:
    text = json.dumps(
        {
            "web": {"status": "running", "pid": 5, "exit_code": None, "restarts": 0, "health": {"status": "healthy", "failing_streak": 0, "log": [result()]}},
            "db": {"status": "running", "pid": 6, "exit_code": None, "restarts": 0},
        }
    )
    states = parse_status(text)
    assert states["web"]["health"]["status"] == "healthy"
    assert "health" not in states["db"]
    with pytest.raises(GuestReplyError, match="container web health: unknown status"):
        parse_status(text.replace('"healthy"', '"ill"'))
