#!/usr/bin/env bash
# Runs pcscd in the PRIVATE network namespace this script was started in (`unshare -n bash netns.sh CONF_DIR [CARD_PORT]`):
# vpcd listens on 0.0.0.0:35963/35964 in server mode, so it must only see a loopback of its own.
# The two `quickack 1` routes stop vpcd's two-part writes from meeting delayed ACKs (~48 ms/APDU → ~0.3 ms).
# The card process joins this namespace with `nsenter -t <pcscd pid> -n`. PC/SC clients stay outside:
# /run/pcscd/pcscd.comm is a path socket, reachable across network namespaces.
# With CARD_PORT (reversed vpcd mode: pcscd connects to the card), the script prints "netns ready" once
# loopback is up, then waits (up to 60 s) until something LISTENs on 127.0.0.1:CARD_PORT and CARD_PORT+1
# — checked with `ss`, never by connecting, since the card takes one reader connection per slot.
set -euo pipefail
conf="${1:?usage: unshare -n bash netns.sh CONF_DIR [CARD_PORT]}"
card_port="${2:-}"
ip link set lo up
ip route change local 127.0.0.0/8 dev lo proto kernel scope host src 127.0.0.1 table local quickack 1
ip route change local 127.0.0.1 dev lo proto kernel scope host src 127.0.0.1 table local quickack 1
if [ -n "$card_port" ]; then
  echo "netns ready"
  for _ in $(seq 600); do
    if [ -n "$(ss -Hltn "sport = :$card_port")" ] && [ -n "$(ss -Hltn "sport = :$((card_port + 1))")" ]; then
      exec pcscd --foreground -c "$conf"
    fi
    sleep 0.1
  done
  echo "no card listening on 127.0.0.1:$card_port" >&2
  exit 1
fi
exec pcscd --foreground -c "$conf"
