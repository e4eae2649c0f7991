#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: hyper_image_prune
short_description: Remove from a hyper host's image cache what no pod uses
version_added: 0.1.0
description:
  - Removes from the hyper host's image cache (C(<root>/cache)) everything no pod uses, and reports the bytes freed
    as C(du) counts them.
  - "What goes: the cached images (tags of the OCI layout C(cache/oci) and their records in C(cache/refs)) that no pod
    uses by reference or by digest; the bundles (C(cache/bundles)) and disks (C(cache/disks)) of every digest no pod
    uses; the layout's blobs no remaining image reaches; records without an image; and leftovers of killed unpacks or
    disk builds (C(.tmp-*)) older than an hour."
  - "What stays: everything a pod uses, running or stopped (its stored spec in its libvirt domain's metadata names
    the image and its digest), and everything else under C(<root>/cache) (guest image build files, kernels)."
  - A pod task (M(hyper.pods.hyper_pod)) holds the image cache's lock shared from its plan until its domain is
    defined; the prune holds it exclusive from listing the pods to the last removal, so it waits for the pod tasks
    that run and those that start meanwhile wait for it (C(docs/images.md)).
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
    description: Lists what would be removed and the bytes that would be freed; removes nothing and takes no lock.
  diff_mode:
    support: none
    description: The result lists what was removed; there is no diff.
  idempotent:
    support: full
    description: A second prune right after the first finds nothing to remove and reports no change.
  platform:
    support: full
    platforms: posix
    description: Runs on the hyper host, where the image cache is.
seealso:
  - module: hyper.pods.hyper_image
  - module: hyper.pods.hyper_image_info
"""

EXAMPLES = r"""
- name: See what a prune would remove
  hyper.pods.hyper_image_prune:
  check_mode: true
  register: would

- name: Show it
  ansible.builtin.debug:
    msg: "{{ would.removed | map(attribute='path') | list }} ({{ would.bytes_freed | human_readable }})"

- name: Remove what no pod uses
  hyper.pods.hyper_image_prune:
"""

RETURN = r"""
removed:
  description: What was removed from the cache (in check mode, what would be), in the order it goes.
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: V(tag) (an entry of the layout's C(index.json), named C(LAYOUT:TAG)), V(record), V(blob), V(bundle), V(disk) or V(temp).
      type: str
      sample: bundle
    path:
      description: The file or directory.
      type: str
      sample: /var/lib/hyper/cache/bundles/7b3ccabffc97de872a30dfd234fd972a66d247c8cfc69b0550f276481852627c
    bytes:
      description: Its bytes on disk, as C(du) counts them.
      type: int
      sample: 4636672
    digest:
      description: The image digest or blob digest it belongs to (V(null) for records without an image and leftovers).
      type: str
      sample: sha256:7b3ccabffc97de872a30dfd234fd972a66d247c8cfc69b0550f276481852627c
    reference:
      description: The image reference (tags and records only).
      type: str
      sample: docker://busybox:1.36
removed_counts:
  description: How many of each kind went.
  returned: always
  type: dict
  sample: {"tag": 2, "record": 2, "blob": 5, "bundle": 1, "disk": 1, "temp": 0}
bytes_freed:
  description: Bytes on disk freed (in check mode, that would be), as C(du) counts them.
  returned: always
  type: int
  sample: 16351232
kept:
  description: The cached images kept because pods use them.
  returned: always
  type: list
  elements: dict
  contains:
    reference:
      description: The C(skopeo) reference of the image.
      type: str
      sample: oci:/srv/images:tools
    digest:
      description: The digest of its manifest.
      type: str
      sample: sha256:7b3ccabffc97de872a30dfd234fd972a66d247c8cfc69b0550f276481852627c
    size:
      description: Bytes of its manifest, config and layers.
      type: int
      sample: 2214912
    bundle_bytes:
      description: Bytes on disk of its bundle.
      type: int
      sample: 4636672
    disk_bytes:
      description: Bytes on disk of its disk image.
      type: int
      sample: 9437184
    pods:
      description: The pods that use it.
      type: list
      elements: str
      sample: [web]
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.hyper.pods.plugins.module_utils._hyper.ansible_adapter import run_module  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.common_args import with_common_args  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.args import CACHE_ARGUMENT_SPEC  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.engine import prune_images  # noqa: E402

ARGUMENT_SPEC = with_common_args(dict(CACHE_ARGUMENT_SPEC))


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run_module(module, prune_images)


if __name__ == "__main__":
    main()
