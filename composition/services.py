"""Writes of the composition app: composition requests, their cancelling and publishing.

The job row is the source of truth. Submission checks the request, creates the
row and its candidates, and the task is sent once the row is committed
(``hubsite.job_runs``); the worker side is ``composition.results``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field, replace

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from composition.engine import cards
from composition.engine.types import (
    MERGES,
    OPTIMIZERS,
    PRESELECT_METHODS,
    STRATEGY_SETTINGS,
    CompositionSettings,
    Example,
)
from composition.models import CompositionCandidate, CompositionJob, JobStatus
from composition.results import sources_section
from composition.selectors import licenses_in_words, source_licenses
from hubsite import job_runs, limits
from hubsite.job_runs import JobLimitExceeded, JobStateError
from modules.models import BaseModel, Module
from modules.selectors import module_visible_to
from modules.services import check_module_name

__all__ = [
    "SETTING_FIELDS",
    "CompositionSubmission",
    "JobLimitExceeded",
    "JobStateError",
    "compatible_modules",
    "composition_cancel",
    "composition_cards_refresh",
    "composition_publish",
    "composition_submit",
]


# --- Submitting ----------------------------------------------------------------


# The engine's defaults, the one source of the form's, the API's and the job row's.
DEFAULTS = CompositionSettings()
# Search settings, named alike on the form, the job row, the submission and the API.
SETTING_FIELDS = (
    "steps", "l1", "bound", "optimizer", "population", "seed", "max_new_tokens", "preselect",
    "merge", "preselect_method", "strategy", "validation_folds", "early_stop", "weight_groups",
)  # fmt: skip
# How "let the hub pick k" chooses among every compatible module: by loss alone
# (one forward pass per module), by fingerprint (one forward pass in all), or at
# random. Loss is the default: in benchmarks/candidate_retrieval.py the modules
# it keeps compose to a lower loss on the shots (and held-out examples) than
# those retrieval keeps; retrieval is the choice when the pool is too large to
# run every module (HUB_MAX_PICK_POOL).
PICK_METHODS = ("loss", "retrieval", "random")
DEFAULT_PICK_METHOD = "loss"


@dataclass(frozen=True)
class CompositionSubmission:
    """What a user asks for; the form and the API both build one."""

    base_model: BaseModel
    examples: list[Example]
    modules: list[Module] = field(default_factory=list)
    pick: int | None = None
    pick_method: str = DEFAULT_PICK_METHOD
    heldout: list[Example] = field(default_factory=list)
    name: str = ""
    steps: int = DEFAULTS.steps
    l1: float = DEFAULTS.l1
    bound: float = DEFAULTS.bound
    optimizer: str = DEFAULTS.optimizer
    population: int = DEFAULTS.population
    seed: int | None = DEFAULTS.seed
    max_new_tokens: int = DEFAULTS.max_new_tokens
    preselect: int | None = DEFAULTS.preselect
    merge: str = DEFAULTS.merge
    preselect_method: str = DEFAULTS.preselect_method
    strategy: str = DEFAULTS.strategy
    validation_folds: int = DEFAULTS.validation_folds
    early_stop: int | None = DEFAULTS.early_stop
    weight_groups: int = DEFAULTS.weight_groups


def composition_submit(*, owner, submission: CompositionSubmission) -> CompositionJob:
    """Validate, create the job row, and queue it once committed.

    Raises ``ValidationError`` (with field errors) for bad input and
    ``JobLimitExceeded`` when the user already has too many active jobs.
    """
    _check_limits(owner, submission)
    candidates = _candidates(owner, submission)
    submission = _ranked_pick(submission, len(candidates))
    _check_preselect(submission.preselect, len(candidates))
    with transaction.atomic():
        job = job_runs.job_create(
            CompositionJob,
            owner=owner,
            base_model=submission.base_model,
            name=submission.name or _default_name(owner),
            examples=[_example_json(e) for e in submission.examples],
            heldout=[_example_json(e) for e in submission.heldout],
            picked_at_random=submission.pick is not None and submission.pick_method == "random",
            **{name: getattr(submission, name) for name in SETTING_FIELDS},
        )
        CompositionCandidate.objects.bulk_create(
            CompositionCandidate(job=job, module=m, module_name=m.full_name, position=i)
            for i, m in enumerate(candidates)
        )
    return job


def _check_limits(owner, submission: CompositionSubmission) -> None:
    job_runs.check_active_limit(CompositionJob, owner)
    errors: dict[str, list[str]] = {}
    _check_examples(
        errors, "examples", submission.examples, settings.HUB_MAX_EXAMPLES, required=True
    )
    _check_examples(errors, "heldout", submission.heldout, settings.HUB_MAX_HELDOUT, required=False)
    for name, messages in limits.out_of_range(
        "composition", {name: getattr(submission, name) for name in SETTING_FIELDS}
    ).items():
        errors.setdefault(name, []).extend(messages)
    for name, allowed in (
        ("preselect_method", PRESELECT_METHODS),
        ("strategy", STRATEGY_SETTINGS),
        ("pick_method", PICK_METHODS),
    ):
        if getattr(submission, name) not in allowed:
            errors.setdefault(name, []).append(
                f"unknown value {getattr(submission, name)!r}; use one of {', '.join(allowed)}"
            )
    if submission.merge not in MERGES:
        errors.setdefault("merge", []).append(
            f"unknown merge {submission.merge!r}; use one of {', '.join(MERGES)}"
        )
    if submission.optimizer not in OPTIMIZERS:
        errors.setdefault("optimizer", []).append(
            f"unknown optimiser {submission.optimizer!r}; use one of {', '.join(OPTIMIZERS)}"
        )
    if submission.name:
        check_module_name(owner, submission.name, errors)
        if CompositionJob.objects.filter(owner=owner, name=submission.name).exists():
            errors.setdefault("name", []).append("You already used this name for a composition.")
    if errors:
        raise ValidationError(errors)


def _ranked_pick(submission: CompositionSubmission, pool: int) -> CompositionSubmission:
    """ "Pick k" by retrieval or loss: the whole pool is the candidates, k of them are kept."""
    if submission.pick is None or submission.pick_method == "random" or submission.pick >= pool:
        return submission
    return replace(submission, preselect=submission.pick, preselect_method=submission.pick_method)


def _check_preselect(preselect: int | None, candidate_count: int) -> None:
    if preselect is None:
        return
    if preselect < 2:
        raise ValidationError({"preselect": ["a composition needs at least 2 modules"]})
    if preselect >= candidate_count:
        raise ValidationError(
            {
                "preselect": [
                    f"must be fewer than the {candidate_count} candidate modules, "
                    "or empty to compose them all"
                ]
            }
        )


def _check_examples(errors, field_name, examples, limit, *, required) -> None:
    if required and not examples:
        errors.setdefault(field_name, []).append("at least one example is needed")
    if len(examples) > limit:
        errors.setdefault(field_name, []).append(
            f"at most {limit} examples ({len(examples)} given)"
        )
    longest = settings.HUB_MAX_EXAMPLE_CHARS
    for number, example in enumerate(examples, start=1):
        if len(example.input) + len(example.target) > longest:
            errors.setdefault(field_name, []).append(
                f"example {number} is longer than {longest} characters"
            )


def _candidates(owner, submission: CompositionSubmission) -> list[Module]:
    base = submission.base_model
    if submission.pick is not None:
        if submission.pick_method == "random":
            return _pick_at_random(owner, base, submission.pick, submission.seed, submission.merge)
        return _pick_pool(owner, base, submission.pick, submission.pick_method, submission.merge)
    modules = submission.modules
    errors = []
    if len(modules) < 2:
        errors.append("choose at least 2 modules")
    if len(modules) > settings.HUB_MAX_CANDIDATES:
        errors.append(f"at most {settings.HUB_MAX_CANDIDATES} modules")
    if len({m.pk for m in modules}) != len(modules):
        errors.append("a module is listed twice")
    for module in modules:
        if module.base_model_id != base.pk:
            errors.append(f"{module.full_name} adapts {module.base_model}, not {base}")
        if not module.composable:
            errors.append(f"{module.full_name} cannot be composed: {module.composable_reason}")
    if not errors and modules:
        errors += _shape_mismatches(modules, submission.merge)
    if errors:
        raise ValidationError({"modules": errors})
    return list(modules)


def _shape_mismatches(modules: list[Module], merge: str) -> list[str]:
    first = modules[0]
    mismatches = [
        f"{m.full_name} has {merge_shape(m, merge)}; {first.full_name} has "
        f"{merge_shape(first, merge)}"
        for m in modules[1:]
        if merge_shape(m, merge) != merge_shape(first, merge)
    ]
    if mismatches and merge == "lorahub" and not _shape_mismatches(modules, "exact"):
        mismatches.append(
            "the LoraHub merge averages A and B separately, which needs one rank and "
            'scaling; the exact merge (merge "exact") composes these modules'
        )
    return mismatches


def merge_shape(module: Module, merge: str) -> str:
    """What modules merged together must share: the adapted layers, and for the LoraHub
    merge also rank and scaling (lora_alpha, rslora and the per-layer patterns)."""
    targets = f"targets {sorted(module.target_modules)}"
    if merge != "lorahub":
        return targets
    config = module.adapter_config
    shape = f"rank {module.r}, alpha {module.lora_alpha:g}"
    if config.get("use_rslora"):
        shape += ", rslora"
    for key in ("rank_pattern", "alpha_pattern"):
        if config.get(key):
            shape += f", {key} {config[key]}"
    return f"{shape}, {targets}"


def compatible_modules(*, owner, base_model: BaseModel):
    """Modules a user may compose for ``base_model``: those they may see that the engine's
    rule, applied at upload, found composable."""
    return module_visible_to(owner).filter(base_model=base_model, composable=True)


def _pick_at_random(owner, base: BaseModel, k: int, seed: int | None, merge: str) -> list[Module]:
    largest = _mergeable_pool(owner, base, k, merge)
    k = min(k, len(largest), settings.HUB_MAX_CANDIDATES)
    return random.Random(seed).sample(largest, k)


def _pick_pool(owner, base: BaseModel, k: int, method: str, merge: str) -> list[Module]:
    """Every mergeable module, to be ranked on the worker (by fingerprint or loss)."""
    pool = _mergeable_pool(owner, base, k, merge)
    limit = settings.HUB_MAX_PICK_POOL[method]
    if len(pool) > limit:
        raise ValidationError(
            {
                "pick_method": [
                    f"ranking by {method} considers at most {limit} modules and {len(pool)} are "
                    f"compatible with {base}"
                    + ("; rank by retrieval instead" if method != "retrieval" else "")
                ]
            }
        )
    return pool


def _mergeable_pool(owner, base: BaseModel, k: int, merge: str) -> list[Module]:
    """The modules of the most common shape: only those can be merged together."""
    modules = compatible_modules(owner=owner, base_model=base).order_by("id")
    shapes: dict[str, list[Module]] = {}
    for module in modules:
        shapes.setdefault(merge_shape(module, merge), []).append(module)
    largest = max(shapes.values(), key=len, default=[])
    if len(largest) < 2:
        raise ValidationError(
            {"pick": [f"fewer than 2 compatible modules exist for {base} ({len(largest)} found)"]}
        )
    if k < 2:
        raise ValidationError({"pick": ["pick at least 2 modules"]})
    return largest


def _default_name(owner) -> str:
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    return f"composed-{stamp}"


def _example_json(example: Example) -> dict:
    return {"input": example.input, "target": example.target}


# --- Cancelling and publishing ----------------------------------------------------


def composition_cancel(*, job: CompositionJob) -> CompositionJob:
    """Cancel a queued job at once; ask a running one to stop after its step."""
    return job_runs.request_cancel(job)


def composition_publish(*, job: CompositionJob, license: str = "") -> Module:
    """Make the composed module public, under ``license`` when its sources' licenses differ.

    A composition takes the license its sources share; when they differ (or
    one names none) the owner chooses one here, and publishing without one is
    refused. Its card becomes public text: its list of sources is written again
    so that it names no module that is not public now (one may have been made
    private since the card was written).
    """
    from modules.services import module_update

    module = job.result_module
    if job.status != JobStatus.SUCCEEDED or module is None:
        raise JobStateError("only a finished composition with a result can be published")
    license = license.strip()
    if not license and not module.license:
        licenses = licenses_in_words(source_licenses(c.module for c in composed_candidates(job)))
        raise ValidationError(
            {"license": [f"Choose a license: the sources' licenses differ ({licenses})."]}
        )
    card = _card_naming_public_sources(job)
    if license:
        card = _card_with_chosen_license(card or module.card, license)
    return module_update(
        module=module,
        visibility=Module.Visibility.PUBLIC,
        card=card,
        license=license or None,
    )


def composed_candidates(job: CompositionJob):
    return job.candidates.filter(selected=True).select_related("module")


def _card_with_chosen_license(card: str, license: str) -> str:
    return re.sub(
        r"^License: not chosen yet; (its sources' licenses differ: .*)$",
        lambda match: f"License: {license}, chosen by its owner ({match[1]}).",
        card,
        count=1,
        flags=re.MULTILINE,
    )


def composition_cards_refresh() -> list[Module]:
    """Rewrite the sources of published compositions' cards that name a module not public.

    Cards written before sources were left unnamed, or naming a source made
    private since, are fixed; the others are left alone. Returns the modules
    whose card changed.
    """
    from modules.services import module_update

    jobs = CompositionJob.objects.filter(
        status=JobStatus.SUCCEEDED, result_module__visibility=Module.Visibility.PUBLIC
    ).select_related("result_module__base_model", "result_module__owner")
    changed = []
    for job in jobs:
        card = _card_naming_public_sources(job)
        if card is not None:
            changed.append(module_update(module=job.result_module, card=card))
    return changed


def _card_naming_public_sources(job: CompositionJob) -> str | None:
    """The result's card with its sources written for anyone to read; None if unchanged."""
    card = job.result_module.card
    composed = list(job.candidates.filter(selected=True))
    rewritten = cards.with_section(card, sources_section(composed))
    return rewritten if rewritten != card else None
