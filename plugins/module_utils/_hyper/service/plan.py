# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""plan_services: pure comparison of a pod's stored services (state file) and haproxy.cfg with the desired ones.

The current services come from the JSON state file the module writes beside haproxy.cfg, never
from parsing the configuration; the configuration text is only compared as a whole.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.spec import service_vips

STATE_FORMAT = 1
# In the order apply_plan carries them out.
ACTIONS = ("validate_config", "add_vips", "install_config", "reload", "remove_vips", "write_state")


def config_sha256(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def services_hash(services: Sequence[Mapping[str, Any]]) -> str:
    """Hash of the canonical JSON of a service list: ties a rendered configuration to the list it was rendered from."""
    text = json.dumps(list(services), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def stored_state(services: Sequence[Mapping[str, Any]], config: str) -> dict[str, Any]:
    """The state file's content: the services, the VIPs they put on ``lo``, and the hash of the config they were rendered into."""
    return {"format": STATE_FORMAT, "services": [dict(s) for s in services], "vips": service_vips(services), "config_sha256": config_sha256(config)}


@dataclass(frozen=True)
class ServicePlan:
    actions: list[str]
    services: list[dict[str, Any]]
    before_services: list[dict[str, Any]]
    vips_add: list[str]
    vips_remove: list[str]
    before_vips: list[str]
    after_vips: list[str]
    before_config: str
    after_config: str
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.actions)

    @property
    def config_changed(self) -> bool:
        return "install_config" in self.actions

    @property
    def reload(self) -> bool:
        return "reload" in self.actions

    def diff(self, config_path: str) -> list[dict[str, str]]:
        """Ansible's diff: the rendered configuration, then the VIPs of the pod's ``lo``."""
        return [
            {"before_header": config_path, "after_header": config_path, "before": self.before_config, "after": self.after_config},
            {
                "before_header": "VIPs on lo",
                "after_header": "VIPs on lo",
                "before": "".join(f"{vip}\n" for vip in self.before_vips),
                "after": "".join(f"{vip}\n" for vip in self.after_vips),
            },
        ]


def plan_services(current: Optional[Mapping[str, Any]], current_config: str, services: Sequence[Mapping[str, Any]], config: str) -> ServicePlan:
    """What to do to go from the stored state (None: none yet) and the running config to ``services`` rendered as ``config``.

    A config change is validated, installed and reloaded; VIPs are added before the reload (the new
    listeners need them) and removed after it (the old ones held them until then). The state file
    is rewritten whenever anything changes, or when it does not match what is there.
    """
    before_services = [dict(s) for s in (current or {}).get("services") or []]
    before_vips = [str(vip) for vip in (current or {}).get("vips") or []]
    after_vips = service_vips(services)
    vips_add = [vip for vip in after_vips if vip not in before_vips]
    vips_remove = [vip for vip in before_vips if vip not in after_vips]
    state = stored_state(services, config)
    actions: list[str] = []
    if config != current_config:
        actions.append("validate_config")
    if vips_add:
        actions.append("add_vips")
    if config != current_config:
        actions += ["install_config", "reload"]
    if vips_remove:
        actions.append("remove_vips")
    if actions or current is None or dict(current) != state:
        actions.append("write_state")
    return ServicePlan(
        actions=actions,
        services=[dict(s) for s in services],
        before_services=before_services,
        vips_add=vips_add,
        vips_remove=vips_remove,
        before_vips=before_vips,
        after_vips=after_vips,
        before_config=current_config,
        after_config=config,
        state=state,
    )
