# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""Controller side of services: render the haproxy template with Ansible's templar (action plugins hyper_service and hyper_pod)."""

from __future__ import annotations

import os
from typing import Any, Optional

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

try:
    from ansible.template import trust_as_template
except ImportError:  # ansible-core < 2.19 templates any string

    def trust_as_template(value: Any) -> Any:  # type: ignore[misc]
        return value


DEFAULT_TEMPLATE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "templates", "haproxy.cfg.j2")


class RenderError(Exception):
    """The template could not be read or rendered; the message names the option and the template."""


def render_services(action: ActionBase, template: Optional[str], services: list[dict[str, Any]], task_vars: dict[str, Any], pod: Any, container: str) -> str:
    """The haproxy configuration of ``services`` from ``template`` (the collection's own when None)."""
    try:
        path = DEFAULT_TEMPLATE if template is None else action._find_needle("templates", str(template))
        with open(path, encoding="utf-8") as handle:
            source = handle.read()
    except (AnsibleError, OSError) as err:
        raise RenderError(f"option template={template!r}: cannot read it: {err}") from None
    variables = dict(task_vars)
    variables.update(
        services=services,
        hyper_service={"pod": pod, "container": container},
        ansible_managed=task_vars.get("ansible_managed") or "Ansible managed",
    )
    try:
        templar = action._templar.copy_with_new_env(searchpath=[os.path.dirname(path)], available_variables=variables)
        config = templar.template(trust_as_template(source), escape_backslashes=False)
    except AnsibleError as err:
        raise RenderError(f"option template={template or DEFAULT_TEMPLATE!r}: rendering failed: {err}") from None
    return str(config if config is not None else "")
