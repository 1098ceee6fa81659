#!/usr/bin/env bash
# Runs pcscd in the PRIVATE network namespace this script was started in (`unshare -n bash netns.sh CONF_DIR`):
# vpcd listens on 0.0.0.0:35963/35964 in server mode, so it must only see a loopback of its own.
# The two `quickack 1` routes stop vpcd's two-part writes from meeting delayed ACKs (~48 ms/APDU → ~0.3 ms).
# The card process joins this namespace with `nsenter -t <pcscd pid> -n`. PC/SC clients stay outside:
# /run/pcscd/pcscd.comm is a path socket, reachable across network namespaces.
set -euo pipefail
conf="${1:?usage: unshare -n bash netns.sh CONF_DIR}"
ip link set lo up
ip route change local 127.0.0.0/8 dev lo proto kernel scope host src 127.0.0.1 table local quickack 1
ip route change local 127.0.0.1 dev lo proto kernel scope host src 127.0.0.1 table local quickack 1
exec pcscd --foreground -c "$conf"
