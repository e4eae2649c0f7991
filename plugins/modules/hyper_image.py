#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: hyper_image
short_description: Pull a container image into a hyper host's image cache, or remove it
version_added: 0.1.0
description:
  - Copies a container image into the hyper host's image cache with C(skopeo), the cache that
    M(hyper.pods.hyper_pod) starts its containers from, or removes it from there.
  - With O(state=present) the image is pulled (O(pull)) and its manifest digest returned; the task reports a
    change when the cache did not have the image or now holds another digest for it. Pods that then use it with
    O(hyper.pods.hyper_pod#module:pull=never) start without any copy.
  - With O(state=absent) the image's tag and record go from the cache, and its bundle, disk and layers too when no
    other cached reference uses them. An image a pod uses (running or not) is not removed unless O(force=true).
  - The pods are those whose stored specs (in their libvirt domains' metadata) name the image, by its reference or
    by its digest. A removal holds the image cache's lock against pod tasks (C(docs/images.md)).
  - M(hyper.pods.hyper_image_info) lists the cached images, M(hyper.pods.hyper_image_prune) removes all that no pod uses.
author:
  - hyper.pods developers (@hyper-pods)
extends_documentation_fragment:
  - hyper.pods.common
  - hyper.pods.images
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
    description:
      - Nothing is copied or removed. O(state=present) says whether the image would be copied (a missing local source
        fails as it would for real); O(state=absent) lists what would go, and refuses an image in use as the real run would.
  diff_mode:
    support: full
    description: The image's reference, digest and state (V(present) or V(absent)) before and after.
  idempotent:
    support: full
    description:
      - By digest. O(state=present) reports no change while the cache holds the same digest (also with O(pull=always)
        when the source did not change); O(state=absent) of an image not cached reports no change.
  platform:
    support: full
    platforms: posix
    description: Runs on the hyper host, where the image cache is.
options:
  name:
    description:
      - The image, as a C(skopeo) reference, in the forms O(hyper.pods.hyper_pod#module:containers[].image) takes,
        V(docker://[REGISTRY/]NAME[:TAG][@DIGEST]), V(oci:/PATH[:TAG]), V(oci-archive:/FILE[:TAG]),
        V(docker-archive:/FILE[:NAME:TAG]), or a bare V(NAME[:TAG]) resolved with O(default_transport).
      - A pod uses this cached copy when its container names the same image the same way (after O(default_transport)).
    type: str
    required: true
    aliases: [image]
  state:
    description:
      - V(present) pulls the image into the cache; V(absent) removes it from the cache.
    type: str
    choices: [present, absent]
    default: present
  pull:
    description:
      - With O(state=present). V(missing) copies the image only when the cache does not have it (a local source also
        when it changed, that is an OCI layout's manifest digest, an archive's size, time or inode); a registry image already
        cached is used without any network access. V(always) copies it again (C(skopeo) skips the layers it has) and
        reports a change only when the digest changed.
      - "As community.docker's C(docker_image) and C(docker_container) C(pull) options: V(missing) is C(pull: false) or
        C(missing), V(always) is C(pull: true) or C(always). M(hyper.pods.hyper_pod) also has V(never)."
    type: str
    choices: [missing, always]
    default: missing
  default_transport:
    description:
      - Transport for a bare O(name), as O(hyper.pods.hyper_pod#module:default_transport).
    type: str
    default: docker://
  force:
    description:
      - With O(state=absent), remove the image even when pods use it. Running pods keep the disk they have open; a pod
        that uses the image fails to start again (naming it) until a M(hyper.pods.hyper_pod) task with its containers
        or a O(state=present) task pulls it again.
    type: bool
    default: false
notes:
  - Registry images need network access from the hyper host and, for private registries, O(registry_auth) or an
    auth file C(skopeo) reads. skopeo reads C(/etc/containers/policy.json) to decide which sources to trust.
seealso:
  - module: hyper.pods.hyper_image_info
  - module: hyper.pods.hyper_image_prune
  - module: hyper.pods.hyper_pod
  - name: skopeo transports
    description: The image reference forms C(skopeo) understands.
    link: https://github.com/containers/image/blob/main/docs/containers-transports.5.md
"""

EXAMPLES = r"""
- name: Pull an image before the pods that use it (they can then use pull=never)
  hyper.pods.hyper_image:
    name: docker://registry.example:5000/team/app:2.1
    registry_auth:
      username: deploy
      password: "{{ vault_registry_token }}"
  register: app_image

- name: Show its digest
  ansible.builtin.debug:
    msg: "{{ app_image.image.digest }}"

- name: An image from a local OCI layout, no registry involved
  hyper.pods.hyper_image:
    name: oci:/srv/images:tools

- name: Refresh an image from its registry, with the credentials of skopeo login's file
  hyper.pods.hyper_image:
    name: docker://busybox:1.36
    pull: always
    registry_auth:
      auth_file: /root/.config/containers/auth.json

- name: Remove an image no pod uses any more (fails, removing nothing, while a pod uses it)
  hyper.pods.hyper_image:
    name: oci:/srv/images:tools
    state: absent
"""

RETURN = r"""
image:
  description: The image in the cache (with O(state=absent), as it was before its removal).
  returned: when the image is or was cached
  type: dict
  contains:
    image:
      description: O(name) as given.
      type: str
      sample: busybox:1.36
    reference:
      description: The C(skopeo) reference it resolves to.
      type: str
      sample: docker://busybox:1.36
    digest:
      description: The digest of its manifest in the cache, the cache key of its bundle and disk; V(null) in check mode when it would be copied.
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
removed:
  description: What was removed from the cache (in check mode, what would be), in the order it goes.
  returned: with O(state=absent)
  type: list
  elements: dict
  contains:
    kind:
      description: V(tag) (an entry of the layout's C(index.json), named C(LAYOUT:TAG)), V(record), V(blob), V(bundle) or V(disk).
      type: str
      sample: disk
    path:
      description: The file or directory.
      type: str
      sample: /var/lib/hyper/cache/disks/7b3ccabffc97de872a30dfd234fd972a66d247c8cfc69b0550f276481852627c.img
    bytes:
      description: Its bytes on disk, as C(du) counts them.
      type: int
      sample: 9437184
    digest:
      description: The image digest or blob digest it belongs to.
      type: str
      sample: sha256:7b3ccabffc97de872a30dfd234fd972a66d247c8cfc69b0550f276481852627c
    reference:
      description: The image reference (tags and records only).
      type: str
      sample: docker://busybox:1.36
removed_counts:
  description: How many of each kind went.
  returned: with O(state=absent)
  type: dict
  sample: {"tag": 1, "record": 1, "blob": 3, "bundle": 1, "disk": 1, "temp": 0}
bytes_freed:
  description: Bytes on disk freed (in check mode, that would be), as C(du) counts them.
  returned: with O(state=absent)
  type: int
  sample: 16351232
kept:
  description: Always empty for this module (an image in use is an error); see M(hyper.pods.hyper_image_prune).
  returned: with O(state=absent)
  type: list
  elements: dict
pods:
  description: The pods that use the image, when the removal was refused.
  returned: failure of O(state=absent) for an image in use
  type: list
  elements: str
  sample: [web]
"""

from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.hyper.pods.plugins.module_utils._hyper.ansible_adapter import run_module  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.common_args import with_common_args  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.args import CACHE_ARGUMENT_SPEC, REGISTRY_AUTH_SPEC  # noqa: E402
from ansible_collections.hyper.pods.plugins.module_utils._hyper.images.engine import ensure_image  # noqa: E402

ARGUMENT_SPEC = with_common_args(
    {
        "name": {"type": "str", "required": True, "aliases": ["image"]},
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        "pull": {"type": "str", "choices": ["missing", "always"], "default": "missing"},
        "default_transport": {"type": "str", "default": "docker://"},
        "force": {"type": "bool", "default": False},
        **REGISTRY_AUTH_SPEC,
        **CACHE_ARGUMENT_SPEC,
    }
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)

    def _ensure(params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
        return ensure_image(params, check_mode, module._diff)

    run_module(module, _ensure)


if __name__ == "__main__":
    main()
