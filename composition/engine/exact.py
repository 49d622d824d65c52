"""The exact merge: ΔW = Σ wᵢ·sᵢ·BᵢAᵢ, each module with its own rank and scaling.

LoraHub averages A and B separately, so its update (Σ wᵢBᵢ)(Σ wᵢAᵢ) has
cross-terms between modules and is quadratic in the weights. The exact merge
is the weighted sum of the modules' own updates, linear in the weights, and
needs no common rank or scaling: sᵢ is each layer's alpha/r (alpha/√r with
rslora, ``alpha_pattern`` and ``rank_pattern`` resolved per layer).

Per layer, the sources' A are stacked along the rank (R = Σ rᵢ rows) and their
B side by side (R columns): a rank-R LoRA with scaling 1 whose row j of A is
multiplied by the coefficient w·s of the module it came from. Two forms apply
it (``benchmarks/merge_speed.py`` times both against LoraHub's; ``merged_lora``
picks one):

- factored: A and B never change; the coefficients scale the R activations
  between them, so a step only writes N·(layers) numbers, but every forward
  pass carries rank R instead of r;
- dense: each step writes W + B·diag(c)·A for every adapted layer, and the
  forward pass costs what the base model's does.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import torch
from torch import nn

from composition.engine.adapters import EXACT, LORAHUB, LoraAdapter, check_compatible
from composition.engine.lora import ComposedLora, MergedLora, check_fits_model, layer_groups

FACTORED = "factored"
DENSE = "dense"
FORMS = (FACTORED, DENSE)


class FactoredLinear(nn.Module):
    """A base linear layer plus ``B (c ⊙ A x)``, with coefficients c per row group."""

    def __init__(self, base: nn.Linear, a: torch.Tensor, b: torch.Tensor):
        super().__init__()
        self.base = base
        self.a = a  # R × in
        self.b = b  # out × R
        self.coefficients: torch.Tensor | None = None  # groups × R

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.base(x)
        c = _set(self.coefficients)
        if c.shape[0] == 1:
            hidden = nn.functional.linear(x, self.a) * c[0]
            return result + nn.functional.linear(hidden, self.b)
        grouped = x.reshape(c.shape[0], -1, x.shape[-1])
        hidden = torch.matmul(grouped, self.a.t()) * c[:, None, :]
        return result + torch.matmul(hidden, self.b.t()).reshape(*x.shape[:-1], self.b.shape[0])


class DenseLinear(nn.Module):
    """The base layer's weight with the merged update added, one per row group."""

    def __init__(self, base: nn.Linear):
        super().__init__()
        self.base = base
        self.weights: torch.Tensor | None = None  # groups × out × in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = _set(self.weights)
        if w.shape[0] == 1:
            return nn.functional.linear(x, w[0], self.base.bias)
        grouped = x.reshape(w.shape[0], -1, x.shape[-1])
        out = torch.bmm(grouped, w.transpose(1, 2)).reshape(*x.shape[:-1], w.shape[1])
        return out if self.base.bias is None else out + self.base.bias


