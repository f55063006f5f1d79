"""Training on several processes through torch.distributed, as `torchrun` launches them.

`torchrun --nproc_per_node=N -m mp3d nerf train ...` starts N copies of the command with
RANK, WORLD_SIZE and LOCAL_RANK set; `init()` joins them into one process group (NCCL when
training on GPUs, gloo on CPUs). Without torchrun every helper here answers for a single
process, so trainers call them unconditionally.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def launched() -> bool:
    """Whether this process was started by torchrun (or another launcher setting WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: torch.device) -> bool:
    """Joins the process group of a torchrun launch (once), with NCCL for CUDA devices and
    gloo otherwise; returns whether training is distributed."""
    if not launched():
        return False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return True


def active() -> bool:
    """Whether a process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of processes training together (1 without torchrun)."""
    return dist.get_world_size() if active() else 1


def rank() -> int:
    """This process's rank (0 without torchrun)."""
    return dist.get_rank() if active() else 0


def local_rank() -> int:
    """This process's index on its machine, which picks its GPU (0 without torchrun)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    """Whether this process is the one that prints and writes files (rank 0)."""
    return rank() == 0


def barrier() -> None:
    """Waits for every process (nothing to wait for in a single process)."""
    if active():
        dist.barrier()


def any_rank(flag: bool) -> bool:
    """Whether `flag` is true on any process (so all of them take the same branch)."""
    if not active():
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=_collective_device())
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def all_reduce_mean_(tensors: list[torch.Tensor]) -> None:
    """Replaces each tensor by its mean over the processes, in place."""
    if not active():
        return
    for tensor in tensors:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor.div_(dist.get_world_size())


def all_reduce_sum_(tensors: list[torch.Tensor]) -> None:
    """Replaces each tensor by its sum over the processes, in place."""
    if not active():
        return
    for tensor in tensors:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)


def all_reduce_max_(tensors: list[torch.Tensor]) -> None:
    """Replaces each tensor by its elementwise maximum over the processes, in place."""
    if not active():
        return
    for tensor in tensors:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)


def average_gradients(parameters) -> None:
    """Averages the .grad of each parameter over the processes (those without one count as
    zero, so every process calls the same collectives)."""
    if not active():
        return
    for parameter in parameters:
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
        dist.all_reduce(parameter.grad, op=dist.ReduceOp.SUM)
        parameter.grad.div_(dist.get_world_size())


def broadcast_(tensors: list[torch.Tensor], source: int = 0) -> None:
    """Overwrites each tensor with rank `source`'s copy, in place."""
    if not active():
        return
    for tensor in tensors:
        dist.broadcast(tensor, src=source)


def _collective_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def shutdown() -> None:
    """Leaves the process group, if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
