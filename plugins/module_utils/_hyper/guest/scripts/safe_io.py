# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""The guest step of every host read and write by path in a container (guest/safe_files.py).

Run as ``unshare -m --propagation private sh -c SCRIPT hyper-safe-io ROOT OP ARGS...``: in a mount
namespace of its own, ``ROOT`` (the container's root file system as the guest sees it) is bound on
``VIEW`` and re-mounted ``nosymfollow,nodev,nosuid``, so no symbolic link the container planted is
followed on any component of a path below it, and no device node it made opens. The namespace (and
the view) goes when the step exits; nothing is left mounted.

Operations (paths are relative to ROOT, never with ``..``; the host checks them, the script again):

- ``read PATH OFFSET COUNT``: up to COUNT bytes of the regular file PATH from OFFSET on stdout;
- ``write SOURCE PATH TEMP MODE``: SOURCE (``-`` for stdin, else a guest file outside the view) copied
  to TEMP beside PATH, MODE (octal or empty) set, renamed onto PATH;
- ``rename FROM TO``, ``remove PATH``.

Exit 2: PATH does not exist (or a directory on its way is a link); 3: refused or failed, with a reason.
"""

from __future__ import annotations

VIEW = "/run/hyper/view"

SCRIPT = """set -u
root=$1 op=$2
shift 2
view=/run/hyper/view
fail() { echo "$1" >&2; exit 3; }
check() { case "/$1/" in */../* | */./* | //*) fail "refused path '$1'" ;; esac; }
[ -d "$root" ] || fail "no directory $root in the guest"
mkdir -p "$view" || fail "cannot create $view"
mount --bind "$root" "$view" || fail "cannot bind $root"
mount -o remount,bind,nosymfollow,nodev,nosuid "$view" || fail "cannot make the view of $root nosymfollow"
regular() {
    [ -L "$view/$1" ] && fail "$1 is a symbolic link; the host does not follow links in a container"
    [ -e "$view/$1" ] || exit 2
    [ -f "$view/$1" ] || fail "$1 is not a regular file"
}
case "$op" in
read)
    check "$1"
    regular "$1"
    exec dd if="$view/$1" bs=65536 skip="$2" count="$3" iflag=skip_bytes,count_bytes 2>/dev/null
    ;;
write)
    check "$2"
    check "$3"
    dir=${2%/*}
    [ "$dir" = "$2" ] && dir=.
    [ -d "$view/$dir" ] || fail "no directory /$dir in the container (or a link on its way)"
    [ -L "$view/$2" ] && fail "$2 is a symbolic link; the host does not write through links in a container"
    if [ "$1" = - ]; then cat >"$view/$3"; else cat "$1" >"$view/$3"; fi || { rm -f "$view/$3"; fail "writing $3 failed"; }
    [ -z "$4" ] || chmod "$4" "$view/$3" || { rm -f "$view/$3"; fail "chmod $4 $3 failed"; }
    mv -f -T "$view/$3" "$view/$2" || { rm -f "$view/$3"; fail "renaming $3 onto $2 failed"; }
    ;;
rename)
    check "$1"
    check "$2"
    [ -e "$view/$1" ] || [ -L "$view/$1" ] || exit 2
    mv -f -T "$view/$1" "$view/$2" || fail "renaming $1 onto $2 failed"
    ;;
remove)
    check "$1"
    rm -f "$view/$1" || fail "removing $1 failed"
    ;;
*) fail "unknown operation '$op'" ;;
esac
"""
