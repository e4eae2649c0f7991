# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # registry_auth of hyper_pod and hyper_image, one text for both. Twin of REGISTRY_AUTH_SPEC in
    # plugins/module_utils/_hyper/images/args.py; a unit test keeps the two in step.
    DOCUMENTATION = r"""
options:
  registry_auth:
    description:
      - Credentials for the registries of C(docker://) images, used by C(skopeo copy) for this task only (local
        transports need none). Either O(registry_auth.username) and O(registry_auth.password), or O(registry_auth.auth_file).
      - Without it, C(skopeo) reads its usual auth files (C(skopeo login), C(REGISTRY_AUTH_FILE), C($XDG_RUNTIME_DIR/containers/auth.json)).
      - A username and password are never put on a command line. For each copy they are written into an auth file in
        C(skopeo)'s own format, keyed by the registry of the image being copied only, mode 0600 in the root-only directory
        C(/run/hyper-pods/auth), and removed when the copy ends. They are not stored in the pod's libvirt metadata and not
        returned; an error message never shows the password.
    type: dict
    suboptions:
      username:
        description:
          - The registry user name. Goes with O(registry_auth.password).
        type: str
      password:
        description:
          - The password or token. Goes with O(registry_auth.username). Never logged.
        type: str
      auth_file:
        description:
          - Path of an auth file on the hyper host, in the format C(skopeo login) and C(docker login) write
            (C(auth.json)), passed to C(skopeo copy --src-authfile).
        type: path
"""

    # hyper.pods.images.cache: the root of the image modules, whose image cache is <root>/cache.
    # Twin of CACHE_ARGUMENT_SPEC; the same unit test keeps them in step.
    CACHE = r"""
options:
  root:
    description:
      - Directory holding the hyper host's state (the one O(hyper.pods.hyper_pod#module:root) names). The image cache
        is C(cache/) in it (C(cache/oci), C(cache/refs), C(cache/bundles), C(cache/disks)).
      - It must exist.
    type: path
    default: /var/lib/hyper
    aliases: [hyper_root]
"""
