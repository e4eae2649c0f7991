# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""Mounts the disk whose virtio serial is ``$1`` (no udev in the guest) on ``$2`` with the mount options ``$3``.

A fixed script, run as ``sh -c SCRIPT sh SERIAL TARGET OPTIONS``: the values arrive as arguments, never
in the script text. The guest's hyper-container finds image disks by serial the same way.
"""

from __future__ import annotations

SCRIPT = r"""
dev=
for f in /sys/block/vd*/serial; do
    v=
    read -r v <"$f" 2>/dev/null
    if [ "$v" = "$1" ]; then d=${f%/serial}; dev=/dev/${d##*/}; break; fi
done
[ -n "$dev" ] || { echo "no disk with serial $1 in the guest" >&2; exit 1; }
mkdir -p "$2" || exit 1
mount -t ext4 -o "$3" "$dev" "$2"
"""
