# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""ensure_pool: the hyper_pool module's one call. Spec → plan (pure) → apply: the pool's definition and its VMs.

The pool's definition (name, size, template) is ``<root>/pools/<name>.json``; its VMs are libvirt's
(pool/vms.py). ``present`` removes the pool's failed and stale VMs (a template changed, an image
rebuilt), idle VMs beyond ``size``, and boots the missing ones; ``absent`` removes its idle VMs and
the definition. A VM a claim holds is never removed; pods that came from the pool are pods and are
never touched. The host service does not fill pools yet: hyper_pool does it itself (``filled_by``).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import HyperError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import AgentTransport, LibvirtAgentTransport
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest_image.manifest import check_image_name
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.info import DEFAULT_ROOT, resolve_accelerator
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.locks import held, lock_dir
from ansible_collections.hyper.pods.plugins.module_utils._hyper.hostd.state import service_status
from ansible_collections.hyper.pods.plugins.module_utils._hyper.network.networks import normalise_networks
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.names import check_pod_name
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.spec import DEFAULT_MEMORY_MIB, DEFAULT_VCPUS
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.store import new_vm_id
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pool.template import PoolTemplate
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pool.vms import BOOTING, FAILED, READY, PoolBooter, PoolVm, list_pool_vms, remove_idle
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import DEFAULT_URI, LibvirtClient

POOLS_DIR = "pools"
POOL_FORMAT = 1
MAX_POOL_SIZE = 32
DEFAULT_POOL_SIZE = 1
DEFAULT_BOOT_TIMEOUT = 120.0
# One hyper_pool task per pool at a time (a second one waits for the first's fill).
POOL_LOCK_TIMEOUT = 600.0
FILLED_BY_MODULE = "hyper_pool (the host service does not keep pools filled: each hyper_pool run fills its pool)"


@dataclass(frozen=True)
class PoolSpec:
    name: str
    state: str
    size: int
    image: str
    vcpus: int
    memory: int
    accelerator: str
    networks: tuple[str, ...]
    boot_timeout: float


@dataclass(frozen=True)
class PoolPlan:
    """What a run does: VMs to remove (by reason) and how many to boot; the before/after of the diff."""

    actions: list[str]
    remove: list[tuple[PoolVm, str]]
    boot: int
    write_definition: bool
    remove_definition: bool
    before: dict[str, Any]
    after: dict[str, Any]

    @property
    def changed(self) -> bool:
        return bool(self.actions)


def _int(params: Mapping[str, Any], option: str, default: int, low: int, high: int) -> int:
    value = params.get(option)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpecError(option, value, f"must be an integer from {low} to {high}")
    return value


def normalise_pool(params: Mapping[str, Any]) -> PoolSpec:
    state = str(params.get("state") or "present")
    if state not in ("present", "absent"):
        raise SpecError("state", state, "must be present or absent")
    networks = normalise_networks(params.get("networks"))
    for index, net in enumerate(networks):
        if net.get("address"):
            raise SpecError(f"networks[{index}]", net, "a pool's networks are names only: a static address is the pod's")
    timeout = params.get("boot_timeout")
    boot_timeout = DEFAULT_BOOT_TIMEOUT if timeout is None else float(timeout)
    if boot_timeout <= 0:
        raise SpecError("boot_timeout", timeout, "must be a positive number of seconds")
    return PoolSpec(
        name=check_pod_name(params.get("name"), "name"),
        state=state,
        size=_int(params, "size", DEFAULT_POOL_SIZE, 0, MAX_POOL_SIZE),
        image=check_image_name(str(params.get("image") or "default"), "image"),
        vcpus=_int(params, "vcpus", DEFAULT_VCPUS, 1, 64),
        memory=_int(params, "memory", DEFAULT_MEMORY_MIB, 64, 1 << 20),
        accelerator=str(params.get("accelerator") or "auto"),
        networks=tuple(str(n["name"]) for n in networks),
        boot_timeout=boot_timeout,
    )


