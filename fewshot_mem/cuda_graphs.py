"""Training steps and inference replayed as CUDA graphs, so that a GPU is not bound by kernel
launches: a memory model's step is hundreds of small kernels per time step, each costing more
to launch than to run at Santoro's size.

    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, capturable=True)
    step = TrainingStep(model.loss, model.parameters(), optimizer, clip=10.0, graph=True)
    for batch in batches:      # every call is one real optimizer step on its batch
        loss = step(batch)     # (a 0-d tensor on the device; .item() syncs, so log sparingly)

A graph replays fixed kernels on fixed memory: every batch must have the first batch's shapes
(it is copied into static buffers; host batches are copied straight to the device), and the
optimizer must be built with ``capturable=True``. The first ``warmup`` calls run eagerly on a
side stream (as CUDA graph capture requires), the next one captures and replays.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable

import torch

from .train import clip_gradients


def _static_copy(batch: Any, device: torch.device) -> Any:
    """The batch (a dataclass of tensors) with every tensor cloned onto ``device``."""
    return dataclasses.replace(batch, **{field.name: value.to(device, copy=True)
                                         for field in dataclasses.fields(batch)
                                         if isinstance(value := getattr(batch, field.name), torch.Tensor)})


def _copy_into(static: Any, batch: Any) -> None:
    for field in dataclasses.fields(batch):
        value = getattr(batch, field.name)
        if isinstance(value, torch.Tensor):
            target = getattr(static, field.name)
            if value.shape != target.shape:
                raise ValueError(f"a CUDA graph replays fixed shapes: {field.name} is {tuple(value.shape)}, "
                                 f"the captured batch had {tuple(target.shape)}")
            target.copy_(value, non_blocking=True)


class TrainingStep:
    """One optimizer step (zero the gradients, loss, backward, clip the gradient norm, step),
    eager or replayed from a CUDA graph (``graph=True``, parameters on a CUDA device)."""

    def __init__(self, loss: Callable[[Any], torch.Tensor], parameters: Iterable[torch.nn.Parameter],
                 optimizer: torch.optim.Optimizer, clip: float | None = None, graph: bool = False,
                 warmup: int = 3, clip_mode: str = "norm") -> None:
        self.loss, self.parameters, self.optimizer, self.clip = loss, list(parameters), optimizer, clip
        self.clip_mode = clip_mode
        self.graph, self.warmup = graph, warmup
        if graph:
            if not self.parameters[0].is_cuda:
                raise ValueError("a CUDA graph needs the parameters on a CUDA device")
            if not all(group.get("capturable") for group in optimizer.param_groups):
                raise ValueError("build the optimizer with capturable=True to step it inside a CUDA graph")
        self._cuda_graph: torch.cuda.CUDAGraph | None = None
        self._static_batch: Any = None
        self._static_loss: torch.Tensor | None = None
        self._calls = 0

    def _eager(self, batch: Any) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(batch)
        loss.backward()
        clip_gradients(self.parameters, self.clip, self.clip_mode)
        self.optimizer.step()
        return loss.detach()

    def __call__(self, batch: Any) -> torch.Tensor:
        self._calls += 1
        if not self.graph:
            return self._eager(batch)
        device = self.parameters[0].device
        if self._calls <= self.warmup:  # eager, on a side stream, as capture requires
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                loss = self._eager(batch.to(device))
            torch.cuda.current_stream(device).wait_stream(side)
            return loss
        if self._cuda_graph is None:
            self._static_batch = _static_copy(batch, device)
            self.optimizer.zero_grad(set_to_none=True)  # gradients are allocated from the graph's pool
            self._cuda_graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self._cuda_graph):
                self._static_loss = self._eager(self._static_batch)
        else:
            _copy_into(self._static_batch, batch)
        self._cuda_graph.replay()  # capture records without running: this step runs here
        return self._static_loss


class GraphedInference:
    """``function(batch)`` without gradients, captured once on the first batch's shapes and
    replayed; the result lives in a static buffer, overwritten by the next call (clone to keep)."""

    def __init__(self, function: Callable[[Any], torch.Tensor], example: Any, device: torch.device | str,
                 warmup: int = 2) -> None:
        self._static_batch = _static_copy(example, torch.device(device))
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.no_grad(), torch.cuda.stream(side):
            for _ in range(warmup):
                function(self._static_batch)
        torch.cuda.current_stream(device).wait_stream(side)
        self._cuda_graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(self._cuda_graph):
            self._static_output = function(self._static_batch)

    def __call__(self, batch: Any) -> torch.Tensor:
        _copy_into(self._static_batch, batch)
        self._cuda_graph.replay()
        return self._static_output
