#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: hyper_guest_check
short_description: Boot a throwaway hyper VM and run one command in it through the guest agent
version_added: 0.1.0
description:
  - Boots a transient VM (named C(hyper-check-<8 hex digits>)) from a guest image built by the
    C(hyper.pods.guest_image) role, waits for its QEMU guest agent, runs one command in the guest,
    reports timings, and destroys the VM again.
  - The VM and its console log are removed whether the check succeeds or fails.
  - Fails when the guest does not come up within O(timeout) (the result then carries the last
    lines of the serial console in RV(console_tail)), or when the command does not exit with 0.
author:
  - hyper.pods developers (@hyper-pods)
extends_documentation_fragment:
  - hyper.pods.common
attributes:
  check_mode:
    support: full
    description: The check changes no persistent state, so it runs in check mode as well.
  diff_mode:
    support: none
    description: Nothing persistent changes, so there is nothing to show.
  idempotent:
    support: full
    description: Every run boots a new throwaway VM and leaves nothing behind; it never reports a change.
  platform:
    support: full
    platforms: posix
    description: Runs on the hyper host, next to libvirtd.
options:
  image:
    description:
      - Name of a guest image under C(<root>/images/).
      - When neither O(image) nor O(kernel) and O(initrd) are given, the image V(default) is booted.
      - Mutually exclusive with O(kernel) and O(initrd).
    type: str
  kernel:
    description:
      - Path of a kernel to boot instead of an image. Needs O(initrd) as well.
    type: path
  initrd:
    description:
      - Path of an initrd to boot instead of an image. Needs O(kernel) as well.
    type: path
  kernel_args:
    description:
      - Kernel command line. Defaults to the image's C(kernel_args) from its manifest, or to
        C(console=ttyS0 panic=-1) with O(kernel) and O(initrd).
    type: str
  memory:
    description:
      - Guest memory in MiB.
    type: int
    default: 256
  vcpus:
    description:
      - Number of virtual CPUs.
    type: int
    default: 1
  timeout:
    description:
      - Seconds to wait from creating the VM until its guest agent answers (TCG guests need several
        seconds), and, separately, for O(command) to finish.
    type: int
    default: 120
  command:
    description:
      - Command to run in the guest, as a list (program and arguments, no shell).
    type: list
    elements: str
    default: [crun, --version]
seealso:
  - name: QEMU guest agent protocol
    description: The commands the guest agent understands.
    link: https://qemu-project.gitlab.io/qemu/interop/qemu-ga-ref.html
"""

EXAMPLES = r"""
- name: Check that the default guest image boots and runs crun
  hyper.pods.hyper_guest_check:
  register: check

- name: Show how long the boot took
  ansible.builtin.debug:
    msg: "{{ check.agent_version }}: boot {{ check.boot_seconds }} s, exec {{ check.exec_seconds }} s"

- name: Check a freshly built image with a command of our own, emulated CPU
  hyper.pods.hyper_guest_check:
    image: bench-zstd
    accelerator: tcg
    memory: 512
    timeout: 180
    command: [uname, -r]

- name: Boot an explicit kernel and initrd
  hyper.pods.hyper_guest_check:
    kernel: /srv/guest/vmlinuz
    initrd: /srv/guest/initrd.img
    kernel_args: console=ttyS0 panic=-1 quiet
"""

RETURN = r"""
vm_id:
  description: Name of the throwaway libvirt domain (already destroyed when the module returns).
  returned: always
  type: str
  sample: hyper-check-3f9c2a1b
image:
  description: Name of the guest image booted (V(custom) for O(kernel) and O(initrd)).
  returned: success
  type: str
  sample: default
kernel_version:
  description: Kernel release recorded in the image's manifest.
  returned: success
  type: str
  sample: 6.1.0-41-cloud-amd64
accelerator:
  description: Accelerator actually used (V(kvm) or V(tcg)), after resolving V(auto).
  returned: success
  type: str
  sample: tcg
agent_version:
  description: Version reported by the guest's C(qemu-ga) (C(guest-info)).
  returned: success
  type: str
  sample: 7.2.19
boot_seconds:
  description: Seconds from creating the VM to the first answered C(guest-ping).
  returned: success
  type: float
  sample: 5.412
exec_seconds:
  description: Seconds for running O(command) through the agent (C(guest-exec) until its exit status).
  returned: success
  type: float
  sample: 0.094
rc:
  description: Exit code of O(command); V(null) when it died by a signal (see RV(signal)).
  returned: success
  type: int
  sample: 0
signal:
  description: Signal that ended O(command), if any.
  returned: success
  type: int
  sample: null
stdout:
  description: Standard output of O(command).
  returned: success
  type: str
  sample: "crun version 1.8.1"
stderr:
  description: Standard error of O(command).
  returned: success
  type: str
  sample: ""
stdout_truncated:
  description: Whether the guest agent cut standard output at its 16 MiB capture limit.
  returned: success
  type: bool
  sample: false
stderr_truncated:
  description: Whether the guest agent cut standard error at its 16 MiB capture limit.
  returned: success
  type: bool
  sample: false
console_tail:
  description: Last lines of the guest's serial console when it did not come up.
  returned: failure to boot
  type: list
  elements: str
  sample: ["Run /init as init process", "hyper: starting qemu-ga"]
"""

from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.hyper.pods.plugins.module_utils._hyper.ansible_adapter import run_module  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.common_args import with_common_args  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest_image.check import GuestCheckRequest, check_guest  # noqa: E402

ARGUMENT_SPEC = with_common_args(
    {
        "image": {"type": "str"},
        "kernel": {"type": "path"},
        "initrd": {"type": "path"},
        "kernel_args": {"type": "str"},
        "memory": {"type": "int", "default": 256},
        "vcpus": {"type": "int", "default": 1},
        "timeout": {"type": "int", "default": 120},
        "command": {"type": "list", "elements": "str", "default": ["crun", "--version"]},
    }
)


def _check(params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    request = GuestCheckRequest(
        root=params["root"],
        uri=params["uri"],
        accelerator=params["accelerator"],
        image=params["image"],
        kernel=params["kernel"],
        initrd=params["initrd"],
        kernel_args=params["kernel_args"],
        memory_mib=params["memory"],
        vcpus=params["vcpus"],
        timeout=params["timeout"],
        command=tuple(params["command"]),
        command_timeout=params["timeout"],
    )
    return check_guest(request)


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        required_together=[("kernel", "initrd")],
        mutually_exclusive=[("image", "kernel"), ("image", "initrd")],
        supports_check_mode=True,
    )
    run_module(module, _check)


if __name__ == "__main__":
    main()
