# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""The guest step of every host read and write by path in a container (guest/safe_files.py).

Run as ``unshare -m --propagation private sh -c SCRIPT hyper-safe-io ROOT OP ARGS...``: in a mount
namespace of its own, ``ROOT`` (the container's root file system as the guest sees it) is bound on
``VIEW`` and re-mounted ``nosymfollow,nodev,nosuid``, so the kernel follows no symbolic link on any
component of a path below it, and opens no device node the container made. The namespace (and the
view) goes when the step exits; nothing is left mounted.

Links are resolved by the script itself, inside the root, as the container sees them
(``RESOLVE``: ``readlink`` of each component, an absolute target taken from the container's root,
``..`` never above it, at most 40 links): a link to ``/usr/sbin`` is the container's ``/usr/sbin``,
never the guest's. The path it resolves to has no link left on it; should the container swap a
component for a link meanwhile, the view refuses to follow it (ELOOP): the step fails, nothing escapes.

Operations (paths are relative to ROOT, never with ``..``; the host checks them, the script again):

- ``read PATH OFFSET COUNT``: up to COUNT bytes of the regular file PATH from OFFSET on stdout;
- ``write SOURCE PATH TEMP MODE``: SOURCE (``-`` for stdin, else a guest file outside the view) copied
  to a file named like TEMP's last part beside PATH (resolved), MODE (octal or empty) set, renamed onto it;
  a MODE of ``uNNN`` is the umask the new file is created under (a mode within 0666: no ``chmod`` to run);
- ``rename FROM TO``, ``remove PATH``: on the last part itself (a link there is renamed or removed, not followed).

Exit 2: PATH does not exist; 3: refused or failed, with a reason.
"""

from __future__ import annotations

VIEW = "/run/hyper/view"

# resolve PATH: PATH (relative to the view, no "." or ".." parts) with every link on it resolved inside
# the root, into $path (relative, link-free when this ran). Shared with the data channel's reader.
RESOLVE = """resolve() {
    todo=$1 done= hops=0
    while [ -n "$todo" ]; do
        part=${todo%%/*}
        case "$todo" in */*) todo=${todo#*/} ;; *) todo= ;; esac
        case "$part" in
        '' | .) continue ;;
        ..) done=${done%/*}; continue ;;
        esac
        if [ -L "$view$done/$part" ]; then
            hops=$((hops + 1))
            [ "$hops" -le 40 ] || fail "too many symbolic links on /$1"
            target=$(readlink "$view$done/$part") || fail "cannot read the link $done/$part"
            case "$target" in /*) done= ;; esac
            todo=${target#/}${todo:+/$todo}
        else
            done=$done/$part
        fi
    done
    path=${done#/}
    [ -n "$path" ] || fail "/$1 is the container's root directory"
}
"""

SCRIPT = (
    """set -u
root=$1 op=$2
shift 2
view=/run/hyper/view
fail() { echo "$1" >&2; exit 3; }
check() { case "/$1/" in */../* | */./* | //*) fail "refused path '$1'" ;; esac; }
[ -d "$root" ] || fail "no directory $root in the guest"
[ -d "$view" ] || mkdir -p "$view" || fail "cannot create $view"
mount --bind "$root" "$view" || fail "cannot bind $root"
mount -o remount,bind,nosymfollow,nodev,nosuid "$view" || fail "cannot make the view of $root nosymfollow"
"""
    + RESOLVE
    + """# resolve_parent PATH: like resolve, but the last part is taken as it is (rename and remove act on a link itself).
resolve_parent() {
    case "$1" in */*) resolve "${1%/*}"; path=$path/${1##*/} ;; *) path=$1 ;; esac
}
regular() {
    [ -e "$view/$1" ] || [ -L "$view/$1" ] || exit 2
    [ -f "$view/$1" ] || fail "/$1 is not a regular file"
}
case "$op" in
read)
    check "$1"
    resolve "$1"
    regular "$path"
    exec dd if="$view/$path" bs=65536 skip="$2" count="$3" iflag=skip_bytes,count_bytes 2>/dev/null
    ;;
write)
    check "$2"
    check "$3"
    resolve "$2"
    dir=${path%/*}
    [ "$dir" = "$path" ] && dir=.
    tmp=$dir/${3##*/}
    [ -d "$view/$dir" ] || fail "no directory /$dir in the container"
    # A mode within 0666 comes as the umask it needs ("u" + 3 digits): the new file gets it from its creation, no chmod.
    # noclobber: the temporary name must be new, or the umask would not decide its mode.
    case "$4" in u[0-7][0-7][0-7]) umask "${4#u}"; set -C ;; esac
    if [ "$1" = - ]; then cat >"$view/$tmp"; else cat "$1" >"$view/$tmp"; fi || { rm -f "$view/$tmp"; fail "writing /$tmp failed"; }
    case "$4" in '' | u*) ;; *) chmod "$4" "$view/$tmp" || { rm -f "$view/$tmp"; fail "chmod $4 /$tmp failed"; } ;; esac
    mv -f -T "$view/$tmp" "$view/$path" || { rm -f "$view/$tmp"; fail "renaming /$tmp onto /$path failed"; }
    ;;
rename)
    check "$1"
    check "$2"
    resolve_parent "$1"
    from=$path
    [ -e "$view/$from" ] || [ -L "$view/$from" ] || exit 2
    resolve_parent "$2"
    mv -f -T "$view/$from" "$view/$path" || fail "renaming /$from onto /$path failed"
    ;;
remove)
    check "$1"
    resolve_parent "$1"
    rm -f "$view/$path" || fail "removing /$path failed"
    ;;
*) fail "unknown operation '$op'" ;;
esac
"""
)
