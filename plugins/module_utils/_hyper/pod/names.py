# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""Pod names and VM ids: the pod name is the domain title, the domain name is ``hyper-<8 hex>``."""

from __future__ import annotations

import re

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError

VM_PREFIX = "hyper-"
POD_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def check_pod_name(value: object, option: str = "name") -> str:
    if not isinstance(value, str) or not POD_NAME.fullmatch(value):
        raise SpecError(option, value, "must be 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit")
    return value
