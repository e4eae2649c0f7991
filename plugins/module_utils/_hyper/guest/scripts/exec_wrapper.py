# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""The wrapper of a command in a container: redirections, the pid file, and small output handed back inline.

``sh -c SCRIPT sh PIDFILE STDIN STDOUT STDERR ARGV...``: ``$1`` the pid file (removed when the command
ends), ``$2`` a file for stdin, ``$3``/``$4`` files for stdout and stderr (empty: not redirected), then
the command's argv (``crun exec ...``). The file names and the argv are parameters, never script text.
"""

from __future__ import annotations

# The wrapper: $1 pid file, $2 stdin file, $3 stdout file, $4 stderr file (empty: not redirected),
# then the crun argv. The file names and the argv are parameters, never part of the script text.
# With large_output, streams of at most this many bytes each come back inline: the wrapper copies
# them to its own (captured) stdout and stderr, appends INLINE_MARKER to stderr and removes the
# files, so no file read or rm follows (~7 agent calls less). Two streams of 1 MiB are ~2.7 MiB of
# base64, within libvirt's 4 MiB reply; bigger output stays in the files and is read in chunks.
INLINE_LIMIT = 1024 * 1024
INLINE_MARKER = "@@hyper-inline-output@@"
SCRIPT = (
    "p=$1 i=$2 o=$3 e=$4; shift 4; exec 3>&1 4>&2; "
    'if [ -n "$i" ]; then exec <"$i"; fi; '
    'if [ -n "$o" ]; then exec >"$o"; fi; '
    'if [ -n "$e" ]; then exec 2>"$e"; fi; '
    '"$@" 3>&- 4>&-; rc=$?; rm -f "$p" 2>/dev/null; '
    f'if [ -n "$o" ] && [ "$(wc -c <"$o")" -le {INLINE_LIMIT} ] && [ "$(wc -c <"$e")" -le {INLINE_LIMIT} ] '
    f'&& cat "$o" >&3 && cat "$e" >&4; then printf %s {INLINE_MARKER} >&4; rm -f "$o" "$e"; fi; '
    "exit $rc"
)
