"""Straightforward reference implementations of the sequence models, for speed comparisons.

Each model is written the way its paper writes it: a Python loop over time steps and, inside
each step, over heads; one ``nn.Linear`` per gate and per head quantity (no fused interface
projection); a hand-written LSTM cell with one linear map per gate over [x_t, h_{t-1}]; cosine
similarity computed head by head. Batches of episodes are still processed together (the loop
is over time and heads, not over episodes), so a comparison at the same batch size measures
what fusing and batching the heads buys, not batching episodes.

``Reference*.from_library(model)`` builds the reference for a library model and copies its
weights (splitting the fused projections into the per-gate and per-head layers), so that the
two compute the same function: the same logits for the same batch, up to float rounding
(``tests/test_reference_models.py`` checks it in float64).

    from reference_models import reference_for     # with benchmarks/ on sys.path
    reference = reference_for(library_model)       # same weights, same function
    logits = reference.online_logits(batch)        # (B, T, *task.output_shape)
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from fewshot_mem.data.episodes import SequenceBatch
from fewshot_mem.models.dnc import DNC
from fewshot_mem.models.encoders import FlattenEncoder
from fewshot_mem.models.lstm import LSTMLearner
from fewshot_mem.models.mann import MANN
from fewshot_mem.models.ntm import NTM

EPSILON = 1e-6  # the library's ε in norms, sharpening and the DNC's usage squeeze
MEMORY_INIT = 1e-6  # initial value of every memory cell, as in the library


# ---------------------------------------------------------------------------------------------
# Building blocks


def _copy_linear(target: nn.Linear, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    """Copies a slice of a fused projection into one per-quantity layer."""
    with torch.no_grad():
        target.weight.copy_(weight)
        if target.bias is not None:
            target.bias.copy_(bias if bias is not None else torch.zeros_like(target.bias))


def _split_linear(fused: nn.Linear, sizes: list[int]) -> list[nn.Linear]:
    """One nn.Linear per consecutive block of ``fused``'s outputs, with its weights."""
    layers, start = [], 0
    for size in sizes:
        layer = nn.Linear(fused.in_features, size).to(fused.weight.dtype)
        _copy_linear(layer, fused.weight[start : start + size], fused.bias[start : start + size])
        layers.append(layer)
        start += size
    if start != fused.out_features:
        raise ValueError(f"split sizes add up to {start}, the layer has {fused.out_features} outputs")
    return layers


