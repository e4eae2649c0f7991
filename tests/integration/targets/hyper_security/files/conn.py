# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``conn.py put|fetch HOST SRC DEST``: one put_file or fetch_file of the hyper connection plugin, as Ansible calls it.

Prints ``ok`` or ``error: <message>`` and exits 0 or 1. Test helper of the hyper_security target only.
"""

from __future__ import annotations

import sys

from ansible.errors import AnsibleError
from ansible.playbook.play_context import PlayContext
from ansible.plugins.loader import connection_loader, init_plugin_loader


def main() -> int:
    action, host, src, dest = sys.argv[1:5]
    init_plugin_loader()  # the collection finder, from the configured collections paths (ANSIBLE_COLLECTIONS_PATH)
    conn = connection_loader.get("hyper.pods.hyper", PlayContext())
    conn.set_options(direct={"remote_addr": host})
    try:
        if action == "put":
            conn.put_file(src, dest)
        else:
            conn.fetch_file(src, dest)
    except AnsibleError as err:
        print(f"error: {err.message}")
        return 1
    finally:
        conn.close()
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
