#!/usr/bin/env python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Delete the nftables rules of the given VMs from the hyper_pods tables, as a host reboot would lose them.

    flush_rules.py VM_ID...

The hyper_pods table is shared by every pod on the host (one rule per mapping, its comment
"<vm id> <fingerprint>"): only the rules whose comment names one of these VMs are deleted, by handle.
Prints the number deleted.
"""

from __future__ import annotations

import json
import subprocess
import sys


def main() -> int:
    vm_ids = set(sys.argv[1:])
    listing = json.loads(subprocess.run(["nft", "-j", "-a", "list", "ruleset"], check=True, capture_output=True, text=True).stdout)
    deleted = 0
    for item in listing.get("nftables", []):
        rule = item.get("rule")
        if not rule or rule.get("table") != "hyper_pods":
            continue
        if str(rule.get("comment", "")).split(" ", maxsplit=1)[0] not in vm_ids:
            continue
        subprocess.run(["nft", "delete", "rule", rule["family"], rule["table"], rule["chain"], "handle", str(rule["handle"])], check=True)
        deleted += 1
    print(deleted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
