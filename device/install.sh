#!/usr/bin/env bash
# Install edge-meta's device runtime as a systemd service on a Raspberry Pi or Jetson (Debian/Ubuntu, 64-bit).
# Idempotent: rerun it to upgrade. Run from this folder as root:
#
#   sudo ./install.sh                                   # edge-meta[device] from the package index
#   sudo EDGE_META_SPEC=/tmp/edge_meta-0.1.0-py3-none-any.whl ./install.sh    # or a wheel / source folder
#   sudo PYTHON=python3.11 ./install.sh                 # where python3 is older than 3.11 (JetPack 6: see firmware_notes)
#
# What it does: apt packages (PortAudio for the microphone, libsndfile for audio files, ALSA tools to find the
# microphone), a system user `edge-meta` in the `audio` group, a venv in /opt/edge-meta with edge-meta[device]
# (numpy, scipy, soundfile, onnxruntime, sounddevice; never torch), /etc/edge-meta/device.toml (kept if it
# exists), and the edge-meta.service unit. It does not start the service: enroll words first (printed at the end).
set -euo pipefail

PREFIX=${PREFIX:-/opt/edge-meta}
PYTHON=${PYTHON:-python3}
SPEC=${EDGE_META_SPEC:-edge-meta[device]}
HERE=$(cd "$(dirname "$0")" && pwd)

if [[ $EUID -ne 0 ]]; then
  echo "error: run as root (sudo $0)" >&2
  exit 2
fi
case "$(uname -m)" in
  aarch64|x86_64) ;;
  *) echo "error: $(uname -m) is not supported: onnxruntime has no wheels for it; install a 64-bit OS" >&2; exit 2 ;;
esac

apt-get update -qq
apt-get install -y -qq python3-venv libportaudio2 libsndfile1 alsa-utils
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "error: edge-meta needs Python 3.11+, $PYTHON is $("$PYTHON" -V 2>&1); install python3.11 and rerun with PYTHON=python3.11" >&2
  exit 2
fi

id -u edge-meta >/dev/null 2>&1 || useradd --system --home-dir /var/lib/edge-meta --shell /usr/sbin/nologin edge-meta
usermod -a -G audio edge-meta

"$PYTHON" -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install -q --upgrade pip
"$PREFIX/venv/bin/pip" install -q --upgrade "$SPEC"
"$PREFIX/venv/bin/python" - <<'PY'
import sys
import edge_meta.device  # noqa: F401  (imports the runtime: numpy, soundfile, the bundle format)
assert "torch" not in sys.modules, "the device install pulled in torch"
PY

install -d -m 0755 /etc/edge-meta
[[ -f /etc/edge-meta/device.toml ]] || install -m 0644 "$HERE/device.toml" /etc/edge-meta/device.toml
install -d -o edge-meta -g edge-meta -m 0700 /var/lib/edge-meta
install -m 0644 "$HERE/edge-meta.service" /etc/systemd/system/edge-meta.service
systemctl daemon-reload
systemctl enable edge-meta.service >/dev/null

cat <<MSG
edge-meta is installed in $PREFIX. Microphones ALSA sees:
$(arecord -l 2>/dev/null | grep '^card' || echo "  none: plug in a USB microphone (see firmware_notes/)")

Next, as the service's user:
  sudo -u edge-meta EDGE_META_STORE=/var/lib/edge-meta/profiles.db $PREFIX/venv/bin/edge-meta device enroll-word "lights on" --user alice
  sudo -u edge-meta EDGE_META_STORE=/var/lib/edge-meta/profiles.db $PREFIX/venv/bin/edge-meta device enroll-voice alice
then edit /etc/edge-meta/device.toml (commands per word) and start it:
  sudo systemctl start edge-meta && journalctl -u edge-meta -f
MSG
