"""Several GPUs or hosts with PyTorch's own engine:

    torchrun --nproc_per_node 4 -m edge_meta.cli train --config export/recipes/default.toml

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK (and the rendezvous address); without them training runs
in one process as usual. Each process draws its own episodes (the seeds are offset by rank),
DistributedDataParallel averages the gradients, and rank 0 alone reads the corpora first (the others
then load its cache), validates, logs and writes checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> "Distributed":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            if backend == "nccl":
                torch.cuda.set_device(local_rank)
            dist.init_process_group(backend)
        return cls(dist.get_rank(), world, local_rank)

    def device(self, device: torch.device) -> torch.device:
        """One GPU per process on a multi-GPU host."""
        return torch.device("cuda", self.local_rank) if self.world > 1 and device.type == "cuda" else device

    def wrap(self, module: nn.Module) -> nn.Module:
        if self.world <= 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.local_rank] if torch.cuda.is_available() else None
        # learners leave some parameters out of some episodes (e.g. a speaker projection without the objective)
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
