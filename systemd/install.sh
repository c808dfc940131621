#!/usr/bin/env bash
# Install or upgrade Edge Gateway as a systemd service (Raspberry Pi OS Bookworm).
#
#   sudo ./systemd/install.sh
#
# Running it again upgrades in place: the venv is updated, the unit replaced,
# and /etc/edge-gateway (your config) and /var/lib/edge-gateway (the outbox
# and timers) are kept as they are.
#
# Environment:
#   DESTDIR=/tmp/root   stage everything below this directory instead of /
#                       (no user, no systemctl: for packaging and tests)
#   PYTHON=python3      the interpreter for the venv (3.11 or newer)
#   EXTRAS=pi           pip extras ("pi" adds lgpio; default on 64-bit ARM)
#   SYSTEM_SITE=1       create the venv with --system-site-packages
#                       (automatic on 32-bit Raspberry Pi OS, for apt's python3-lgpio)
#   PIP_ARGS="..."      extra arguments for pip install
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DESTDIR=${DESTDIR:-}
PYTHON=${PYTHON:-python3}
PREFIX=/opt/edge-gateway
CONF_DIR=/etc/edge-gateway
STATE_DIR=/var/lib/edge-gateway
UNIT_DIR=/etc/systemd/system
BIN_LINK=/usr/local/bin/gateway
SERVICE_USER=edge-gateway

step() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
  die "run as root: sudo $0"
fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "$PYTHON is older than 3.11 (Raspberry Pi OS Bookworm ships 3.11)"

arch=$(uname -m)
case "$arch" in
  armv6l|armv7l) SYSTEM_SITE=${SYSTEM_SITE:-1}; EXTRAS=${EXTRAS:-} ;;  # 32-bit: apt's python3-lgpio
  aarch64) EXTRAS=${EXTRAS-pi} ;;
  *) EXTRAS=${EXTRAS:-} ;;
esac
SYSTEM_SITE=${SYSTEM_SITE:-0}

if [ -z "$DESTDIR" ]; then
  step "service user $SERVICE_USER"
  for group in gpio dialout; do
    getent group "$group" >/dev/null || groupadd --system "$group"
  done
  if ! getent passwd "$SERVICE_USER" >/dev/null; then
    useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
      --shell /usr/sbin/nologin --comment "Edge Gateway" "$SERVICE_USER"
  fi
fi

step "virtual environment in $PREFIX"
venv_args=()
if [ "$SYSTEM_SITE" = 1 ]; then
  venv_args+=(--system-site-packages)
  if [ -z "$DESTDIR" ] && ! "$PYTHON" -c 'import lgpio' 2>/dev/null; then
    printf 'note: install GPIO support with: sudo apt install python3-lgpio\n'
  fi
fi
if [ ! -x "$DESTDIR$PREFIX/bin/python" ]; then
  "$PYTHON" -m venv "${venv_args[@]}" "$DESTDIR$PREFIX"
fi
spec="$SRC"
if [ -n "$EXTRAS" ]; then
  spec="${SRC}[${EXTRAS}]"
fi
# shellcheck disable=SC2086  # PIP_ARGS is a list of words on purpose
"$DESTDIR$PREFIX/bin/python" -m pip install --quiet --upgrade ${PIP_ARGS:-} "$spec"
install -m 0644 "$SRC/README.md" "$DESTDIR$PREFIX/README.md"
install -d "$DESTDIR$(dirname "$BIN_LINK")"
ln -sfn "$PREFIX/bin/gateway" "$DESTDIR$BIN_LINK"

step "config in $CONF_DIR (an existing one is never overwritten)"
install -d -m 0750 "$DESTDIR$CONF_DIR"
install -m 0644 "$SRC/config/gateway.example.yaml" "$DESTDIR$CONF_DIR/gateway.example.yaml"
if [ ! -e "$DESTDIR$CONF_DIR/gateway.yaml" ]; then
  install -m 0640 "$SRC/config/gateway.example.yaml" "$DESTDIR$CONF_DIR/gateway.yaml"
  created_config=1
fi
if [ ! -e "$DESTDIR$CONF_DIR/secrets.yaml" ]; then
  install -m 0640 "$SRC/config/secrets.yaml" "$DESTDIR$CONF_DIR/secrets.yaml"
fi
install -d -m 0750 "$DESTDIR$STATE_DIR"
if [ -z "$DESTDIR" ]; then
  chown "root:$SERVICE_USER" "$CONF_DIR" "$CONF_DIR/gateway.yaml" "$CONF_DIR/secrets.yaml"
  chown "$SERVICE_USER:$SERVICE_USER" "$STATE_DIR"
fi

step "systemd unit $UNIT_DIR/edge-gateway.service"
install -d "$DESTDIR$UNIT_DIR"
install -m 0644 "$SRC/systemd/edge-gateway.service" "$DESTDIR$UNIT_DIR/edge-gateway.service"

if [ -z "$DESTDIR" ]; then
  systemctl daemon-reload
  systemctl enable edge-gateway.service >/dev/null
  if systemctl is-active --quiet edge-gateway.service; then
    step "restarting the running service (upgrade)"
    systemctl restart edge-gateway.service
  elif [ -z "${created_config:-}" ]; then
    systemctl start edge-gateway.service
  fi
fi

cat <<TXT

Edge Gateway is installed.
  1. Edit the rules and devices:   sudoedit $CONF_DIR/gateway.yaml
     and the secrets:              sudoedit $CONF_DIR/secrets.yaml
  2. Check them:                   gateway check --config $CONF_DIR/gateway.yaml
  3. Start, or apply a change:     sudo systemctl restart edge-gateway
                                   sudo systemctl reload edge-gateway
  4. Watch it:                     systemctl status edge-gateway; journalctl -u edge-gateway -f
TXT
