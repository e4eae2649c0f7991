#!/usr/bin/env python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""CPU used by one pod's QEMU processes (each boot is a new one) and the host service over a window.

    cpu_window.py SECONDS VM_ID HOSTD_PID_FILE

Samples /proc/<pid>/stat every 0.2 s; a QEMU that exits between two samples loses at most 0.2 s of
its CPU. Prints JSON: the window, the CPU seconds of the QEMUs and of hyper-hostd, the boots seen,
and the host's busy share from /proc/stat (all engineers' load, for information).
"""

from __future__ import annotations

import json
import os
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rpartition(b")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def read_pid(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def host_busy() -> tuple[int, int]:
    with open("/proc/stat", encoding="ascii") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def main() -> int:
    seconds, vm_id, hostd_pid_file = float(sys.argv[1]), sys.argv[2], sys.argv[3]
    hostd = read_pid(hostd_pid_file)
    hostd_start = cpu_seconds(hostd) if hostd else None
    qemu: dict[int, tuple[float, float]] = {}  # pid → (first CPU seen, last CPU seen)
    busy0, total0 = host_busy()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pid = read_pid(f"/run/libvirt/qemu/{vm_id}.pid")
        if pid is not None:
            now = cpu_seconds(pid)
            if now is not None:
                # A QEMU first seen in the window started in it (or before: only its CPU in the window counts).
                first = qemu.get(pid, (now, now))[0]
                qemu[pid] = (first, now)
        time.sleep(0.2)
    busy1, total1 = host_busy()
    hostd_end = cpu_seconds(hostd) if hostd else None
    qemu_cpu = sum(last - first for first, last in qemu.values())
    hostd_cpu = (hostd_end - hostd_start) if hostd_start is not None and hostd_end is not None else 0.0
    print(
        json.dumps(
            {
                "window": seconds,
                "qemu_cpu": round(qemu_cpu, 2),
                "hostd_cpu": round(hostd_cpu, 2),
                "boots": len(qemu),
                "share_of_one_core": round((qemu_cpu + hostd_cpu) / seconds, 3),
                "host_busy_share": round((busy1 - busy0) / max(total1 - total0, 1), 3),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
