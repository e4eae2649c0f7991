# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""Service addresses on the guest's ``lo``: ``sh -c ADD sh ADDRESS/PREFIX ...`` and ``sh -c REMOVE sh ADDRESS/PREFIX ...``.

``ADD`` replaces each address (idempotent); ``REMOVE`` deletes each, and succeeds for one that is already
gone. The addresses are arguments, checked by service/spec.py before they get here.
"""

from __future__ import annotations

ADD = 'for a; do ip addr replace "$a" dev lo || exit 1; done'
REMOVE = 'for a; do ip addr del "$a" dev lo 2>/dev/null || ! ip addr show dev lo | grep -qF " $a " || exit 1; done'
