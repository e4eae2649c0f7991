# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""The guest end of a data-channel copy: reads ``$3`` bytes from the port into a temporary file, checks the trailer.

``sh -c SCRIPT sh PORT TEMPORARY COUNT TRAILER SIZE MODE TARGET [ROOT [IDLE_ROUNDS]]``: ``$1`` the port's device, ``$2`` the
temporary file, ``$3`` bytes to read (data and trailer), ``$4`` the trailer, ``$5`` the data's size,
``$6`` the mode (octal, or empty), ``$7`` the target, renamed onto at the end. With ``$8`` (a container's
root file system; run under ``unshare -m``), TARGET is relative to it, its links resolved inside it and reached
through a ``nosymfollow,nodev`` view of it, as guest/safe_files.py does (``safe_io.RESOLVE``); the temporary file
is TEMPORARY's last part beside the resolved target. No link leads out of the container.

The port is opened once and held: a read of a virtio-serial port returns end-of-file while the host
end is not connected (before the host's connection reached the guest, or after a copy before it), so
an end-of-file before ``$3`` bytes is waited out (``$9``, default ``IDLE_ROUNDS``, x 50 ms without data), never taken for
the end of the data. Exit 3 with a message on any failure, the temporary file removed.
"""

from __future__ import annotations

from ansible_collections.hyper.pods.plugins.module_utils._hyper.guest.scripts import safe_io

IDLE_ROUNDS = 600

SCRIPT = (
    """set -u
port=$1 tmp=$2 count=$3 trailer=$4 size=$5 mode=$6 target=$7 root=${8:-} idle_max=${9:-600}
fail() { rm -f "$tmp"; echo "$1" >&2; exit 3; }
"""
    + safe_io.RESOLVE
    + """if [ -n "$root" ]; then
    name=${tmp##*/} tmp=
    case "/$name/" in */../* | */./* | //*) fail "refused name '$name'" ;; esac
    case "/$target/" in */../* | */./* | //*) fail "refused path '$target'" ;; esac
    view=/run/hyper/view
    { mkdir -p "$view" && mount --bind "$root" "$view" && mount -o remount,bind,nosymfollow,nodev,nosuid "$view"; } ||
        fail "cannot make a nosymfollow view of $root"
    resolve "$target"
    dir=${path%/*}
    [ "$dir" = "$path" ] && dir=.
    [ -d "$view/$dir" ] || fail "no directory /$dir in the container"
    tmp=$view/$dir/$name target=$view/$path
fi
exec 3<"$port" || fail "cannot open $port (another reader holds it?)"
: >"$tmp" || fail "cannot create $tmp"
got=0 idle=0
while [ "$got" -lt "$count" ]; do
    dd of="$tmp" bs=262144 count=$((count - got)) iflag=fullblock,count_bytes oflag=append conv=notrunc <&3 2>/dev/null ||
        fail "reading the data channel into $tmp failed"
    now=$(stat -c %s "$tmp") || fail "stat $tmp failed"
    if [ "$now" -eq "$got" ]; then
        idle=$((idle + 1))
        [ "$idle" -le "$idle_max" ] || fail "no data on the data channel for $((idle_max / 20)) s ($got of $count bytes came)"
        sleep 0.05
    else
        idle=0
    fi
    got=$now
done
[ "$(tail -c 32 "$tmp")" = "$trailer" ] || fail "the data did not end with its trailer (bytes lost or stale on the channel)"
truncate -s "$size" "$tmp" || fail "truncate $tmp failed"
[ -z "$mode" ] || chmod "$mode" "$tmp" || fail "chmod $mode $tmp failed"
mv -f -T "$tmp" "$target" || fail "rename $tmp to $target failed"
"""
)
