# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""check_guest: boot a throwaway VM from a guest image, run one command through the agent, tear down."""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import AgentError, BootError, DomainNotFound, HyperError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.agent import (
    EXEC_TIMEOUT,
    READY_TIMEOUT,
    AgentTransport,
    GuestAgent,
    LibvirtAgentTransport,
)
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest_image.manifest import resolve_image
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.console import console_path, console_tail
from ansible_collections.hyper.pods.plugins.module_utils._hyper.host.info import DEFAULT_ROOT, resolve_accelerator
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.client import DEFAULT_URI, LibvirtClient
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.domain_xml import DomainSpec, render_domain_xml

CHECK_PREFIX = "hyper-check-"
DEFAULT_COMMAND = ("crun", "--version")
DEFAULT_MEMORY_MIB = 256


@dataclass(frozen=True)
class GuestCheckRequest:
    root: str = DEFAULT_ROOT
    uri: str = DEFAULT_URI
    accelerator: str = "auto"
    image: Optional[str] = None
    kernel: Optional[str] = None
    initrd: Optional[str] = None
    kernel_args: Optional[str] = None
    memory_mib: int = DEFAULT_MEMORY_MIB
    vcpus: int = 1
    timeout: float = READY_TIMEOUT
    command: tuple[str, ...] = DEFAULT_COMMAND
    command_timeout: float = EXEC_TIMEOUT


def new_vm_id(prefix: str = CHECK_PREFIX) -> str:
    return prefix + secrets.token_hex(4)


def check_guest(
    request: GuestCheckRequest,
    *,
    open_client: Callable[[str], LibvirtClient] = LibvirtClient.open,
    make_transport: Callable[[Any, str], AgentTransport] = LibvirtAgentTransport,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Boot, wait for the agent, run ``request.command``, and always destroy the VM. Returns plain data."""
    accelerator = resolve_accelerator(request.accelerator, request.root)
    image = resolve_image(request.root, request.image, request.kernel, request.initrd, request.kernel_args)
    vm_id = new_vm_id()
    console = console_path(request.root, vm_id)
    os.makedirs(os.path.dirname(console), mode=0o755, exist_ok=True)
    spec = DomainSpec(
        name=vm_id,
        title=f"hyper guest check of image {image.name}",
        memory_mib=request.memory_mib,
        vcpus=request.vcpus,
        accelerator=accelerator,
        kernel=image.kernel,
        initrd=image.initrd,
        cmdline=image.kernel_args,
        console_log=console,
        agent_channel=image.agent_channel,
    )
    xml = render_domain_xml(spec)
    result: dict[str, Any] = {"changed": False, "vm_id": vm_id, "image": image.name, "kernel_version": image.kernel_version, "accelerator": accelerator}

    with open_client(request.uri) as client:
        dom = None
        try:
            started = clock()
            dom = client.create_transient(xml)
            agent = GuestAgent(make_transport(dom, vm_id), name=vm_id, clock=clock, sleep=sleep)
            live = dom
            try:
                agent.wait_ready(request.timeout, is_alive=lambda: client.is_active(live))
            except (AgentError, DomainNotFound) as err:
                raise BootError(f"guest {vm_id} (image {image.name}, {accelerator}) did not come up: {err.message}", console_tail(console)) from None
            result["boot_seconds"] = round(clock() - started, 3)
            result["agent_version"] = str(agent.info().get("version", ""))
            exec_started = clock()
            outcome = agent.exec(list(request.command), timeout=request.command_timeout)
            result["exec_seconds"] = round(clock() - exec_started, 3)
            result.update(
                rc=outcome.rc,
                signal=outcome.signal,
                stdout=outcome.stdout.decode("utf-8", errors="replace"),
                stderr=outcome.stderr.decode("utf-8", errors="replace"),
                stdout_truncated=outcome.stdout_truncated,
                stderr_truncated=outcome.stderr_truncated,
            )
        except BaseException:
            # Never leave a check VM or its console log behind; a cleanup error must not hide the cause.
            with contextlib.suppress(HyperError):
                _cleanup(client, dom, console)
            raise
        _cleanup(client, dom, console)
    if result["rc"] != 0:
        what = f"rc {result['rc']}" if result["rc"] is not None else f"signal {result['signal']}"
        details = {k: v for k, v in result.items() if k != "changed"}
        raise HyperError(f"guest {vm_id}: {' '.join(request.command)} ended with {what}: {result['stderr'].strip()[:500]}", details)
    return result


def _cleanup(client: LibvirtClient, dom: Any, console: str) -> None:
    if dom is not None:
        client.destroy(dom)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(console)
