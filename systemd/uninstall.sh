#!/usr/bin/env bash
# Remove Edge Gateway. Config (/etc/edge-gateway) and state (/var/lib/edge-gateway,
# with undelivered webhooks) are kept unless --purge is given.
#
#   sudo ./systemd/uninstall.sh [--purge]
#
# DESTDIR works as for install.sh.
set -euo pipefail

DESTDIR=${DESTDIR:-}
purge=0
for arg in "$@"; do
  case "$arg" in
    --purge) purge=1 ;;
    *) printf 'usage: %s [--purge]\n' "$0" >&2; exit 2 ;;
  esac
done

if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
  printf 'error: run as root: sudo %s\n' "$0" >&2
  exit 1
fi

if [ -z "$DESTDIR" ] && command -v systemctl >/dev/null; then
  systemctl disable --now edge-gateway.service 2>/dev/null || true
fi
rm -f "$DESTDIR/etc/systemd/system/edge-gateway.service"
rm -f "$DESTDIR/usr/local/bin/gateway"
rm -rf "$DESTDIR/opt/edge-gateway"
if [ -z "$DESTDIR" ] && command -v systemctl >/dev/null; then
  systemctl daemon-reload
fi

if [ "$purge" = 1 ]; then
  rm -rf "$DESTDIR/etc/edge-gateway" "$DESTDIR/var/lib/edge-gateway"
  if [ -z "$DESTDIR" ] && getent passwd edge-gateway >/dev/null; then
    userdel edge-gateway
  fi
  echo "Edge Gateway removed with its config and state."
else
  echo "Edge Gateway removed; config kept in /etc/edge-gateway, state in /var/lib/edge-gateway."
  echo "Remove them too with: $0 --purge"
fi
