"""The engine's inputs and outputs: plain dataclasses, no framework types."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

CAUSAL_LM = "CAUSAL_LM"
SEQ_2_SEQ_LM = "SEQ_2_SEQ_LM"


class EngineError(Exception):
    """A problem with the caller's input, with a message meant for people."""


class IncompatibleModulesError(EngineError):
    pass


class CompositionCancelled(Exception):
    """Raised between steps when the caller asked to stop."""


@dataclass(frozen=True)
class Example:
    input: str
    target: str


@dataclass(frozen=True)
class ModelRef:
    """A base model: its Hub identifier and the folder holding its weights."""

    identifier: str
    path: str | Path
    task_type: str = CAUSAL_LM


@dataclass(frozen=True)
class AdapterRef:
    """A LoRA module in PEFT format on local disk.

    ``sha256`` (of the weights file) keys the adapter cache; without it the
    file's path, size and modification time do.
    """

    name: str
    path: str | Path
    sha256: str | None = None


# Optimisers offered by the hub (all in nevergrad's registry; a test checks).
OPTIMIZERS = ("NGOpt", "CMA", "TwoPointsDE", "PSO", "OnePlusOne", "RandomSearch", "DE", "Cobyla")


# How preselection ranks candidates (CompositionSettings.preselect_method).
PRESELECT_METHODS = ("loss", "retrieval")
# What CompositionSettings.strategy accepts (composition/engine/validation.py).
STRATEGY_SETTINGS = ("compose", "auto")
# How modules are merged (composition/engine/exact.py): "lorahub" averages A and B
# separately, as the paper does; "exact" sums each module's own update wᵢ·sᵢ·BᵢAᵢ.
MERGES = ("lorahub", "exact")


@dataclass(frozen=True)
class CompositionSettings:
    steps: int = 40
    l1: float = 0.05
    bound: float = 1.5
    optimizer: str = "NGOpt"
    # Candidates evaluated per forward pass; >1 asks the optimiser for a
    # population and evaluates it in one batched pass.
    population: int = 1
    # Whether a population goes through the model as one batch. None: on
    # accelerators only. A CPU is compute-bound, so a batch does the same
    # arithmetic as one pass per candidate, plus the grouped layers' overhead.
    batch_population: bool | None = None
    seed: int | None = 0
    # Keep only the k candidates with the lowest loss on the examples when
    # each is applied alone (composition/engine/selection.py); None keeps all.
    preselect: int | None = None
    # How preselect ranks candidates: "loss" (each alone on the examples, one
    # forward pass per candidate) or "retrieval" (module fingerprints against
    # the examples' layer inputs, one forward pass in all:
    # composition/engine/retrieval.py).
    preselect_method: str = "loss"
    # "compose": the search's weights. "auto": validation on the examples picks
    # among the search, the best single module, the uniform average and the
    # base model (composition/engine/validation.py).
    strategy: str = "compose"
    # Folds of that validation (at most one per example: leave-one-out).
    validation_folds: int = 5
    # Stop the search after this many evaluations without a lower
    # cross-validated loss; None runs every step.
    early_stop: int | None = None
    max_new_tokens: int = 32
    # "auto": CUDA when available, else CPU. bf16 on GPU, fp32 on CPU.
    device: str = "auto"
    dtype: str = "auto"
    # One of MERGES. "exact" also composes modules of different ranks, alphas and rslora.
    merge: str = "lorahub"
    # Weights per module: 1 (the paper's), or G, one per group of layers (the
    # model's blocks split evenly into G in order); the search then has N·G.
    weight_groups: int = 1


@dataclass(frozen=True)
class StepReport:
    """Progress after each optimiser step (one step = one candidate evaluated)."""

    step: int
    total: int
    loss: float
    best_loss: float
    weights: tuple[float, ...]
    # Objectives of the candidates evaluated since the previous report.
    new_losses: tuple[float, ...] = ()


@dataclass(frozen=True)
class Prediction:
    input: str
    target: str
    output: str
    correct: bool


@dataclass(frozen=True)
class Timings:
    load_seconds: float = 0.0
    optimize_seconds: float = 0.0
    evaluate_seconds: float = 0.0
    warm_start: bool = False
    select_seconds: float = 0.0
    # Comparing strategies on the examples (strategy "auto").
    validate_seconds: float = 0.0


@dataclass(frozen=True)
class ModuleScore:
    """A candidate's mean target loss on the examples when applied alone at weight 1."""

    name: str
    loss: float


@dataclass(frozen=True)
class RetrievalScore:
    """A candidate's fingerprint score against the examples (higher: more relevant)."""

    name: str
    score: float


@dataclass(frozen=True)
class StrategyScore:
    strategy: str
    # Mean target-token cross-entropy on the held-out folds (lower is better).
    validation_loss: float
    # What this strategy gives when picked on all the examples.
    weights: tuple[float, ...]
    loss: float
    objective: float


@dataclass(frozen=True)
class StrategyChoice:
    chosen: str
    folds: int
    scores: tuple[StrategyScore, ...]
    reason: str
    # Forward passes made for the validation beyond the search's own.
    extra_evaluations: int

    def score(self, strategy: str) -> StrategyScore:
        return next(s for s in self.scores if s.strategy == strategy)


@dataclass(frozen=True)
class CompositionResult:
    module_names: tuple[str, ...]
    weights: tuple[float, ...]
    best_objective: float
    best_loss: float
    # Objective (loss + L1 term) of every evaluated candidate, in order.
    objective_history: tuple[float, ...]
    adapter_dir: Path | None
    predictions: tuple[Prediction, ...] = ()
    accuracy: float | None = None
    timings: Timings = field(default_factory=Timings)
    # With ``preselect``: every candidate's score, best first (module_names
    # then holds only the kept ones).
    preselection: tuple[ModuleScore, ...] = ()
    # With preselect_method "retrieval": every candidate's score, best first.
    retrieval: tuple[RetrievalScore, ...] = ()
    # With strategy "auto": the strategies compared and the one chosen.
    strategy: StrategyChoice | None = None
    # With weight_groups G > 1, ``weights`` holds G per module, module-major.
    weight_groups: int = 1

    def module_weights(self) -> tuple[float, ...]:
        """One weight per module: the mean of its groups' weights."""
        g = self.weight_groups
        return tuple(sum(self.weights[i : i + g]) / g for i in range(0, len(self.weights), g))


ProgressCallback = Callable[[StepReport], None]
CancelCheck = Callable[[], bool]
# Module preselection: (candidates scored so far, candidates in all).
ScoringCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class TrainingSettings:
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.1
    # None: the usual attention projections of the model's family.
    target_modules: tuple[str, ...] | None = None
    steps: int = 100
    batch_size: int = 8
    learning_rate: float = 1e-3
    warmup_steps: int = 10
    max_length: int = 256
    seed: int = 0
    device: str = "auto"


@dataclass(frozen=True)
class TrainingStep:
    step: int
    total: int
    loss: float


@dataclass(frozen=True)
class TrainingResult:
    adapter_dir: Path
    loss_history: tuple[float, ...]
    final_loss: float
    examples_used: int
    seconds: float
    settings: TrainingSettings
