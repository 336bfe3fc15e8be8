"""Scaling out with torch.distributed: small helpers that do nothing in one process.

A process started by ``torchrun`` (``python -m torch.distributed.run``) finds
its rank and the world size in the environment variables the launcher sets
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``).
:func:`init` joins the process group then: gloo for CPU training, NCCL for
CUDA, one GPU a process (``cuda:LOCAL_RANK``). Without those variables every
helper here answers as for a world of one process, so the single-process code
path is the same code and stays exactly as it was.

How the work is split (see ``train.fit`` and ``evaluate``):

* training: step ``s`` trains on episodes ``s·B .. s·B + B − 1``, as in one
  process; rank ``r`` of ``W`` takes every W-th of them, from the r-th
  (:func:`shard_batch`), so the union over ranks is the single-process batch,
  and its loss is weighted so that DDP's mean over ranks is the mean over the
  whole batch;
* evaluation: rank ``r`` scores a contiguous share of the frozen episodes
  (:func:`shard_range`) and the per-episode results are gathered in rank order
  (:func:`gather`), so every rank holds the single-process arrays;
* files: rank 0 alone writes, and reads what others need (:func:`from_main`),
  so several nodes need no shared file system.
"""

from __future__ import annotations

import os
import uuid
from typing import Callable, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

T = TypeVar("T")
LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def launched() -> bool:
    """Whether a launcher such as torchrun started this process as one rank of a group."""
    return all(name in os.environ for name in LAUNCH_VARIABLES)


def run_on_local_processes(function: Callable[..., T], arguments: tuple, processes: int) -> T:
    """Runs ``function(*arguments)`` as ``processes`` ranks on this machine, as ``torchrun
    --standalone --nproc_per_node=processes`` would (a free port, no restarts), and returns rank
    0's return value. ``function`` must be defined at a module's top level: each rank is a fresh
    process that imports it. A rank that raises stops them all (torch's ChildFailedError); an
    interrupt (Ctrl-C, SIGTERM) stops them all and raises KeyboardInterrupt here, as in one process."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=processes, run_id=uuid.uuid4().hex,
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1)
    try:
        return elastic_launch(config, function)(*arguments)[0]
    except SignalException as error:
        raise KeyboardInterrupt(str(error)) from None


def available_cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def active() -> bool:
    """Whether this process belongs to an initialized process group."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def local_rank() -> int:
    """This process's index on its own machine (which GPU it drives)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """Rank 0: the one process that writes files, logs and prints."""
    return rank() == 0


def backend_for(device: str | torch.device) -> str:
    """NCCL for CUDA tensors, gloo for CPU ones."""
    return "nccl" if str(device).startswith("cuda") else "gloo"


def init(device: str = "cpu") -> str:
    """Joins the process group when launched by torchrun; returns the device this rank uses.

    ``device="cuda"`` becomes ``cuda:LOCAL_RANK`` under torchrun, so the processes of
    one machine each drive their own GPU. Without launch variables, nothing happens.
    """
    if not launched():
        return device
    if str(device).startswith("cuda"):
        device = f"cuda:{local_rank()}"
        torch.cuda.set_device(device)  # NCCL's collectives and object transfers use the current device
    if not active():
        dist.init_process_group(backend_for(device))
    return device


def cleanup() -> None:
    """Leaves the process group (a no-op outside one)."""
    if active():
        dist.destroy_process_group()


def barrier() -> None:
    """Waits until every rank gets here (a no-op in one process)."""
    if active():
        # NCCL's barrier runs on a GPU: name this rank's, or it guesses (and warns).
        on_gpu = dist.get_backend() == "nccl"
        dist.barrier(device_ids=[torch.cuda.current_device()] if on_gpu else None)


def shard_batch(ids: np.ndarray) -> tuple[np.ndarray, float]:
    """This rank's episodes of a training batch, and the weight of its mean loss.

    Rank r takes ``ids[r::W]``, so the ranks' episodes together are the batch one
    process would train on. DDP averages gradients over ranks; weighting rank r's
    mean loss by ``len(own) · W / len(ids)`` makes that average the gradient of the
    mean loss over the whole batch, also when W does not divide the batch. A batch
    smaller than the world (ProtoNet trains on one episode a step) is computed whole
    by every rank with weight 1: the mean of W equal gradients is that gradient.
    """
    world = world_size()
    if len(ids) < world:
        return ids, 1.0
    own = ids[rank()::world]
    return own, len(own) * world / len(ids)


def shard_range(count: int) -> np.ndarray:
    """A contiguous share of ``0 .. count − 1`` (shares differ in size by one at most)."""
    world, me = world_size(), rank()
    return np.arange(count * me // world, count * (me + 1) // world)


def gather(items: list) -> list:
    """Every rank's ``items`` (picklable), concatenated in rank order, on every rank."""
    if not active():
        return list(items)
    parts: list = [None] * world_size()
    dist.all_gather_object(parts, items)
    return [item for part in parts for item in part]


def all_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over ranks, on every rank (``tensor`` itself in one process)."""
    if not active():
        return tensor
    total = tensor.detach().clone()
    dist.all_reduce(total)
    return total


def from_main(function: Callable[..., T], *args) -> T:
    """``function(*args)`` run on rank 0 and handed to every rank (checkpoints, file checks).

    Only rank 0 reads, so the other ranks need not see its files (several nodes, no
    shared file system). An exception on rank 0 is raised on every rank, so no rank
    is left waiting in a collective.
    """
    if not active():
        return function(*args)
    box: list = [None]
    if is_main():
        try:
            box[0] = (True, function(*args))
        except Exception as error:  # noqa: BLE001 - handed on, then raised everywhere
            box[0] = (False, error)
    dist.broadcast_object_list(box, src=0)
    succeeded, value = box[0]
    if not succeeded:
        raise value
    return value


def broadcast_buffers(module: nn.Module) -> None:
    """Gives every rank rank 0's buffers (batch-norm running statistics).

    DDP keeps parameters equal, and sends buffers from rank 0 only at the start of
    each forward; after it, each rank's running statistics hold its own episodes.
    Validation must score the weights rank 0 saves, so it calls this first.
    """
    if active():
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def data_parallel(module: nn.Module, device: str | torch.device) -> nn.Module:
    """``module`` wrapped in DistributedDataParallel when there are several ranks, else itself.

    ``static_graph``: every training step uses the same parameters, but not all of them
    (a novelty score ν is fitted after training, never by the training loss); with a
    static graph DDP learns which ones once, instead of searching the graph every step.
    """
    if world_size() == 1:
        return module
    device = torch.device(device)
    if device.type == "cuda":  # one GPU a rank: DDP's inputs and gradients live on it
        device_ids = [device.index if device.index is not None else torch.cuda.current_device()]
    else:
        device_ids = None
    return DistributedDataParallel(module, device_ids=device_ids, static_graph=True)
