#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: hyper_image_info
short_description: List the container images in a hyper host's image cache
version_added: 0.1.0
description:
  - Lists the images in the hyper host's image cache (C(<root>/cache)), or one image by name, with their digests,
    sizes and the pods that use them.
  - The pods are those whose stored specs (in their libvirt domains' metadata) name the image, by its reference or
    by its digest; stopped pods count.
author:
  - hyper.pods developers (@hyper-pods)
extends_documentation_fragment:
  - hyper.pods.common
  - hyper.pods.images.cache
attributes:
  action:
    support: none
    description: No action plugin; the module runs on the hyper host only.
  async:
    support: full
    description: Runs under C(async), also with C(poll=0) and M(ansible.builtin.async_status), with the same result as without.
  check_mode:
    support: full
    description: The module only reads.
  diff_mode:
    support: N/A
    description: The module changes nothing.
  idempotent:
    support: full
    description: The module changes nothing.
  platform:
    support: full
    platforms: posix
    description: Runs on the hyper host, where the image cache is.
options:
  name:
    description:
      - One image, as O(hyper.pods.hyper_image#module:name) takes it. All cached images when not given.
    type: str
    aliases: [image]
  default_transport:
    description:
      - Transport for a bare O(name), as O(hyper.pods.hyper_pod#module:default_transport).
    type: str
    default: docker://
seealso:
  - module: hyper.pods.hyper_image
  - module: hyper.pods.hyper_image_prune
"""

EXAMPLES = r"""
- name: List the cached images
  hyper.pods.hyper_image_info:
  register: cached

- name: Show the images no pod uses
  ansible.builtin.debug:
    msg: "{{ cached.images | rejectattr('pods') | map(attribute='reference') | list }}"

- name: One image
  hyper.pods.hyper_image_info:
    name: docker://busybox:1.36
"""

RETURN = r"""
images:
  description: The cached images (one or none when O(name) is given), sorted by reference.
  returned: always
  type: list
  elements: dict
  contains:
    reference:
      description: The C(skopeo) reference the image was copied from; V(null) when its record in C(cache/refs) is gone.
      type: str
      sample: docker://busybox:1.36
    digest:
      description: The digest of its manifest in the cache, the cache key of its bundle and disk.
      type: str
      sample: sha256:7b3ccabffc97de872a30dfd234fd972a66d247c8cfc69b0550f276481852627c
    size:
      description: Bytes of its manifest, config and layers in the cache (layers shared with other images counted here too).
      type: int
      sample: 2214912
    bundle_bytes:
      description: Bytes on disk of its unpacked bundle (0 when no pod has started from it yet).
      type: int
      sample: 4636672
    disk_bytes:
      description: Bytes on disk of its read-only disk image (0 when none was built yet).
      type: int
      sample: 9437184
    pods:
      description: The pods whose stored specs use it, by reference or by digest.
      type: list
      elements: str
      sample: [web]
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.hyper.pods.plugins.module_utils._hyper.ansible_adapter import run_module  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.common_args import with_common_args  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.args import CACHE_ARGUMENT_SPEC  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.engine import image_info  # noqa: E402

ARGUMENT_SPEC = with_common_args(
    {
        "name": {"type": "str", "aliases": ["image"]},
        "default_transport": {"type": "str", "default": "docker://"},
        **CACHE_ARGUMENT_SPEC,
    }
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run_module(module, image_info)


if __name__ == "__main__":
    main()
