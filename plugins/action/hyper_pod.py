# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action plugin of hyper_pod: with ``services``, renders the haproxy configuration on the controller.

Without ``services`` it only runs the module. With them, the pod's services are exactly the
listed ones, so the configuration is rendered here from that list (as hyper_service does) and
sent to the module with the list's hash. A ``warnings`` list (what the from_kube and from_hyperd
filters did not convert) is shown as the task's warnings and not sent to the module.


With ``async`` the module runs under Ansible's async_wrapper like any module (the rendering
happens before, on the controller), so ``poll: 0`` and ``async_status`` work as for a plain module.
"""

from __future__ import annotations

from typing import Any, Optional

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.boot_slots import async_too_short
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.boot import DEFAULT_WAIT_TIMEOUT
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.plan import services_hash
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.spec import final_services, normalise_services
from ansible_collections.hyper.pods.plugins.plugin_utils._adapter import action_failure, refuse_internal
from ansible_collections.hyper.pods.plugins.plugin_utils._env_file import expand_env_files
from ansible_collections.hyper.pods.plugins.plugin_utils._service_render import RenderError, render_services

MODULE = "hyper.pods.hyper_pod"
INTERNAL_OPTIONS = ("service_config", "services_hash")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_async = True
    _supports_check_mode = True

    def run(self, tmp: Optional[str] = None, task_vars: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        refused = refuse_internal(args, INTERNAL_OPTIONS, "hyper_pod", "use service_template to shape the configuration")
        if refused:
            result.update(failed=True, msg=refused)
            return result
        if self._task.async_val and not self._task.check_mode:
            # Ansible SIGKILLs an async module at its limit: refuse a limit a boot cannot fit in, before anything is made.
            why = async_too_short(self._task.async_val, args.get("state"), args.get("wait_timeout"), DEFAULT_WAIT_TIMEOUT)
            if why:
                result.update(failed=True, msg=why)
                return result
        # The from_kube and from_hyperd filters list what they did not convert under "warnings": shown, not sent on.
        warnings = args.pop("warnings", None)
        if warnings is not None and (not isinstance(warnings, list) or not all(isinstance(w, str) for w in warnings)):
            result.update(failed=True, msg=f"option warnings (from the from_kube and from_hyperd filters) must be a list of strings, not {warnings!r}")
            return result
        try:
            args = expand_env_files(args, self._find_env_file)
        except SpecError as err:
            return action_failure(result, err)
        template = args.pop("service_template", None)
        if args.get("services") is not None and args.get("state") not in ("absent", "stopped"):
            try:
                services = final_services([], normalise_services(args.get("services"), "present"), "present", True)
                args["service_config"] = render_services(self, template, services, task_vars, args.get("name"), "haproxy")
            except SpecError as err:
                return action_failure(result, err)
            except RenderError as err:
                return action_failure(result, RenderError(str(err).replace("option template=", "option service_template=")))
            args["services_hash"] = services_hash(services)
        # As ansible-core's normal action: a connection with its own async runs the module as is.
        wrap_async = bool(self._task.async_val) and not self._connection.has_native_async
        result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars, wrap_async=wrap_async))
        if warnings:
            result["warnings"] = [*warnings, *result.get("warnings", [])]
        return result

    def _find_env_file(self, path: str) -> str:
        """A container's env_file on the controller: absolute, or looked up as copy's src (role files/, playbook dir)."""
        try:
            return str(self._find_needle("files", path))
        except AnsibleError as err:
            raise SpecError("env_file", path, f"not found on the controller: {err}") from None
