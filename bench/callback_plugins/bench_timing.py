# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Callback for bench/ansible_bench.py: the seconds each loop item of each task took, as JSON lines.

An item's time runs from the previous item's end (or the task's start) to its own end, so with
forks=1 and one host it is the whole cost of that item: connection, module transfer and run.
Writes to the file named by BENCH_TIMING_FILE.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: bench_timing
type: aggregate
short_description: Per-item task times for the hyper.pods benchmarks
description:
  - Appends one JSON line per loop item to the file named by E(BENCH_TIMING_FILE).
"""


class CallbackModule(CallbackBase):  # type: ignore[misc]
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timing"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self._path = os.environ.get("BENCH_TIMING_FILE", "")
        self._task = ""
        self._last = 0.0

    def _write(self, result: Any, ok: bool) -> None:
        now = time.monotonic()
        record = {"task": self._task, "host": result._host.get_name(), "seconds": now - self._last, "ok": ok}
        self._last = now
        if self._path:
            with open(self._path, "a", encoding="utf-8") as out:
                out.write(json.dumps(record) + "\n")

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._task = task.get_name()
        self._last = time.monotonic()

    def v2_runner_item_on_ok(self, result: Any) -> None:
        self._write(result, True)

    def v2_runner_item_on_failed(self, result: Any) -> None:
        self._write(result, False)
