#!/usr/bin/env bash
# Set up edge-meta on a fresh Debian/Ubuntu machine (idempotent: a rerun only checks).
#   - system packages: PortAudio (microphone), libsndfile, TTS engines for synthetic training speech
#   - a virtual environment in .venv with the CPU build of PyTorch 2.13.0 installed *first*
#     (a bare `pip install torch` would pull a multi-GB CUDA build), then edge-meta[all]
# On a GPU workstation install the CUDA build of torch into .venv before running this.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
APT_PACKAGES="libportaudio2 libsndfile1 espeak-ng flite festival sox"
missing=""
for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if ! python3 -c "import ensurepip, venv" >/dev/null 2>&1; then missing="$missing python3-venv"; fi
if [ -n "$missing" ]; then
  echo "installing system packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
PIP=".venv/bin/python -m pip -q --disable-pip-version-check"
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  echo "installing PyTorch (CPU build) into .venv"
  $PIP install "torch==2.13.0"
fi
$PIP install -e ".[all]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/edge-meta --version
