# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""GuestImage: the kernel, initrd and manifest a hyper VM boots, by name or by explicit paths."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from typing import Any, Optional

from ansible_collections.hyper.pods.plugins.module_utils._hyper.errors import ImageError, SpecError
from ansible_collections.hyper.pods.plugins.module_utils._hyper.virt.domain_xml import AGENT_CHANNEL

IMAGES_DIR = "images"
KERNEL_FILE = "vmlinuz"
# vmlinux: the uncompressed ELF kernel the guest_image role builds (booted through its PVH entry).
KERNEL_FILES = (KERNEL_FILE, "vmlinux")
INITRD_FILE = "initrd.img"
MANIFEST_FILE = "manifest.json"
# Used only with explicit kernel+initrd paths, where no manifest says better.
DEFAULT_KERNEL_ARGS = "console=ttyS0 panic=-1"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_BUILD_IT = "build it with the hyper.pods.guest_image role"


@dataclass(frozen=True)
class GuestImage:
    name: str
    kernel: str
    initrd: str
    kernel_args: str
    agent_channel: str = AGENT_CHANNEL
    kernel_version: Optional[str] = None
    components: dict[str, Any] = field(default_factory=dict)


def check_image_name(name: str, option: str = "image") -> str:
    """Return ``name`` if it is a plain image name (no path tricks), else raise SpecError naming ``option``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise SpecError(option, name, "must match ^[a-z0-9][a-z0-9._-]*$ and contain no '..'")
    return name


def image_dir(root: str, name: str) -> str:
    return os.path.join(root, IMAGES_DIR, check_image_name(name))


def parse_manifest(text: str, path: str = MANIFEST_FILE) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError as err:
        raise ImageError(f"{path} is not valid JSON ({err}); rebuild the image with the hyper.pods.guest_image role") from None
    if not isinstance(data, dict):
        raise ImageError(f"{path} must hold a JSON object")
    return data


def _kernel_args(value: object, path: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return " ".join(value)
    raise ImageError(f"{path}: kernel_args must be a string or a list of strings, not {value!r}")


def _kernel_file(kernel_info: object, path: str) -> str:
    """The kernel's file name in the image dir: ``vmlinuz``, or the manifest's ``kernel.file`` (``vmlinux`` of a built kernel)."""
    name = kernel_info.get("file", KERNEL_FILE) if isinstance(kernel_info, dict) else KERNEL_FILE
    if name not in KERNEL_FILES:
        raise ImageError(f"{path}: kernel.file must be one of {', '.join(KERNEL_FILES)}, not {name!r}")
    return str(name)


def load_image(root: str, name: str) -> GuestImage:
    """The image ``<root>/images/<name>/`` (vmlinuz or vmlinux, initrd.img, manifest.json)."""
    directory = image_dir(root, name)
    manifest_path = os.path.join(directory, MANIFEST_FILE)
    try:
        with open(manifest_path, encoding="utf-8") as handle:
            manifest = parse_manifest(handle.read(), manifest_path)
    except FileNotFoundError:
        raise ImageError(f"guest image {name!r} not found ({manifest_path} is missing): {_BUILD_IT}") from None
    except OSError as err:
        raise ImageError(f"cannot read {manifest_path}: {err.strerror}") from None
    kernel_info = manifest.get("kernel")
    kernel = os.path.join(directory, _kernel_file(kernel_info, manifest_path))
    initrd = os.path.join(directory, INITRD_FILE)
    for path in (kernel, initrd):
        if not os.path.isfile(path):
            raise ImageError(f"guest image {name!r} is incomplete ({path} is missing): {_BUILD_IT} again")
    version = kernel_info.get("version") if isinstance(kernel_info, dict) else None
    components = manifest.get("components")
    return GuestImage(
        name=name,
        kernel=kernel,
        initrd=initrd,
        kernel_args=_kernel_args(manifest.get("kernel_args", ""), manifest_path),
        agent_channel=str(manifest.get("agent_channel") or AGENT_CHANNEL),
        kernel_version=str(version) if version is not None else None,
        components=dict(components) if isinstance(components, dict) else {},
    )


def explicit_image(kernel: str, initrd: str, kernel_args: Optional[str] = None) -> GuestImage:
    """An image from explicit paths; both must exist."""
    for option, path in (("kernel", kernel), ("initrd", initrd)):
        if not os.path.isfile(path):
            raise SpecError(option, path, "is not an existing file")
    return GuestImage(name="custom", kernel=kernel, initrd=initrd, kernel_args=DEFAULT_KERNEL_ARGS if kernel_args is None else kernel_args)


def resolve_image(
    root: str,
    image: Optional[str] = None,
    kernel: Optional[str] = None,
    initrd: Optional[str] = None,
    kernel_args: Optional[str] = None,
) -> GuestImage:
    """``image`` by name, or ``kernel`` + ``initrd`` (both or neither); ``kernel_args`` overrides the manifest."""
    if (kernel is None) != (initrd is None):
        given, missing = ("kernel", "initrd") if kernel is not None else ("initrd", "kernel")
        raise SpecError(given, kernel if kernel is not None else initrd, f"needs {missing} as well (give both or neither)")
    if kernel is not None and initrd is not None:
        return explicit_image(kernel, initrd, kernel_args)
    loaded = load_image(root, image if image is not None else "default")
    if kernel_args is None:
        return loaded
    return replace(loaded, kernel_args=kernel_args)
