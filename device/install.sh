#!/usr/bin/env bash
# Install edge-meta's device runtime as a systemd service on a Raspberry Pi or Jetson (Debian/Ubuntu, 64-bit).
# Idempotent: rerun it to upgrade. edge-meta is not on a package index: it installs this clone, or a wheel built
# from one (`python -m build --wheel` writes dist/edge_meta-VERSION-py3-none-any.whl), always with its [device] extra.
#
#   sudo ./device/install.sh                                 # this clone, the daemon's unit (edge-meta.service)
#   sudo ./device/install.sh --service wyoming               # or the Wyoming unit for Home Assistant
#   sudo EDGE_META_SPEC=/tmp/edge_meta-0.1.0-py3-none-any.whl ./device/install.sh    # a wheel copied to the Pi
#   sudo PYTHON=python3.11 ./device/install.sh               # where python3 is older than 3.11 (JetPack 6)
#   PREFIX=~/edge-meta ./device/install.sh --venv-only       # only the venv and its self-check: no root, no unit
#   PREFIX=/srv/edge-meta ./device/install.sh --print-unit   # the unit it would install, for systemd-analyze verify
#
# What it does: apt packages (PortAudio for the microphone, libsndfile for audio files, ALSA tools to find the
# microphone), a system user `edge-meta` in the `audio` group, a venv in $PREFIX (default /opt/edge-meta) with
# edge-meta[device] (numpy, scipy, soundfile, onnxruntime, sounddevice; never torch), checked by a real detection
# (`edge-meta demo` on the shipped recording), /etc/edge-meta/device.toml (kept if it exists), the device README as
# $PREFIX/README.md (the unit's Documentation=) and the unit, with $PREFIX in its paths. It does not start the
# service: enroll words first (printed at the end).
set -euo pipefail

PREFIX=$(realpath -m "${PREFIX:-/opt/edge-meta}")  # absolute: the self-check runs from /
PYTHON=${PYTHON:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
SERVICE=daemon
MODE=install

fail() {
  echo "error: $1" >&2
  [[ -n ${2:-} ]] && echo "  fix: $2" >&2
  exit 2
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --service) SERVICE=${2:-}; shift 2 || fail "--service needs daemon or wyoming" ;;
    --venv-only) MODE=venv; shift ;;
    --print-unit) MODE=print; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) fail "unknown option $1" "see $0 --help" ;;
  esac
done
case "$SERVICE" in
  daemon) UNIT=edge-meta.service ;;
  wyoming) UNIT=edge-meta-wyoming.service ;;
  *) fail "unknown service '$SERVICE'" "use --service daemon (edge-meta device run) or --service wyoming" ;;
esac
[[ -f "$HERE/$UNIT" ]] || fail "$HERE/$UNIT is not in this copy of edge-meta" \
  "update the clone (git pull), or install the daemon's unit: --service daemon"

unit() {  # the unit file with $PREFIX where it says /opt/edge-meta
  sed "s#/opt/edge-meta#$PREFIX#g" "$HERE/$UNIT"
}
if [[ $MODE == print ]]; then
  unit
  exit 0
fi

# The package: EDGE_META_SPEC (a wheel, a clone, or a requirement with extras of its own), else this clone.
if [[ -n ${EDGE_META_SPEC:-} ]]; then
  SPEC=$EDGE_META_SPEC
  [[ -e $SPEC ]] && SPEC="$(cd "$(dirname "$SPEC")" && pwd)/$(basename "$SPEC")"
elif [[ -f "$HERE/../pyproject.toml" ]]; then
  SPEC=$(cd "$HERE/.." && pwd)
else
  fail "$HERE is not inside a clone of edge-meta and EDGE_META_SPEC is not set" \
    "build a wheel in a clone (python -m build --wheel) and rerun with EDGE_META_SPEC=/path/to/edge_meta-VERSION-py3-none-any.whl"
fi
[[ $SPEC == *\]* ]] || SPEC="$SPEC[device]"  # a wheel or a folder: with the device extra (onnxruntime, sounddevice)

if [[ $MODE == install && $EUID -ne 0 ]]; then
  fail "run as root to install the service" "sudo $0, or --venv-only for the venv alone"
fi
case "$(uname -m)" in
  aarch64|arm64|x86_64) ;;
  *) fail "a $(uname -m) kernel is not supported: onnxruntime has no wheels for it" \
       "install a 64-bit OS (Raspberry Pi OS 64-bit, Ubuntu arm64)" ;;
