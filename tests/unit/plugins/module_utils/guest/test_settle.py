# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""hyper_pod's wait_settle (guest/settle.py): when started containers count as up, on a fake clock."""

from __future__ import annotations

from typing import Any, Optional

import pytest

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.settle import DEFAULT_SETTLE, MAX_SETTLE, SettleWatch, check_settle, not_running_reason


def st(status: str, pid: Optional[int] = 10, code: Optional[int] = None, restarts: int = 0) -> dict[str, Any]:
    return {"status": status, "pid": pid, "exit_code": code, "restarts": restarts}


@pytest.mark.parametrize(("value", "expected"), [(None, DEFAULT_SETTLE), (0, 0.0), (0.25, 0.25), ("1.5", 1.5), (MAX_SETTLE, MAX_SETTLE), (0.123, 0.12)])
def test_check_settle(value: Any, expected: float) -> None:
    assert check_settle(value) == expected


@pytest.mark.parametrize("value", [-0.1, MAX_SETTLE + 1, float("nan"), float("inf"), True, "soon", [1]])
def test_check_settle_refuses_naming_the_option(value: Any) -> None:
    with pytest.raises(SpecError, match="wait_settle"):
        check_settle(value)


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (st("exited", None, 3), "exited with code 3"),
        (st("exited", None), "exited"),
        (st("restarting", None, 1, 2), "exited with code 1 and is restarting (restart 2)"),
        (st("stopped", None, 137), "was stopped"),
        (st("created", None), "was written but never started"),
        (st("unknown", None), "is in an unknown state (unknown)"),
    ],
)
def test_not_running_reason(state: dict[str, Any], reason: str) -> None:
    assert not_running_reason(state) == reason


def test_zero_settle_is_up_at_the_first_sighting() -> None:
    watch = SettleWatch(["a", "b"], 0)
    assert watch.observe({"a": st("running"), "b": st("starting", None)}, 0.0, 0.05).starting
    assert watch.observe({"a": st("running"), "b": st("running", 11)}, 0.1, 0.15).up


def test_running_without_a_pid_is_still_starting() -> None:
    verdict = SettleWatch(["a"], 0).observe({"a": st("running", None)}, 0.0, 0.05)
    assert not verdict.up and verdict.starting and verdict.pending == ("a",)


def test_the_settle_is_counted_per_container_from_its_first_sighting() -> None:
    # a is seen at 1.0, b at 1.3: with 0.5 s, a is up from a call sent at 1.5, b from 1.8 (not 1.3 + 0.5 after a).
    watch = SettleWatch(["a", "b"], 0.5)
    first = watch.observe({"a": st("running", 10), "b": st("starting", None)}, 0.95, 1.0)
    assert first.starting and first.pending == ("a", "b")
    second = watch.observe({"a": st("running", 10), "b": st("running", 11)}, 1.25, 1.3)
    assert not second.starting and second.settle_left == pytest.approx(0.5)
    third = watch.observe({"a": st("running", 10), "b": st("running", 11)}, 1.6, 1.65)
    assert third.pending == ("b",) and third.settle_left == pytest.approx(0.15)
    assert watch.observe({"a": st("running", 10), "b": st("running", 11)}, 1.8, 1.85).up


def test_the_settle_runs_from_the_answer_to_the_next_sending() -> None:
    # The agent's latency never shortens it: seen in an answer at 1.2, a call sent at 1.6 is too early for 0.5 s.
    watch = SettleWatch(["a"], 0.5)
    watch.observe({"a": st("running")}, 1.0, 1.2)
    assert not watch.observe({"a": st("running")}, 1.6, 1.75).up
    assert watch.observe({"a": st("running")}, 1.7, 1.9).up


@pytest.mark.parametrize("later", [st("running", 12), st("running", 10, None, 1)])
def test_a_new_pid_or_a_restart_starts_the_settle_again(later: dict[str, Any]) -> None:
    watch = SettleWatch(["a"], 0.5)
    watch.observe({"a": st("running", 10)}, 0.0, 0.1)
    verdict = watch.observe({"a": later}, 0.7, 0.8)
    assert not verdict.up and verdict.settle_left == pytest.approx(0.5)
    assert watch.observe({"a": later}, 1.3, 1.4).up


@pytest.mark.parametrize("settle", [0, 0.2, 5])
def test_a_container_that_exited_fails_whatever_the_settle(settle: float) -> None:
    watch = SettleWatch(["a", "b"], settle)
    watch.observe({"a": st("running"), "b": st("running", 11)}, 0.0, 0.1)
    verdict = watch.observe({"a": st("running"), "b": st("exited", None, 3)}, 0.2, 0.3)
    assert not verdict.up and verdict.failed == "b" and not verdict.missing


def test_a_container_missing_from_the_answer() -> None:
    verdict = SettleWatch(["a", "b"], 0.2).observe({"a": st("running")}, 0.0, 0.1)
    assert verdict.failed == "b" and verdict.missing


def test_names_are_deduplicated_and_nothing_is_up_at_once() -> None:
    watch = SettleWatch(["a", "a"], 0.2)
    assert watch.names == ["a"]
    assert SettleWatch([], 0.2).observe({}, 0.0, 0.1).up
