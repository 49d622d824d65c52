"""Composed LoRA layers written in place: the LoraHub merge, and the base of every merge.

Every source module's A matrices (all layers, flattened) form one row of a
stacked matrix, likewise B. Merging candidate weights W (P × N) is then two
matrix products into flat buffers, and each wrapped linear layer reads its
slice of those buffers through a view: nothing is copied into the model and
no state dict is rebuilt. With P > 1 the batch holds P copies of the
examples and each copy is multiplied by its own merged LoRA.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Self

import torch
from torch import nn

from composition.engine.adapters import LoraAdapter, check_compatible
from composition.engine.types import IncompatibleModulesError


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

    def __init__(
        self, model: nn.Module, layers: dict[str, nn.Linear], wrappers: dict[str, nn.Module]
    ):
        self.model = model
        self._layers = layers
        self._wrappers = wrappers

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
        """Merge with ``weights`` (P × N, or N for one candidate)."""

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
    ):
        check_compatible(adapters, self.merge)
        layers = check_fits_model(model, adapters[0], model_name)
        self.adapters = adapters
        self.paths = sorted(adapters[0].layers)
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

    @property
    def module_count(self) -> int:
        return self.a_stack.shape[0]

    def set_weights(self, weights: torch.Tensor) -> None:
        weights = weights.reshape(-1, self.module_count).to(self.a_stack)
        groups = weights.shape[0]
        if groups > self.a_buffer.shape[0]:
            raise ValueError(f"{groups} candidates, but room for {self.a_buffer.shape[0]}")
        torch.matmul(weights, self.a_stack, out=self.a_buffer[:groups])
        torch.matmul(weights, self.b_stack, out=self.b_buffer[:groups])
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
