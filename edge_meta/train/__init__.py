"""Workstation side: meta-training with PyTorch (frontend twin, encoders, learners, trainer)."""
