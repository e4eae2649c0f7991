# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""The guest end of a data-channel copy: reads ``$3`` bytes from the port into a temporary file, checks the trailer.

``sh -c SCRIPT sh PORT TEMPORARY COUNT TRAILER SIZE MODE TARGET``: ``$1`` the port's device, ``$2`` the
temporary file, ``$3`` bytes to read (data and trailer), ``$4`` the trailer, ``$5`` the data's size,
``$6`` the mode (octal, or empty), ``$7`` the target, renamed onto at the end. Exit 3 with a message
on any failure, the temporary file removed.
"""

from __future__ import annotations

SCRIPT = """set -u
port=$1 tmp=$2 count=$3 trailer=$4 size=$5 mode=$6 target=$7
fail() { rm -f "$tmp"; echo "$1" >&2; exit 3; }
dd if="$port" of="$tmp" bs=262144 count="$count" iflag=fullblock,count_bytes || fail "reading the data channel into $tmp failed"
[ "$(tail -c 32 "$tmp")" = "$trailer" ] || fail "the data did not end with its trailer (bytes lost or stale on the channel)"
truncate -s "$size" "$tmp" || fail "truncate $tmp failed"
[ -z "$mode" ] || chmod "$mode" "$tmp" || fail "chmod $mode $tmp failed"
mv -f "$tmp" "$target" || fail "rename $tmp to $target failed"
"""
