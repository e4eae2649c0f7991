# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""The edge between AnsibleModule and the library: HyperError becomes fail_json here, and only here."""

from __future__ import annotations

from typing import Any, Callable

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError

# fail_json keys a HyperError's details must not overwrite.
_RESERVED = frozenset(("msg", "failed", "changed", "exception", "invocation", "warnings", "deprecations"))

ModuleFunction = Callable[[dict[str, Any], bool], dict[str, Any]]


def run_module(module: AnsibleModule, fn: ModuleFunction) -> None:
    """Call ``fn(params, check_mode)`` and exit with its result, or fail with the HyperError's message."""
    try:
        result = fn(dict(module.params), module.check_mode)
    except HyperError as err:
        extra = {key: value for key, value in err.details.items() if key not in _RESERVED}
        module.fail_json(msg=err.message, **extra)
        return
    module.exit_json(**result)
