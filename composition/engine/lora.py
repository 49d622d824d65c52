"""Composed LoRA layers written in place: the LoraHub merge, and the base of every merge.

Every source module's A matrices (all layers, flattened) form one row of a
stacked matrix, likewise B. Merging candidate weights W (P × N) is then two
matrix products into flat buffers, and each wrapped linear layer reads its
slice of those buffers through a view: nothing is copied into the model and
no state dict is rebuilt. With P > 1 the batch holds P copies of the
examples and each copy is multiplied by its own merged LoRA.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import Any, Self

import torch
from torch import nn

from composition.engine.adapters import LoraAdapter, check_compatible
from composition.engine.types import EngineError, IncompatibleModulesError


class ComposedLoraLinear(nn.Module):
    """A base linear layer plus ``scaling · B_g A_g x`` for row group g."""

    def __init__(self, base: nn.Linear, scaling: float):
        super().__init__()
        self.base = base
        self.scaling = scaling
        self.lora_a: torch.Tensor | None = None  # groups × r × in
        self.lora_b: torch.Tensor | None = None  # groups × out × r

    def stacks(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The A and B it reads, one per row group (views set by ``ComposedLora``)."""
        if self.lora_a is None or self.lora_b is None:
            raise RuntimeError("no weights to apply: call ComposedLora.set_weights first")
        return self.lora_a, self.lora_b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.base(x)
        a, b = self.stacks()
        groups = a.shape[0]
        if groups == 1:
            delta = nn.functional.linear(nn.functional.linear(x, a[0]), b[0])
        else:
            grouped = x.reshape(groups, -1, x.shape[-1])
            delta = torch.bmm(torch.bmm(grouped, a.transpose(1, 2)), b.transpose(1, 2))
            delta = delta.reshape(*x.shape[:-1], b.shape[1])
        return result + delta * self.scaling


