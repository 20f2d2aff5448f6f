"""edge-meta: meta-learned few-shot keyword and speaker enrollment for small devices.

The top of the package (audio, frontend, bundle, corpora, episodes) is torch-free so the
device runtime can use it; `edge_meta.train` and `edge_meta.export` need torch.
"""

import os
import sys
import warnings

__version__ = "0.1.0"

# onnxruntime wheels built with 1DS telemetry (1.32 here) write a device id and an event queue under
# ~/.cache/Microsoft/DeveloperTools/ when the library loads, and a long-running process then looks up and posts to
# mobile.events.data.microsoft.com. Only this variable, read as the library loads, stops both
# (`onnxruntime.disable_telemetry_events()` afterwards does not): every edge_meta import sets it before any
# onnxruntime import. tests/test_privacy.py watches the process's sockets and HOME.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"
if "onnxruntime" in sys.modules:
    warnings.warn("onnxruntime was imported before edge_meta, so its telemetry is on: import edge_meta first, or set "
                  "ORT_DISABLE_TELEMETRY=1 in the environment")
