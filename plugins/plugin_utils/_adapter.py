# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""The plugins' side of the library's errors, in one place (community.docker's "one client, two adapters").

Modules map ``HyperError`` to ``fail_json`` in module_utils/_hyper/ansible_adapter.py; the
connection, inventory and action plugins map it here, each to the Ansible error its kind of
plugin raises, with the same message.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleParserError

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import (
    AgentTimeout,
    AgentUnavailable,
    ContainerError,
    DomainNotFound,
    HyperError,
    LibvirtFailure,
    SpecError,
)

# The errors that mean "cannot reach the pod" (Ansible's unreachable), as opposed to a failed task.
# ContainerError: the container is not (or no longer) running in the guest.
UNREACHABLE = (AgentUnavailable, AgentTimeout, DomainNotFound, LibvirtFailure, ContainerError)


def connection_error(err: HyperError, where: str) -> AnsibleError:
    """For the connection plugin: unreachable when the pod cannot be reached, a failed task otherwise."""
    message = f"{where}: {err.message}"
    if isinstance(err, UNREACHABLE):
        return AnsibleConnectionFailure(message)
    return AnsibleError(message)


def inventory_error(err: HyperError, where: str) -> AnsibleParserError:
    """For the inventory plugin: the source cannot be parsed."""
    return AnsibleParserError(f"{where}: {err.message}")


def action_failure(result: dict[str, Any], err: Exception, option: Optional[str] = None) -> dict[str, Any]:
    """For action plugins: the task result of an error raised on the controller (before or between module runs)."""
    if isinstance(err, SpecError):
        result.update(failed=True, msg=err.message, option=err.option)
    elif isinstance(err, HyperError):
        result.update(failed=True, msg=err.message, **{k: v for k, v in err.details.items() if k not in ("msg", "failed", "changed")})
    else:
        result.update(failed=True, msg=str(err))
    if option is not None:
        result["option"] = option
    return result


def refuse_internal(args: Mapping[str, Any], internal: Sequence[str], plugin: str, hint: str) -> Optional[str]:
    """The message for an option only the action plugin sets, when the task sets it; None when none is set."""
    for option in internal:
        if args.get(option) is not None:
            return f"option {option} is set by the {plugin} action plugin; {hint}"
    return None
