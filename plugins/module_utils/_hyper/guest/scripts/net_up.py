# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Private to the hyper.pods collection: may change without notice. Do not import from outside it.
"""``up.sh``: brings up a pod's interfaces at boot; the host writes it to ``/run/hyper/net/up.sh`` and runs it.

Constant: the host never puts user text into it; its arguments are checked MACs and addresses.
``up.sh MAC MODE GATEWAY ROUTE ...`` (MODE: ``dhcp`` or ``ADDRESS/PREFIX``; GATEWAY: an address or ``-``;
ROUTE: ``1`` or ``0``). udhcpc calls it back as its hook (deconfig, bound, renew ...), with the lease in
its environment. Tested under busybox in tests/unit/plugins/module_utils/guest/test_scripts.py.
"""

from __future__ import annotations

SCRIPT = r"""#!/bin/sh
# hyper.pods: bring up the pod's interfaces; written by the host through the agent at every boot.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
case "$1" in
deconfig)
    ip link set "$interface" up
    ip -4 addr flush dev "$interface"
    exit 0 ;;
bound | renew)
    # A renewal of the same address must not take it away, even for a moment.
    if ! ip -4 addr show dev "$interface" | grep -q " $ip/${mask:-24} "; then
        ip -4 addr flush dev "$interface"
        ip addr add "$ip/${mask:-24}" dev "$interface" || exit 1
    fi
    if [ "$HYPER_ROUTE" = 1 ] && [ -n "$router" ]; then
        ip route replace default via "${router%% *}" dev "$interface" || exit 1
    fi
    exit 0 ;;
leasefail | nak) exit 0 ;;
esac
chmod 0755 "$0" || exit 1
while [ $# -ge 4 ]; do
    mac=$1 mode=$2 gateway=$3 route=$4
    shift 4
    dev=
    for f in /sys/class/net/*/address; do
        read -r a <"$f" || continue
        if [ "$a" = "$mac" ]; then
            dev=${f%/address}
            dev=${dev##*/}
            break
        fi
    done
    [ -n "$dev" ] || { echo "no interface with MAC $mac (is virtio_net loaded?)" >&2; exit 1; }
    ip link set "$dev" up || exit 1
    if [ "$mode" = dhcp ]; then
        # In the foreground until the lease is bound, then in the background to renew it.
        HYPER_ROUTE=$route udhcpc -i "$dev" -n -t 10 -T 1 -s "$0" -p "/run/hyper/net/udhcpc.$dev.pid" </dev/null >/dev/null 2>&1 ||
            { echo "$dev ($mac): no DHCP lease within 10 s" >&2; exit 1; }
    else
        ip addr add "$mode" dev "$dev" || { echo "$dev: cannot add $mode" >&2; exit 1; }
        if [ "$route" = 1 ] && [ "$gateway" != - ]; then
            ip route replace default via "$gateway" dev "$dev" || exit 1
        fi
    fi
done
exit 0
"""
