# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # Options shared by every hyper module. Twin of COMMON_ARGUMENT_SPEC in
    # plugins/module_utils/_hyper/common_args.py; a unit test keeps the two in step.
    DOCUMENTATION = r"""
options:
  uri:
    description:
      - The libvirt connection URI of the hyper host.
    type: str
    default: qemu:///system
requirements:
  - libvirt-python (C(python3-libvirt) on Debian) on the hyper host
  - libvirtd and QEMU on the hyper host
"""

    # hyper.pods.common.host: the options of the modules that read the hyper host's state (host.json,
    # images) and boot VMs. Twin of HOST_ARGUMENT_SPEC; the same unit test keeps them in step.
    HOST = r"""
options:
  root:
    description:
      - Directory holding the hyper host's state, written by the C(hyper.pods.host) and
        C(hyper.pods.guest_image) roles (C(host.json), C(images/), C(run/)).
    type: path
    default: /var/lib/hyper
    aliases: [hyper_root]
  accelerator:
    description:
      - How QEMU runs the guest.
      - V(kvm) uses hardware virtualisation; V(tcg) emulates the CPU (slower, works everywhere).
      - V(auto) uses what the C(hyper.pods.host) role found to work on this host (recorded in
        C(host.json) under O(root)); it fails if that role has not run.
    type: str
    choices: [auto, kvm, tcg]
    default: auto
"""