class MergedLora(ABC):
    """Source modules merged with candidate weights, wired into a live model.

    Use as a context manager: the model's linear layers are replaced by
    wrappers on entry and restored on exit, so a cached base model leaves the
    job unchanged. ``set_weights`` merges with P candidate weight vectors, the
    P row groups of the next batch each using their own.
    """

    merge: str
    # Weights per module: one per group of layers (``layer_groups``).
    weight_groups: int = 1

    def __init__(
        self, model: nn.Module, layers: dict[str, nn.Linear], wrappers: dict[str, nn.Module]
    ):
        self.model = model
        self._layers = layers
        self._wrappers = wrappers

    @property
    def weight_count(self) -> int:
        """Numbers in one candidate: module-major, ``weight_groups`` per module."""
        return self.module_count * self.weight_groups

    def __enter__(self) -> Self:
        for path, wrapper in self._wrappers.items():
            _replace_submodule(self.model, path, wrapper)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for path, layer in self._layers.items():
            _replace_submodule(self.model, path, layer)

    @property
    @abstractmethod
    def module_count(self) -> int: ...

    @abstractmethod
    def set_weights(self, weights: torch.Tensor) -> None:
        """Merge with ``weights`` (P × N·G, or N·G for one candidate; G = weight_groups)."""

    @abstractmethod
    def merged_layers(self, group: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The current merge of ``group`` as per-layer (A, B) copies, ready to save."""

    @abstractmethod
    def composed_config(self, source_config: dict[str, Any]) -> dict[str, Any]:
        """The adapter config that goes with ``merged_layers``."""


class ComposedLora(MergedLora):
    """Stacked source modules wired into a live model: the LoraHub merge.

    A = Σ wᵢAᵢ and B = Σ wᵢBᵢ, applied with the sources' common scaling (per
    layer: ``rank_pattern`` and ``alpha_pattern`` may vary it between layers).
    """

    merge = "lorahub"

    def __init__(
        self,
        model: nn.Module,
        adapters: list[LoraAdapter],
        device: torch.device,
        dtype: torch.dtype,
        max_groups: int = 1,
        model_name: str = "the base model",
        weight_groups: int = 1,
    ):
        check_compatible(adapters, self.merge)
        layers = check_fits_model(model, adapters[0], model_name)
        self.adapters = adapters
        self.weight_groups = weight_groups
        group_of = layer_groups(model, list(adapters[0].layers), weight_groups)
        # Layers of one weight group side by side in the flat buffers.
        self.paths = sorted(adapters[0].layers, key=lambda p: (group_of[p], p))
        self.shapes = {
            p: (adapters[0].layers[p][0].shape, adapters[0].layers[p][1].shape) for p in self.paths
        }
        # torch.stack copies: the cached adapter tensors are never written to.
        self.a_stack = torch.stack([_flatten(ad, self.paths, 0) for ad in adapters]).to(
            device, dtype
        )
        self.b_stack = torch.stack([_flatten(ad, self.paths, 1) for ad in adapters]).to(
            device, dtype
        )
        self.a_buffer = torch.zeros(max_groups, self.a_stack.shape[1], device=device, dtype=dtype)
        self.b_buffer = torch.zeros(max_groups, self.b_stack.shape[1], device=device, dtype=dtype)
        self.wrappers = {
            p: ComposedLoraLinear(layers[p], adapters[0].layer_scaling(p)) for p in self.paths
        }
        super().__init__(model, layers, dict(self.wrappers))
        self._groups = 0
        self._columns = _group_columns(
            [
                (group_of[p], self.shapes[p][0].numel(), self.shapes[p][1].numel())
                for p in self.paths
            ]
        )

    @property
    def module_count(self) -> int:
        return self.a_stack.shape[0]

    def set_weights(self, weights: torch.Tensor) -> None:
        weights = weights.reshape(-1, self.weight_count).to(self.a_stack)
        groups = weights.shape[0]
        if groups > self.a_buffer.shape[0]:
            raise ValueError(f"{groups} candidates, but room for {self.a_buffer.shape[0]}")
        if self.weight_groups == 1:
            torch.matmul(weights, self.a_stack, out=self.a_buffer[:groups])
            torch.matmul(weights, self.b_stack, out=self.b_buffer[:groups])
        else:
            per_group = weights.reshape(groups, self.module_count, self.weight_groups)
            for group, a_cols, b_cols in self._columns:
                w = per_group[:, :, group]
                self.a_buffer[:groups, a_cols] = w @ self.a_stack[:, a_cols]
                self.b_buffer[:groups, b_cols] = w @ self.b_stack[:, b_cols]
        if groups != self._groups:
            self._point_layers_at_buffers(groups)

    def _point_layers_at_buffers(self, groups: int) -> None:
        a_offset = b_offset = 0
        for path in self.paths:
            a_shape, b_shape = self.shapes[path]
            a_size, b_size = a_shape.numel(), b_shape.numel()
            wrapper = self.wrappers[path]
            wrapper.lora_a = self.a_buffer[:groups, a_offset : a_offset + a_size].view(
                groups, *a_shape
            )
            wrapper.lora_b = self.b_buffer[:groups, b_offset : b_offset + b_size].view(
                groups, *b_shape
            )
            a_offset += a_size
            b_offset += b_size
        self._groups = groups

    def composed_config(self, source_config: dict[str, Any]) -> dict[str, Any]:
        # A and B keep the sources' shapes: their rank, alpha and patterns hold.
        return dict(source_config)

    def merged_layers(self, group: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        merged = {}
        for path, wrapper in self.wrappers.items():
            a, b = wrapper.stacks()
            merged[path] = (a[group].detach().clone(), b[group].detach().clone())
        return merged


def layer_groups(model: nn.Module, paths: list[str], count: int) -> dict[str, int]:
    """Each adapted layer's weight group: the model's blocks in order, split evenly.

    A block is a path up to its first number ("model.layers.12"); blocks are
    ordered as the model lists its modules (a T5's encoder, then its decoder).
    """
    if count < 1:
        raise EngineError(f"weight_groups must be at least 1, not {count}")
    if count == 1:
        return dict.fromkeys(paths, 0)
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    blocks = sorted({_block(p) for p in paths}, key=lambda b: order.get(b, -1))
    if count > len(blocks):
        raise EngineError(
            f"weight_groups is {count}, but the modules adapt only {len(blocks)} blocks of layers"
        )
    index = {block: i for i, block in enumerate(blocks)}
    return {p: index[_block(p)] * count // len(blocks) for p in paths}


def _block(path: str) -> str:
    match = re.match(r"(.*?\.\d+)(\.|$)", path)
    return match.group(1) if match else ""


def _group_columns(layers: list[tuple[int, int, int]]) -> list[tuple[int, slice, slice]]:
    """(group, A columns, B columns) of each weight group, from (group, A size, B size)
    of the layers in buffer order."""
    columns: dict[int, list[int]] = {}
    a_offset = b_offset = 0
    for group, a_size, b_size in layers:
        bounds = columns.setdefault(group, [a_offset, a_offset, b_offset, b_offset])
        a_offset += a_size
        b_offset += b_size
        bounds[1], bounds[3] = a_offset, b_offset
    return [(g, slice(a0, a1), slice(b0, b1)) for g, (a0, a1, b0, b1) in columns.items()]


def check_fits_model(
    model: nn.Module, adapter: LoraAdapter, model_name: str
) -> dict[str, nn.Linear]:
    """The model's linear layers the adapter targets, by path, once checked to fit it."""
    layers = {}
    for path, (a, b) in adapter.layers.items():
        try:
            layer = model.get_submodule(path)
        except AttributeError:
            raise IncompatibleModulesError(
                f"{adapter.name}: {model_name} has no layer {path}"
            ) from None
        if not isinstance(layer, nn.Linear):
            raise IncompatibleModulesError(
                f"{adapter.name}: {path} is a {type(layer).__name__}, not a linear layer"
            )
        if (a.shape[1], b.shape[0]) != (layer.in_features, layer.out_features):
            raise IncompatibleModulesError(
                f"{adapter.name}: {path} maps {layer.in_features}→{layer.out_features} in "
                f"{model_name}, but the adapter's A is {a.shape[0]}×{a.shape[1]} and "
                f"B is {b.shape[0]}×{b.shape[1]}"
            )
        layers[path] = layer
    return layers


def _flatten(adapter: LoraAdapter, paths: list[str], which: int) -> torch.Tensor:
    return torch.cat([adapter.layers[p][which].reshape(-1) for p in paths])


def _replace_submodule(model: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, name, module)
