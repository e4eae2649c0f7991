# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""Argument specs of the image options; twins of the ``hyper.pods.images`` doc fragments (a unit test keeps them in step).

``REGISTRY_AUTH_SPEC`` (fragment ``hyper.pods.images``): hyper_pod's and hyper_image's ``registry_auth``.
``CACHE_ARGUMENT_SPEC`` (fragment ``hyper.pods.images.cache``): the image modules' ``root``.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.info import DEFAULT_ROOT

REGISTRY_AUTH_SPEC: dict[str, dict[str, Any]] = {
    "registry_auth": {
        "type": "dict",
        "no_log": False,
        "options": {
            "username": {"type": "str"},
            "password": {"type": "str", "no_log": True},
            "auth_file": {"type": "path", "no_log": False},
        },
        "required_together": [("username", "password")],
        "mutually_exclusive": [("username", "auth_file"), ("password", "auth_file")],
    },
}

CACHE_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "root": {"type": "path", "default": DEFAULT_ROOT, "aliases": ["hyper_root"]},
}
