"""Data-parallel training under `torchrun`: one process per CPU socket or GPU, gradients averaged by
`DistributedDataParallel`. Detected from torchrun's environment variables; nothing changes without them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist


@dataclass(frozen=True)
class Dist:
    """This process's place in a torchrun job."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env() -> Dist | None:
    """The torchrun job this process belongs to, or None when run alone."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return None
    return Dist(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0")))


def init(dist: Dist, device: torch.device) -> None:
    """Join the process group: nccl for CUDA, gloo for CPU."""
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo", rank=dist.rank, world_size=dist.world_size
        )


def barrier() -> None:
    """Wait until every rank gets here."""
    torch_dist.barrier()


def shutdown(together: bool = False) -> None:
    """Leave the process group. `together` (after a run every rank finished): first wait for every rank, so no
    rank tears down its connections while another is still using them; not after a failure, when a rank that
    is gone would never arrive."""
    if torch_dist.is_initialized():
        if together:
            torch_dist.barrier()
        torch_dist.destroy_process_group()


def broadcast_text(text: str | None, src: int = 0) -> str:
    """`text` of rank `src`, on every rank."""
    box = [text]
    torch_dist.broadcast_object_list(box, src=src)
    return box[0]


def all_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Element-wise sum over all ranks (in place, and returned)."""
    torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.SUM)
    return tensor


def gather_text(text: str) -> list[str]:
    """Every rank's `text`, in rank order."""
    out: list = [None] * torch_dist.get_world_size()
    torch_dist.all_gather_object(out, text)
    return out


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's names and bytes: equal digests, identical weights."""
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