class ExactLora(MergedLora):
    """The exact merge of ``adapters``, in the factored or the dense form."""

    merge = EXACT

    def __init__(
        self,
        model: nn.Module,
        adapters: list[LoraAdapter],
        device: torch.device,
        dtype: torch.dtype,
        max_groups: int = 1,
        model_name: str = "the base model",
        form: str = FACTORED,
        weight_groups: int = 1,
    ):
        if form not in FORMS:
            raise ValueError(f"unknown form {form!r}; use one of {', '.join(FORMS)}")
        check_compatible(adapters, self.merge)
        layers = check_fits_model(model, adapters[0], model_name)
        self.adapters = adapters
        self.form = form
        self.paths = sorted(adapters[0].layers)
        self.weight_groups = weight_groups
        group_of = layer_groups(model, self.paths, weight_groups)
        self.a = {p: _stacked(adapters, p, 0, device, dtype) for p in self.paths}
        self.b = {p: _stacked(adapters, p, 1, device, dtype) for p in self.paths}
        # Row j of all layers' stacked A, in path order: its weight (module-major,
        # weight_groups per module) and its scaling.
        modules, scalings = [], []
        for path in self.paths:
            for index, adapter in enumerate(adapters):
                rank = adapter.layers[path][0].shape[0]
                modules += [index * weight_groups + group_of[path]] * rank
                scalings += [adapter.layer_scaling(path)] * rank
        self.row_module = torch.tensor(modules, device=device)
        self.row_scaling = torch.tensor(scalings, device=device, dtype=dtype)
        self.coefficients = torch.zeros(max_groups, len(modules), device=device, dtype=dtype)
        self._slices = _row_slices({p: self.a[p].shape[0] for p in self.paths})
        self._groups = 0
        wrappers: dict[str, nn.Module]
        if form == FACTORED:
            self.factored = {p: FactoredLinear(layers[p], self.a[p], self.b[p]) for p in self.paths}
            wrappers = dict(self.factored)
        else:
            self.dense = {p: DenseLinear(layers[p]) for p in self.paths}
            self.dense_buffers = {
                p: torch.empty(max_groups, *layers[p].weight.shape, device=device, dtype=dtype)
                for p in self.paths
            }
            wrappers = dict(self.dense)
        super().__init__(model, layers, wrappers)

    @property
    def module_count(self) -> int:
        return len(self.adapters)

    def set_weights(self, weights: torch.Tensor) -> None:
        weights = weights.reshape(-1, self.weight_count).to(self.coefficients)
        groups = weights.shape[0]
        if groups > self.coefficients.shape[0]:
            raise ValueError(f"{groups} candidates, but room for {self.coefficients.shape[0]}")
        torch.mul(weights[:, self.row_module], self.row_scaling, out=self.coefficients[:groups])
        if self.form == DENSE:
            self._write_dense(groups)
        elif groups != self._groups:
            for path, rows in self._slices:
                self.factored[path].coefficients = self.coefficients[:groups, rows]
        self._groups = groups

    def _write_dense(self, groups: int) -> None:
        for path, rows in self._slices:
            scaled_b = self.b[path][None] * self.coefficients[:groups, None, rows]
            out = self.dense_buffers[path][:groups]
            base = self._layers[path].weight.to(out)
            torch.baddbmm(
                base.expand_as(out), scaled_b, self.a[path].expand(groups, -1, -1), out=out
            )
            self.dense[path].weights = out

    def merged_layers(self, group: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Rank-R (A, B) per layer with scaling 1: row j of A times its coefficient."""
        if self._groups == 0:
            raise RuntimeError("no weights to apply: call set_weights first")
        return {
            path: (
                (self.a[path] * self.coefficients[group, rows, None]).detach().clone(),
                self.b[path].detach().clone(),
            )
            for path, rows in self._slices
        }

    def composed_config(self, source_config: dict[str, Any]) -> dict[str, Any]:
        """Rank R = Σ rᵢ per layer, lora_alpha = R: scaling 1, the coefficients being in A."""
        ranks = {path: int(self.a[path].shape[0]) for path in self.paths}
        common = Counter(ranks.values()).most_common(1)[0][0]
        # Full paths, escaped: each key applies to its one layer only.
        pattern = {re.escape(path): rank for path, rank in ranks.items() if rank != common}
        config = {
            key: value
            for key, value in source_config.items()
            if key not in ("rank_pattern", "alpha_pattern", "use_rslora")
        }
        config.update(
            r=common, lora_alpha=common, rank_pattern=pattern, alpha_pattern=dict(pattern)
        )
        return config


def merged_lora(
    model: nn.Module,
    adapters: list[LoraAdapter],
    device: torch.device,
    dtype: torch.dtype,
    merge: str = LORAHUB,
    max_groups: int = 1,
    model_name: str = "the base model",
    weight_groups: int = 1,
) -> MergedLora:
    """The merge ``merge`` of ``adapters`` ("lorahub" or "exact"), ready to wire into ``model``.

    The exact merge takes its dense form for one candidate per pass in float32,
    where it measured faster; else the factored one: a dense merge keeps P
    copies of every adapted weight, and in bfloat16 W + ΔW rounds the update
    to the precision of W, which is much coarser than that of ΔW.
    """
    if merge == EXACT:
        form = DENSE if max_groups == 1 and dtype == torch.float32 else FACTORED
        return ExactLora(
            model, adapters, device, dtype, max_groups, model_name, form, weight_groups
        )
    check_compatible(adapters, merge)
    return ComposedLora(model, adapters, device, dtype, max_groups, model_name, weight_groups)


def _row_slices(ranks: dict[str, int]) -> list[tuple[str, slice]]:
    """Each layer's rows in the coefficients, in path order."""
    slices, start = [], 0
    for path, rows in ranks.items():
        slices.append((path, slice(start, start + rows)))
        start += rows
    return slices


def _stacked(
    adapters: list[LoraAdapter], path: str, which: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    # torch.cat copies: the cached adapter tensors are never written to.
    return torch.cat([ad.layers[path][which] for ad in adapters], dim=which).to(device, dtype)


def _set(tensor: torch.Tensor | None) -> torch.Tensor:
    if tensor is None:
        raise RuntimeError("no weights to apply: call set_weights first")
    return tensor
