# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""Argument spec of one service, shared by hyper_service and hyper_pod's ``services`` option."""

from __future__ import annotations

from typing import Any

BACKEND_OPTIONS: dict[str, dict[str, Any]] = {
    "address": {"type": "str", "required": True},
    "port": {"type": "int", "required": True},
    "weight": {"type": "int", "default": 1},
    "enabled": {"type": "bool", "default": True},
}

SERVICE_OPTIONS: dict[str, dict[str, Any]] = {
    "name": {"type": "str", "required": True},
    "address": {"type": "str"},
    "port": {"type": "int"},
    # No choices: the library's message says why only tcp.
    "protocol": {"type": "str", "default": "tcp"},
    "balance": {"type": "str", "choices": ["roundrobin", "leastconn", "source"], "default": "roundrobin"},
    "check": {
        "type": "dict",
        "options": {"enabled": {"type": "bool", "default": False}, "interval": {"type": "int", "default": 2000}},
    },
    "backends": {"type": "list", "elements": "dict", "default": [], "options": BACKEND_OPTIONS},
}
