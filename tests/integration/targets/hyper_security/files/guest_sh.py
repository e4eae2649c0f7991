# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``guest_sh.py VM SCRIPT``: run SCRIPT with the guest's own sh as guest root (what root in a broken-out container could do).

Prints the script's stdout, exits with its code. Test helper of the hyper_security target only.
"""

from __future__ import annotations

import base64
import json
import sys
import time

import libvirt
import libvirt_qemu


def agent(dom: libvirt.virDomain, command: str, arguments: dict[str, object]) -> dict[str, object]:
    reply = libvirt_qemu.qemuAgentCommand(dom, json.dumps({"execute": command, "arguments": arguments}), 30, 0)
    return json.loads(reply)["return"]


def main() -> int:
    vm, script = sys.argv[1], sys.argv[2]
    conn = libvirt.open("qemu:///system")
    try:
        dom = conn.lookupByName(vm)
        pid = agent(dom, "guest-exec", {"path": "/bin/sh", "arg": ["-c", script], "capture-output": True})["pid"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = agent(dom, "guest-exec-status", {"pid": pid})
            if status.get("exited"):
                sys.stdout.write(base64.b64decode(str(status.get("out-data", ""))).decode("utf-8", "replace"))
                sys.stderr.write(base64.b64decode(str(status.get("err-data", ""))).decode("utf-8", "replace"))
                return int(str(status.get("exitcode", 1)))
            time.sleep(0.05)
        print("timed out", file=sys.stderr)
        return 124
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main())