class LSTMCellReference(nn.Module):
    """The LSTM cell as Graves (2013) writes it, one linear map per gate over [x_t, h_{t-1}]:
    i = σ(W_i[x, h] + b_i), f = σ(W_f[x, h] + b_f), g = tanh(W_g[x, h] + b_g),
    o = σ(W_o[x, h] + b_o), c' = f c + i g, h' = o tanh(c')."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_gate = nn.Linear(input_size + hidden_size, hidden_size)
        self.forget_gate = nn.Linear(input_size + hidden_size, hidden_size)
        self.cell_gate = nn.Linear(input_size + hidden_size, hidden_size)
        self.output_gate = nn.Linear(input_size + hidden_size, hidden_size)

    @classmethod
    def from_torch(cls, weight_ih: torch.Tensor, weight_hh: torch.Tensor, bias_ih: torch.Tensor,
                   bias_hh: torch.Tensor) -> "LSTMCellReference":
        """From PyTorch's fused layout (4H rows in gate order i, f, g, o; two biases)."""
        hidden = weight_hh.shape[1]
        cell = cls(weight_ih.shape[1], hidden).to(weight_ih.dtype)
        gates = (cell.input_gate, cell.forget_gate, cell.cell_gate, cell.output_gate)
        for k, gate in enumerate(gates):
            rows = slice(k * hidden, (k + 1) * hidden)
            _copy_linear(gate, torch.cat([weight_ih[rows], weight_hh[rows]], dim=1), bias_ih[rows] + bias_hh[rows])
        return cell

    def forward(self, inputs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        hidden, cell = state
        z = torch.cat([inputs, hidden], dim=-1)
        i = torch.sigmoid(self.input_gate(z))
        f = torch.sigmoid(self.forget_gate(z))
        g = torch.tanh(self.cell_gate(z))
        o = torch.sigmoid(self.output_gate(z))
        cell = f * cell + i * g
        return o * torch.tanh(cell), cell


class FeedforwardReference(nn.Module):
    """A ReLU layer; the cell passes through unchanged (the library's feedforward controller)."""

    def __init__(self, layer: nn.Linear) -> None:
        super().__init__()
        self.layer = copy.deepcopy(layer)

    def forward(self, inputs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.relu(self.layer(inputs)), state[1]


def _controller_from_library(controller) -> nn.Module:
    """The reference controller with the weights of a library ``Controller``."""
    if controller.kind == "lstm":
        core = controller.core
        return LSTMCellReference.from_torch(core.weight_ih, core.weight_hh, core.bias_ih, core.bias_hh)
    return FeedforwardReference(controller.core)


class FlattenReference(nn.Module):
    """uint8 images (B, T, c, H, W) -> float pixels in [0, 1], (B, T, c·H·W)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images = images.float() / 255 if images.dtype == torch.uint8 else images
        return images.reshape(*images.shape[:2], -1)


def _encoder_from_library(encoder: nn.Module) -> nn.Module:
    # Raw pixels are written out here; any other encoder is not what these references compare,
    # so it is copied as it is (same weights, same features).
    return FlattenReference() if isinstance(encoder, FlattenEncoder) else copy.deepcopy(encoder)


def cosine(memory: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """One head's K(k, M_i) = k·M_i / (‖k‖ ‖M_i‖), ‖x‖ = sqrt(Σ x² + ε): (B, N, W), (B, W) -> (B, N)."""
    dots = torch.bmm(memory, key.unsqueeze(-1)).squeeze(-1)  # (B, N)
    key_norm = torch.sqrt((key * key).sum(-1, keepdim=True) + EPSILON)  # (B, 1)
    row_norms = torch.sqrt((memory * memory).sum(-1) + EPSILON)  # (B, N)
    return dots / (key_norm * row_norms)


def read_head(memory: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """One head's read r = Σ_i w(i) M(i): (B, N, W), (B, N) -> (B, W)."""
    return torch.bmm(weights.unsqueeze(1), memory).squeeze(1)


class ReferenceSequenceModel(nn.Module):
    """A Python loop over the time steps of a label-offset sequence (the online protocol)."""

    def __init__(self, library_model) -> None:
        super().__init__()
        self.task = library_model.task
        self.encoder = _encoder_from_library(library_model.encoder)
        self.readout = copy.deepcopy(library_model.readout)

    @classmethod
    def from_library(cls, model):
        """The reference for ``model``, with a copy of its weights."""
        return cls(model)

    @property
    def dtype(self) -> torch.dtype:
        return self.readout.weight.dtype

    def initial_state(self, batch_size: int, reference: torch.Tensor):
        raise NotImplementedError

    def step(self, features: torch.Tensor, previous_code: torch.Tensor, state):
        raise NotImplementedError

    def online_logits(self, batch: SequenceBatch) -> torch.Tensor:
        features = self.encoder(batch.images).to(self.dtype)  # (B, T, F)
        codes = batch.previous_codes.to(features.dtype)  # (B, T, D)
        state = self.initial_state(features.shape[0], features)
        outputs = []
        for t in range(features.shape[1]):
            output, state = self.step(features[:, t], codes[:, t], state)
            outputs.append(output)
        scores = torch.stack(outputs, dim=1)
        return scores.view(*scores.shape[:2], *self.task.output_shape)

    def loss(self, batch: SequenceBatch) -> torch.Tensor:
        logits = self.online_logits(batch)
        return F.cross_entropy(logits.flatten(0, -2), batch.targets.flatten())


class ReferenceMemoryModel(ReferenceSequenceModel):
    """A controller and an N×W memory, as the three memory models share them."""

    def __init__(self, library_model) -> None:
        super().__init__(library_model)
        self.slots, self.width, self.controller_size = (library_model.memory_slots, library_model.memory_width,
                                                        library_model.controller_size)
        self.controller = _controller_from_library(library_model.controller)

    def blank_state(self, batch_size: int, reference: torch.Tensor) -> dict:
        """Zero controller state and a memory of MEMORY_INIT everywhere."""
        zeros = reference.new_zeros(batch_size, self.controller_size)
        return dict(hidden=zeros, cell=zeros.clone(),
                    memory=reference.new_full((batch_size, self.slots, self.width), MEMORY_INIT))


# ---------------------------------------------------------------------------------------------
# MANN (Santoro et al. 2016), least-recently-used access


class ReferenceMANN(ReferenceMemoryModel):
    """Santoro et al.'s MANN, head by head.

    Per step: controller([x_t, y_{t-1}, r^1_{t-1} .. r^R_{t-1}]); for each head h, key
    k_h = tanh(W^k_h h_t) and write gate α_h = W^α_h h_t; w^w_h = σ(α_h) w^r_{t-1,h} +
    (1 − σ(α_h)) w^lu_{t-1}; the least-used slot of w^u_{t-1} is zeroed; each head adds its key
    at w^w_h; each head reads with w^r_h = softmax(K(k_h, M_t)); w^u_t = γ w^u_{t-1} +
    Σ_h (w^r_h + w^w_h); w^lu_t marks the R least-used slots; o_t = W^o [h_t, r_t].
    """

    def __init__(self, library_model: MANN) -> None:
        super().__init__(library_model)
        m = library_model
        self.heads, self.usage_decay = m.read_heads, m.usage_decay
        h, w = self.heads, self.width
        # The library's interface rows: keys of head 0, 1, ... (W each), then one gate per head.
        layers = _split_linear(m.interface, [w] * h + [1] * h)
        self.key_layers, self.gate_layers = nn.ModuleList(layers[:h]), nn.ModuleList(layers[h:])

    def initial_state(self, batch_size: int, reference: torch.Tensor):
        b, n, w = batch_size, self.slots, self.width
        zeros = reference.new_zeros
        least_used = zeros(b, n)
        least_used[:, : self.heads] = 1.0
        return dict(self.blank_state(b, reference), read_w=[zeros(b, n) for _ in range(self.heads)],
                    usage=zeros(b, n), least_used=least_used, reads=[zeros(b, w) for _ in range(self.heads)])

    def step(self, features, previous_code, state):
        hidden, cell = self.controller(torch.cat([features, previous_code, *state["reads"]], dim=-1),
                                       (state["hidden"], state["cell"]))
        memory, usage, least_used = state["memory"], state["usage"], state["least_used"]
        keys, write_ws = [], []
        for head in range(self.heads):
            keys.append(torch.tanh(self.key_layers[head](hidden)))
            gate = torch.sigmoid(self.gate_layers[head](hidden))  # (B, 1)
            write_ws.append(gate * state["read_w"][head] + (1 - gate) * least_used)
        # Before writing, the least-used slot of w^u_{t-1} is set to zero (first one on ties).
        least = torch.argmin(usage, dim=-1)
        memory = memory * (1 - F.one_hot(least, self.slots).to(memory.dtype)).unsqueeze(-1)
        for head in range(self.heads):
            memory = memory + write_ws[head].unsqueeze(-1) * keys[head].unsqueeze(1)
        read_ws, reads = [], []
        for head in range(self.heads):
            weights = torch.softmax(cosine(memory, keys[head]), dim=-1)
            read_ws.append(weights)
            reads.append(read_head(memory, weights))
        usage = self.usage_decay * usage
        for head in range(self.heads):
            usage = usage + read_ws[head] + write_ws[head]
        # The R least-used slots, exactly R of them: ties go to the lower slot index.
        order = torch.sort(usage.detach(), dim=-1, stable=True).indices[:, : self.heads]
        least_used = torch.zeros_like(usage).scatter(-1, order, 1.0)
        output = self.readout(torch.cat([hidden, *reads], dim=-1))
        return output, dict(hidden=hidden, cell=cell, memory=memory, read_w=read_ws, usage=usage,
                            least_used=least_used, reads=reads)


# ---------------------------------------------------------------------------------------------
# NTM (Graves et al. 2014)


class ReferenceNTM(ReferenceMemoryModel):
    """The NTM, head by head: each head (R reads, then the write) emits k, β, g, γ and s with
    layers of its own, and addresses w_t = sharpen(shift(g w^c + (1 − g) w_{t-1}, s), γ),
    w^c = softmax(β K(k, M_{t-1})). Reads see M_{t-1}; the write erases, then adds."""

    def __init__(self, library_model: NTM) -> None:
        super().__init__(library_model)
        m = library_model
        self.reads_count, self.shift_range = m.read_heads, m.shift_range
        w, s = self.width, self.shift_range
        heads = self.reads_count + 1
        per_head = [w, 1, 1, 1, s]  # key, β, g, γ, shift logits: the library's order within a head
        layers = _split_linear(m.interface, per_head * heads + [w, w])
        self.head_layers = nn.ModuleList(
            nn.ModuleDict(dict(zip(("key", "strength", "gate", "sharpness", "shift"), layers[5 * j : 5 * j + 5])))
            for j in range(heads))
        self.erase_layer, self.add_layer = layers[-2], layers[-1]

    def initial_state(self, batch_size: int, reference: torch.Tensor):
        b, n, w = batch_size, self.slots, self.width
        zeros = reference.new_zeros
        start = zeros(b, n)
        start[:, 0] = 1.0
        return dict(self.blank_state(b, reference), weights=[start.clone() for _ in range(self.reads_count + 1)],
                    reads=[zeros(b, w) for _ in range(self.reads_count)])

    def address(self, layers: nn.ModuleDict, hidden, memory, previous):
        key = torch.tanh(layers["key"](hidden))
        strength = F.softplus(layers["strength"](hidden))  # β ≥ 0, (B, 1)
        gate = torch.sigmoid(layers["gate"](hidden))
        sharpness = 1 + F.softplus(layers["sharpness"](hidden))
        shift = torch.softmax(layers["shift"](hidden), dim=-1)  # (B, S) over offsets −S//2 .. S//2
        content = torch.softmax(strength * cosine(memory, key), dim=-1)
        gated = gate * content + (1 - gate) * previous
        shifted = torch.zeros_like(gated)
        for k in range(self.shift_range):
            shifted = shifted + shift[:, k : k + 1] * torch.roll(gated, k - self.shift_range // 2, dims=-1)
        powered = (shifted + EPSILON) ** sharpness
        return powered / powered.sum(-1, keepdim=True)

    def step(self, features, previous_code, state):
        hidden, cell = self.controller(torch.cat([features, previous_code, *state["reads"]], dim=-1),
                                       (state["hidden"], state["cell"]))
        memory = state["memory"]
        weights = [self.address(layers, hidden, memory, previous)
                   for layers, previous in zip(self.head_layers, state["weights"])]
        reads = [read_head(memory, w) for w in weights[:-1]]  # from M_{t-1}
        write_w = weights[-1].unsqueeze(-1)  # (B, N, 1)
        erase = torch.sigmoid(self.erase_layer(hidden)).unsqueeze(1)  # (B, 1, W)
        add = torch.tanh(self.add_layer(hidden)).unsqueeze(1)
        memory = memory * (1 - write_w * erase) + write_w * add
        output = self.readout(torch.cat([hidden, *reads], dim=-1))
        return output, dict(hidden=hidden, cell=cell, memory=memory, weights=weights, reads=reads)


# ---------------------------------------------------------------------------------------------
# DNC (Graves et al. 2016)


class ReferenceDNC(ReferenceMemoryModel):
    """The DNC of the paper's Methods, with one layer per interface quantity and per read head:
    retention ψ, usage u, allocation a (sorted usage), write weights from content and allocation,
    erase-and-add, temporal links L and precedence p, and per read head the backward, content
    and forward weightings mixed by its read modes π."""

    def __init__(self, library_model: DNC) -> None:
        super().__init__(library_model)
        m = library_model
        self.heads = m.read_heads
        r, w = self.heads, self.width
        # The library's interface order: read keys (R×W), read strengths (R), write key (W),
        # write strength, erase (W), write vector (W), free gates (R), allocation gate, write gate,
        # read modes (R×3).
        layers = _split_linear(m.interface, [w] * r + [1] * r + [w, 1, w, w] + [1] * r + [1, 1] + [3] * r)
        self.read_key = nn.ModuleList(layers[:r])
        self.read_strength = nn.ModuleList(layers[r : 2 * r])
        self.write_key, self.write_strength, self.erase, self.write_vector = layers[2 * r : 2 * r + 4]
        self.free_gate = nn.ModuleList(layers[2 * r + 4 : 3 * r + 4])
        self.allocation_gate, self.write_gate = layers[3 * r + 4 : 3 * r + 6]
        self.read_mode = nn.ModuleList(layers[3 * r + 6 :])

    def initial_state(self, batch_size: int, reference: torch.Tensor):
        b, n, w = batch_size, self.slots, self.width
        zeros = reference.new_zeros
        return dict(self.blank_state(b, reference), read_w=[zeros(b, n) for _ in range(self.heads)],
                    write_w=zeros(b, n), usage=zeros(b, n),
                    precedence=zeros(b, n), link=zeros(b, n, n), reads=[zeros(b, w) for _ in range(self.heads)])

    @staticmethod
    def allocation(usage: torch.Tensor) -> torch.Tensor:
        """a[φ[j]] = (1 − u[φ[j]]) Π_{i<j} u[φ[i]], φ the slots by ascending usage (squeezed into [ε, 1])."""
        usage = EPSILON + (1 - EPSILON) * usage
        sorted_usage, order = torch.sort(usage, dim=-1)
        exclusive = torch.cumprod(F.pad(sorted_usage[:, :-1], (1, 0), value=1.0), dim=-1)
        return torch.zeros_like(usage).scatter(-1, order, (1 - sorted_usage) * exclusive)

    def step(self, features, previous_code, state):
        hidden, cell = self.controller(torch.cat([features, previous_code, *state["reads"]], dim=-1),
                                       (state["hidden"], state["cell"]))
        memory, previous_read_w = state["memory"], state["read_w"]

        retention = torch.ones_like(state["usage"])
        for head in range(self.heads):
            retention = retention * (1 - torch.sigmoid(self.free_gate[head](hidden)) * previous_read_w[head])
        usage, written = state["usage"], state["write_w"]
        usage = (usage + written - usage * written) * retention
        allocation = self.allocation(usage)
        write_strength = 1 + F.softplus(self.write_strength(hidden))
        write_content = torch.softmax(write_strength * cosine(memory, self.write_key(hidden)), dim=-1)
        allocation_gate = torch.sigmoid(self.allocation_gate(hidden))
        write_gate = torch.sigmoid(self.write_gate(hidden))
        write_w = write_gate * (allocation_gate * allocation + (1 - allocation_gate) * write_content)  # (B, N)
        erase = torch.sigmoid(self.erase(hidden))
        memory = (memory * (1 - write_w.unsqueeze(-1) * erase.unsqueeze(1))
                  + write_w.unsqueeze(-1) * self.write_vector(hidden).unsqueeze(1))

        precedence = state["precedence"]
        link = ((1 - write_w.unsqueeze(-1) - write_w.unsqueeze(1)) * state["link"]
                + write_w.unsqueeze(-1) * precedence.unsqueeze(1))
        link = link * (1 - torch.eye(self.slots, dtype=link.dtype, device=link.device))
        precedence = (1 - write_w.sum(-1, keepdim=True)) * precedence + write_w

        read_ws, reads = [], []
        for head in range(self.heads):
            previous = previous_read_w[head].unsqueeze(-1)  # (B, N, 1)
            forward = torch.bmm(link, previous).squeeze(-1)  # L w
            backward = torch.bmm(link.transpose(1, 2), previous).squeeze(-1)  # Lᵀ w
            strength = 1 + F.softplus(self.read_strength[head](hidden))
            content = torch.softmax(strength * cosine(memory, self.read_key[head](hidden)), dim=-1)
            modes = torch.softmax(self.read_mode[head](hidden), dim=-1)  # (backward, content, forward)
            weights = modes[:, 0:1] * backward + modes[:, 1:2] * content + modes[:, 2:3] * forward
            read_ws.append(weights)
            reads.append(read_head(memory, weights))
        output = self.readout(torch.cat([hidden, *reads], dim=-1))
        return output, dict(hidden=hidden, cell=cell, memory=memory, read_w=read_ws, write_w=write_w, usage=usage,
                            precedence=precedence, link=link, reads=reads)


# ---------------------------------------------------------------------------------------------
# LSTM baseline


class ReferenceLSTM(ReferenceSequenceModel):
    """The LSTM baseline stepped in Python: the hand-written cell over [x_t, y_{t-1}]."""

    def __init__(self, library_model: LSTMLearner) -> None:
        super().__init__(library_model)
        lstm = library_model.lstm
        if lstm.num_layers != 1 or lstm.bidirectional or lstm.proj_size:
            raise ValueError("the reference covers a one-layer, one-direction LSTM")
        self.hidden_size = lstm.hidden_size
        self.cell = LSTMCellReference.from_torch(lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0,
                                                 lstm.bias_hh_l0)

    def initial_state(self, batch_size: int, reference: torch.Tensor):
        zeros = reference.new_zeros(batch_size, self.hidden_size)
        return zeros, zeros

    def step(self, features, previous_code, state):
        hidden, cell = self.cell(torch.cat([features, previous_code], dim=-1), state)
        return self.readout(hidden), (hidden, cell)


REFERENCES: dict[type, type[ReferenceSequenceModel]] = {
    MANN: ReferenceMANN, NTM: ReferenceNTM, DNC: ReferenceDNC, LSTMLearner: ReferenceLSTM}


def reference_for(model: nn.Module) -> ReferenceSequenceModel:
    """The reference implementation of a library model, with a copy of its weights."""
    for library_class, reference_class in REFERENCES.items():
        if isinstance(model, library_class):
            return reference_class.from_library(model)
    raise TypeError(f"no reference implementation for {type(model).__name__}")