def pool_template(spec: PoolSpec, root: str, hashes: Optional[dict[str, str]] = None) -> PoolTemplate:
    """The template of ``spec``: the guest image resolved (its initrd hashed), the accelerator resolved."""
    # pod/engine.py's resolve_guest: the same paths and hash a pod of this image stores.
    from ansible_collections.hyper.pods.plugins.module_utils._hyper.pod.engine import resolve_guest  # pylint: disable=import-outside-toplevel

    image, stored = resolve_guest(root, {"image": spec.image}, hashes)
    return PoolTemplate(
        image=spec.image,
        kernel=str(stored["kernel"]),
        initrd=str(stored["initrd"]),
        initrd_sha256=str(stored["initrd_sha256"]),
        kernel_args=image.kernel_args.strip(),
        agent_channel=image.agent_channel,
        vcpus=spec.vcpus,
        memory=spec.memory,
        accelerator=resolve_accelerator(spec.accelerator, root),
        networks=spec.networks,
    )


# -- the definition on the host -------------------------------------------------------------------


def definition_path(root: str, name: str) -> str:
    return os.path.join(root, POOLS_DIR, f"{name}.json")


def read_definition(root: str, name: str) -> Optional[dict[str, Any]]:
    """The stored definition (host-written; still checked), or None."""
    try:
        with open(definition_path(root, name), encoding="utf-8") as handle:
            data = json.loads(handle.read(1 << 20))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != POOL_FORMAT or not isinstance(data.get("size"), int):
        return None
    return data


def write_definition(root: str, name: str, size: int, template: PoolTemplate) -> None:
    path = definition_path(root, name)
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump({"format": POOL_FORMAT, "name": name, "size": size, "template": template.to_json()}, handle, sort_keys=True, indent=1)
    os.replace(tmp, path)


