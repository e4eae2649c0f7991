#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: hyper_pool
short_description: A warm pool of pre-booted, paused VMs that hyper_pod starts pods from
version_added: 0.1.0
description:
  - "Keeps a named pool of VMs of one template (guest image, vCPUs, memory, accelerator, networks) booted and paused on
    the hyper host. A M(hyper.pods.hyper_pod) start whose pod has that template takes one of them instead of booting a
    VM (C(start=pool) in its result): its disks and config are hot-plugged, the VM resumed, and the guest brings the pod
    up. See C(docs/pool.md)."
  - "O(state=present) removes the pool's failed VMs and those of another template (a changed option, a rebuilt guest
    image), removes idle VMs beyond O(size), and boots the missing ones, side by side, waiting for each to be ready.
    O(state=absent) removes the pool's idle VMs and its definition; pods started from the pool are pods and are left alone."
  - A pooled VM holds its RAM while it waits (QEMU's resident memory, about the guest's memory; C(docs/pool.md) has the
    figures). A pool VM serves one pod only, ever.
  - The host service does not keep pools filled yet; each run of this module fills its pool (RV(filled_by)).
  - Pool VMs are not pods, M(hyper.pods.hyper_pod_info) and the inventory plugin do not list them, and they take no host
    port, address or volume.
author:
  - hyper.pods developers (@hyper-pods)
options:
  name:
    description: The pool's name (1-63 lower-case letters, digits and C(-)).
    type: str
    required: true
  state:
    description: V(present) keeps O(size) ready VMs; V(absent) removes the pool's idle VMs and its definition.
    type: str
    choices: [present, absent]
    default: present
  size:
    description: How many ready VMs the pool keeps (0 to 32).
    type: int
    default: 1
  image:
    description: The guest image (under C(<root>/images)) of the pool's VMs; a pod matches with the same O(hyper.pods.hyper_pod#module:guest_image).
    type: str
    default: default
  vcpus:
    description: vCPUs of each VM; a pod matches with the same O(hyper.pods.hyper_pod#module:vcpus).
    type: int
    default: 1
  memory:
    description: Memory of each VM in MiB; a pod matches with the same O(hyper.pods.hyper_pod#module:memory).
    type: int
    default: 128
  networks:
    description:
      - The libvirt networks of each VM, by name, in order (V(none) alone for none); a pod matches with the same network
        names in the same order (its static addresses are its own). Default the host's network V(hyper), like a pod's.
    type: list
    elements: str
  boot_timeout:
    description: Seconds each new VM may take to boot until its guest agent answers.
    type: float
    default: 120
extends_documentation_fragment:
  - hyper.pods.common
  - hyper.pods.common.host
attributes:
  action:
    support: none
    description: No action plugin; the module runs on the hyper host only.
  async:
    support: full
    description: Runs under C(async) like any module.
  check_mode:
    support: full
    description: Reports what would be removed and booted; changes nothing.
  diff_mode:
    support: full
    description: Shows the pool's size, template key and VM ids before and after.
  idempotent:
    support: full
    description: A second run on a full pool of the same template reports no change.
  platform:
    support: full
    platforms: posix
    description: Runs on the hyper host.
seealso:
  - module: hyper.pods.hyper_pod
"""

EXAMPLES = r"""
- name: Keep two VMs ready for 128 MiB pods on the host's network
  hyper.pods.hyper_pool:
    name: small
    size: 2

- name: A pod of that template starts from the pool
  hyper.pods.hyper_pod:
    name: web
    containers:
      - name: web
        image: docker.io/library/busybox:1.36
        command: [httpd, -f, -p, "8080"]
  register: web

- name: It says so
  ansible.builtin.debug:
    msg: "{{ web.start }}: {{ web.start_reason }}"

- name: Remove the pool (its idle VMs; pods stay)
  hyper.pods.hyper_pool:
    name: small
    state: absent
"""

RETURN = r"""
actions:
  description: "What the run did (in check mode, would do), for example V(boot 2 VM(s)) or V(remove 1 VM(s): failed)."
  returned: always
  type: list
  elements: str
  sample: ["remove 1 VM(s): stale: its template changed", "boot 1 VM(s)", "write_definition"]
removed:
  description: VM ids removed.
  returned: when something was removed
  type: list
  elements: str
  sample: [hyper-3f9c2a1b]
kept_claimed:
  description: VM ids to remove that a pod start was claiming at that moment (left to it).
  returned: when there were any
  type: list
  elements: str
filled_by:
  description: Who keeps the pool filled; the host service does not yet, so this module does at each run.
  returned: always
  type: str
hostd:
  description: The host service's status (C(running), C(pid), C(log)).
  returned: always
  type: dict
pool:
  description: The pool after the run.
  returned: always
  type: dict
  contains:
    name:
      description: The pool's name.
      type: str
    size:
      description: The ready VMs it keeps (V(null) once absent).
      type: int
    template:
      description: The VMs' template (kernel, initrd and its SHA-256, kernel args, vCPUs, memory, accelerator, networks).
      type: dict
    template_key:
      description: A hash of the template; a pod's start takes a VM of the same key.
      type: str
    vms:
      description: Its VMs, each with C(vm_id), C(state) (V(ready), V(booting) or V(failed)) and C(stale) (of another template).
      type: list
      elements: dict
    ready:
      description: How many VMs are ready.
      type: int
    booting:
      description: How many VMs are booting.
      type: int
    failed:
      description: How many VMs are failed.
      type: int
"""

from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.hyper.pods.plugins.module_utils._hyper.ansible_adapter import run_module  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.common_args import with_common_args  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.pool.engine import ensure_pool  # noqa: E402

ARGUMENT_SPEC = with_common_args(
    {
        "name": {"type": "str", "required": True},
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        "size": {"type": "int", "default": 1},
        "image": {"type": "str", "default": "default"},
        "vcpus": {"type": "int", "default": 1},
        "memory": {"type": "int", "default": 128},
        "networks": {"type": "list", "elements": "str"},
        "boot_timeout": {"type": "float", "default": 120.0},
    },
    host=True,
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)

    def _ensure(params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
        return ensure_pool(params, check_mode, module._diff)

    run_module(module, _ensure)


if __name__ == "__main__":
    main()
