# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""A VM's serial console log on the host (written by QEMU, kept under the state root's ``run/``)."""

from __future__ import annotations

import os

RUN_DIR = "run"
CONSOLE_TAIL_LINES = 30


def console_path(root: str, vm_id: str) -> str:
    return os.path.join(root, RUN_DIR, f"{vm_id}.console.log")


def console_tail(path: str, lines: int = CONSOLE_TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of a console log (empty when there is none yet); reads at most 256 bytes a line."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 256 * lines))
            data = handle.read()
    except OSError:
        return []
    text = data.decode("utf-8", errors="replace").replace("\r", "")
    return text.splitlines()[-lines:]


PANIC_MARK = b"Kernel panic - not syncing"
# How much of the console's end a panic check reads: a panic's line and its stack trace fit many times over.
PANIC_TAIL_BYTES = 64 * 1024


def console_panicked(path: str) -> bool:
    """Whether the end of a console log holds a kernel panic line (bounded read; False when there is no log).

    The log is the guest's own output, so a guest can claim a panic: it only makes its own start fail.
    """
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - PANIC_TAIL_BYTES))
            return PANIC_MARK in handle.read()
    except OSError:
        return False