def remove_definition(root: str, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(definition_path(root, name))


# -- plan (pure) ------------------------------------------------------------------------------------


def _summary(size: Optional[int], key: Optional[str], vms: list[PoolVm]) -> dict[str, Any]:
    return {"size": size, "template": key, "vms": sorted(v.vm_id for v in vms)}


def plan_pool(spec: PoolSpec, template: Optional[PoolTemplate], definition: Optional[Mapping[str, Any]], vms: list[PoolVm]) -> PoolPlan:
    """Compare the pool's spec with its definition and VMs; pure."""
    stored_key = None
    if definition is not None:
        with contextlib.suppress(HyperError):
            stored_key = PoolTemplate.from_json(definition.get("template")).key
    before = _summary(definition["size"] if definition else None, stored_key, vms)
    if spec.state == "absent":
        remove = [(v, "pool removed") for v in vms]
        actions = [f"remove {len(remove)} VM(s)"] if remove else []
        if definition is not None:
            actions.append("remove_definition")
        return PoolPlan(actions, remove, 0, False, definition is not None, before, _summary(None, None, []))
    if template is None:  # only an absent pool has none (above)
        raise ValueError("a pool to keep needs its template")
    key = template.key
    remove = [(v, "stale: its template changed") for v in vms if v.key != key]
    # Under the pool's lock no other run boots for it: a VM still booting was left by a run that ended.
    remove += [(v, "failed") for v in vms if v.key == key and v.status != READY]
    good = [v for v in vms if v.key == key and v.status == READY]
    extra = max(0, len(good) - spec.size)
    surplus = good[-extra:] if extra else []
    remove += [(v, "beyond the pool's size") for v in surplus]
    kept = [v for v in good if v not in surplus]
    boot = max(0, spec.size - len(kept))
    actions = []
    for reason in ("stale: its template changed", "failed", "beyond the pool's size"):
        count = sum(1 for _v, r in remove if r == reason)
        if count:
            actions.append(f"remove {count} VM(s): {reason}")
    if boot:
        actions.append(f"boot {boot} VM(s)")
    write = definition is None or definition.get("size") != spec.size or stored_key != key
    if write:
        actions.append("write_definition")
    after = {"size": spec.size, "template": key, "vms": sorted(v.vm_id for v in kept) + [f"(new {i + 1})" for i in range(boot)]}
    return PoolPlan(actions, remove, boot, write, False, before, after)


# -- apply -------------------------------------------------------------------------------------------


def pool_view(name: str, size: Optional[int], template: Optional[PoolTemplate], vms: list[PoolVm]) -> dict[str, Any]:
    key = template.key if template is not None else None
    counts = {s: sum(1 for v in vms if v.status == s) for s in (READY, BOOTING, FAILED)}
    return {
        "name": name,
        "size": size,
        "template": template.to_json() if template is not None else None,
        "template_key": key,
        "vms": [v.view(key) for v in vms],
        **counts,
    }


def ensure_pool(
    params: Mapping[str, Any],
    check_mode: bool,
    diff: bool = False,
    *,
    open_client: Callable[[str], LibvirtClient] = LibvirtClient.open,
    make_transport: Callable[[Any, str], AgentTransport] = LibvirtAgentTransport,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Bring the pool named in ``params`` to its ``state``; return the module result."""
    spec = normalise_pool(params)
    root = str(params.get("root") or DEFAULT_ROOT)
    uri = str(params.get("uri") or DEFAULT_URI)
    template = pool_template(spec, root) if spec.state == "present" else None
    with open_client(uri) as client:
        if check_mode:
            return _run(spec, template, root, client, check_mode, diff, make_transport, clock, sleep)
        what = f"hyper_pool task for pool {spec.name}"
        with held(os.path.join(lock_dir(root, what), f"pool-def-{spec.name}.lock"), what, POOL_LOCK_TIMEOUT, clock, sleep):
            return _run(spec, template, root, client, check_mode, diff, make_transport, clock, sleep)


def _run(
    spec: PoolSpec,
    template: Optional[PoolTemplate],
    root: str,
    client: LibvirtClient,
    check_mode: bool,
    diff: bool,
    make_transport: Callable[[Any, str], AgentTransport],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> dict[str, Any]:
    vms = list_pool_vms(client, spec.name)
    plan = plan_pool(spec, template, read_definition(root, spec.name), vms)
    hostd = service_status(root)
    result: dict[str, Any] = {"changed": plan.changed, "actions": list(plan.actions), "filled_by": FILLED_BY_MODULE, "hostd": hostd}
    if diff:
        result["diff"] = {"before": plan.before, "after": plan.after}
    if check_mode or not plan.changed:
        result["pool"] = pool_view(spec.name, spec.size if spec.state == "present" else None, template, vms)
        return result
    removed: list[str] = []
    kept: list[str] = []
    for vm, _reason in plan.remove:
        (removed if remove_idle(client, root, vm) else kept).append(vm.vm_id)
    result["removed"] = removed
    if kept:
        result["kept_claimed"] = kept
    if plan.remove_definition:
        remove_definition(root, spec.name)
    if plan.write_definition and template is not None:
        write_definition(root, spec.name, spec.size, template)
    failures: list[dict[str, Any]] = []
    if plan.boot and template is not None:
        failures = _fill(client, root, spec, template, plan.boot, make_transport, clock, sleep)
    after = list_pool_vms(client, spec.name)
    result["pool"] = pool_view(spec.name, spec.size if spec.state == "present" else None, template, after)
    if failures:
        raise HyperError(f"pool {spec.name}: {len(failures)} of {plan.boot} VM(s) did not come up: {failures[0]['msg']}", {"failures": failures, **result})
    return result


def _fill(
    client: LibvirtClient,
    root: str,
    spec: PoolSpec,
    template: PoolTemplate,
    count: int,
    make_transport: Callable[[Any, str], AgentTransport],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> list[dict[str, Any]]:
    """Boot ``count`` VMs side by side, then finish each; the failed ones are gone and listed."""
    booter = PoolBooter(client, root, make_transport, clock, sleep)
    started = []
    failures: list[dict[str, Any]] = []
    for _index in range(count):
        vm_id = new_vm_id(client)
        try:
            started.append(booter.start(spec.name, template, vm_id))
        except HyperError as err:
            booter.discard(None, vm_id)
            failures.append({"vm_id": vm_id, "msg": err.message})
    for dom in started:
        try:
            booter.finish(spec.name, template, dom, spec.boot_timeout)
        except HyperError as err:
            failures.append({"vm_id": str(dom.name()), "msg": err.message, **err.details})
    return failures
