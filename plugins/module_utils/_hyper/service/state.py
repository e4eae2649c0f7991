# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""The services state file read back from the guest, checked as if a user had typed it.

The file lives in the service container (``/etc/haproxy/hyper-services.json``), so root in the
guest can rewrite it. Before the host uses it (plan, render haproxy.cfg, add or remove VIPs on
``lo``), every service goes through ``normalise_service`` again, the same rules as the
``services`` option (names, addresses, ports, backends), and must come out exactly as stored; the
VIPs must be those the services need. Anything else is a ServiceError naming the pod and the
file, never a KeyError, TypeError or ValueError, and never a name with a newline in haproxy.cfg.
"""

from __future__ import annotations

import re
from typing import Any, Optional

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.replies import GuestReplyError, load_guest_json
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.plan import STATE_FORMAT
from ansible_collections.hyper.pods.plugins.module_utils._hyper.service.spec import normalise_service, service_vips

# What hyper_service writes for a pod of many services is a few hundred KiB at most.
STATE_LIMIT = 1024 * 1024
MAX_SERVICES = 1000
STATE_KEYS = ("format", "services", "vips", "config_sha256")
_SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")
_FIX = "remove it to start afresh (the next hyper_service task writes it again)"


class StateFileError(HyperError):
    """The services state file in the guest is not one hyper_service wrote."""


def _as_option(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored service as the ``services`` option would give it (the derived keys left out)."""
    backends = stored.get("backends")
    return {
        "name": stored.get("name"),
        "address": stored.get("address"),
        "port": stored.get("port"),
        "protocol": stored.get("protocol"),
        "balance": stored.get("balance"),
        "check": stored.get("check"),
        "backends": [{k: b.get(k) for k in ("address", "port", "weight", "enabled")} if isinstance(b, dict) else b for b in backends]
        if isinstance(backends, list)
        else backends,
    }


def check_state(value: object, where: str) -> dict[str, Any]:
    """``value`` (parsed JSON) as a state file, each service re-checked; StateFileError naming ``where`` otherwise."""
    if not isinstance(value, dict):
        raise StateFileError(f"{where}: is {type(value).__name__}, not a hyper_service state file; {_FIX}")
    unknown = sorted(str(k)[:40] for k in value if k not in STATE_KEYS)
    if unknown:
        raise StateFileError(f"{where}: unknown keys {unknown}, not a hyper_service state file; {_FIX}")
    if value.get("format", STATE_FORMAT) != STATE_FORMAT:
        raise StateFileError(f"{where}: format {value.get('format')!r}, not {STATE_FORMAT}; {_FIX}")
    services, vips = value.get("services"), value.get("vips")
    if not isinstance(services, list) or not isinstance(vips, list):
        raise StateFileError(f"{where}: services and vips are not lists, not a hyper_service state file; {_FIX}")
    if len(services) > MAX_SERVICES:
        raise StateFileError(f"{where}: {len(services)} services, more than the {MAX_SERVICES} the host reads; {_FIX}")
    checked = []
    for index, stored in enumerate(services):
        if not isinstance(stored, dict):
            raise StateFileError(f"{where}: services[{index}] is {type(stored).__name__}, not a service; {_FIX}")
        try:
            service = normalise_service(_as_option(stored), index)
        except SpecError as err:
            raise StateFileError(f"{where}: services[{index}]: {err.message}; {_FIX}") from None
        if service != stored:
            raise StateFileError(f"{where}: services[{index}] ({service['name']}) is not as hyper_service writes it; {_FIX}")
        checked.append(service)
    names = [s["name"] for s in checked]
    if len(set(names)) != len(names):
        raise StateFileError(f"{where}: a service is listed twice; {_FIX}")
    if vips != service_vips(checked):
        raise StateFileError(f"{where}: vips are not those of its services; {_FIX}")
    digest = value.get("config_sha256")
    if digest is not None and (not isinstance(digest, str) or not _SHA256.fullmatch(digest)):
        raise StateFileError(f"{where}: config_sha256 is not sha256:<64 hex digits>; {_FIX}")
    return {key: value[key] for key in STATE_KEYS if key in value} | {"services": checked}


def parse_state(data: Optional[bytes], where: str) -> Optional[dict[str, Any]]:
    """The state file's bytes (None: there is none yet) → the checked state; bounded in size, depth and count."""
    if data is None:
        return None
    try:
        value = load_guest_json(data, where, limit=STATE_LIMIT)
    except GuestReplyError as err:
        raise StateFileError(f"{err.message}; {_FIX}") from None
    return check_state(value, where)
