"""edge-meta: meta-learned few-shot keyword and speaker enrollment for small devices.

The top of the package (audio, frontend, bundle, corpora, episodes) is torch-free so the
device runtime can use it; `edge_meta.train` and `edge_meta.export` need torch.
"""

__version__ = "0.1.0"