esac
if [[ $MODE == install ]]; then
  apt-get update -qq
  apt-get install -y -qq python3-venv libportaudio2 libsndfile1 alsa-utils
fi
"$PYTHON" -c 'import sys' 2>/dev/null || fail "no Python interpreter '$PYTHON'" "install python3, or set PYTHON=python3.11"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  fail "edge-meta needs Python 3.11+, $PYTHON is $("$PYTHON" -V 2>&1)" "install python3.11 and rerun with PYTHON=python3.11"
fi
bits=$("$PYTHON" -c 'import struct; print(8 * struct.calcsize("P"))')
if [[ $bits != 64 ]]; then
  fail "$PYTHON is a ${bits}-bit program on a $(uname -m) kernel: a 32-bit userland$(command -v dpkg >/dev/null && echo " ($(dpkg --print-architecture))"), for which onnxruntime has no wheels" \
    "install the 64-bit OS (Raspberry Pi OS 64-bit, Ubuntu arm64): a 64-bit kernel alone is not enough"
fi

if [[ $MODE == install ]]; then
  id -u edge-meta >/dev/null 2>&1 || useradd --system --home-dir /var/lib/edge-meta --shell /usr/sbin/nologin edge-meta
  usermod -a -G audio edge-meta
fi

"$PYTHON" -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/python" -m pip install -q --upgrade pip
"$PREFIX/venv/bin/python" -m pip install -q --upgrade "$SPEC"
# pip keeps an installed edge-meta of the same version: replace it with this one (a rebuilt wheel, a pulled clone)
"$PREFIX/venv/bin/python" -m pip install -q --force-reinstall --no-deps "${SPEC%%\[*}"

# Self-check, away from any source tree (Python would import a clone's edge_meta/ from the current folder): the
# installed runtime imports without torch, and finds the shipped sample's words in its recording.
cd /
"$PREFIX/venv/bin/python" - <<'PY' || fail "the installed edge-meta is incomplete (above)" "rerun $0; check that pip could reach the package index"
import sys
import edge_meta.device, onnxruntime  # noqa: F401,E401  (the runtime and the encoder's interpreter)
assert "torch" not in sys.modules, "the device install pulled in torch"
PY
demo=$("$PREFIX/venv/bin/edge-meta" demo 2>&1) || { echo "$demo" >&2; fail "edge-meta demo failed (above)" "rerun $0"; }
found=$(sed -n 's#^result: \([0-9]*\)/.*#\1#p' <<<"$demo")
[[ ${found:-0} -gt 0 ]] || { echo "$demo" >&2; fail "edge-meta demo found none of the sample's words" "report it with the output above"; }
echo "self-check: $(grep '^result: ' <<<"$demo")"

if [[ $MODE == venv ]]; then
  echo "edge-meta is installed in $PREFIX/venv: $PREFIX/venv/bin/edge-meta --help"
  exit 0
fi

install -m 0644 "$HERE/README.md" "$PREFIX/README.md"
install -d -m 0755 /etc/edge-meta
[[ -f /etc/edge-meta/device.toml ]] || install -m 0644 "$HERE/device.toml" /etc/edge-meta/device.toml
install -d -o edge-meta -g edge-meta -m 0700 /var/lib/edge-meta
unit > "/etc/systemd/system/$UNIT"
chmod 0644 "/etc/systemd/system/$UNIT"
systemctl daemon-reload
systemctl enable "$UNIT" >/dev/null

cat <<MSG
edge-meta is installed in $PREFIX, with the unit $UNIT. Microphones ALSA sees:
$(arecord -l 2>/dev/null | grep '^card' || echo "  none: plug in a USB microphone (see firmware_notes/)")

Next, as the service's user:
  sudo -u edge-meta EDGE_META_STORE=/var/lib/edge-meta/profiles.db $PREFIX/venv/bin/edge-meta device enroll-word "lights on" --user alice
  sudo -u edge-meta EDGE_META_STORE=/var/lib/edge-meta/profiles.db $PREFIX/venv/bin/edge-meta device enroll-voice alice
then edit /etc/edge-meta/device.toml and start it:
  sudo systemctl start ${UNIT%.service} && journalctl -u ${UNIT%.service} -f
MSG
