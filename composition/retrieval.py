"""The worker's side of candidate retrieval: stored fingerprints in, the k best candidates out.

Only the kept candidates are ever loaded: ranking a thousand modules reads
their fingerprints (a few tens of KiB each) in one query, not their weights.
"""

from __future__ import annotations

from collections.abc import Sequence

from composition.engine.fingerprints import Fingerprint
from composition.engine.types import EngineError, Example, ModelRef
from composition.models import CompositionCandidate, CompositionJob
from modules.models import Module, ModuleFingerprint
from modules.services import module_fingerprint_refresh


def retrieve_candidates(
    *,
    job: CompositionJob,
    candidates: list[CompositionCandidate],
    base: ModelRef,
    examples: Sequence[Example],
) -> tuple[list[CompositionCandidate], float]:
    """The ``job.preselect`` candidates most relevant to ``examples``, and the seconds it took.

    Sets every candidate's ``retrieval_score``; a module that has no
    fingerprint and cannot get one ranks last.
    """
    from composition.engine.retrieval import retrieve_modules

    stored = module_fingerprints([c.module for c in candidates])
    named = [(c.module.full_name, stored[c.module_id]) for c in candidates if c.module_id in stored]
    if not named:
        raise EngineError("no candidate has a fingerprint to rank it by")
    ranking = retrieve_modules(base, named, examples)
    scores = {s.name: s.score for s in ranking.scores}
    order = {s.name: i for i, s in enumerate(ranking.scores)}
    for candidate in candidates:
        candidate.retrieval_score = scores.get(candidate.module.full_name)
    ranked = sorted(candidates, key=lambda c: order.get(c.module.full_name, len(order)))
    seconds = ranking.activation_seconds + ranking.score_seconds
    return ranked[: job.preselect], seconds


def module_fingerprints(modules: Sequence[Module]) -> dict[int, Fingerprint]:
    """Fingerprints by module id; those registered before fingerprints get one now."""
    rows = ModuleFingerprint.objects.filter(module_id__in=[m.pk for m in modules])
    stored = {row.module_id: Fingerprint.from_bytes(bytes(row.data)) for row in rows}
    for module in modules:
        if module.pk not in stored and module_fingerprint_refresh(module=module):
            data = ModuleFingerprint.objects.get(module=module).data
            stored[module.pk] = Fingerprint.from_bytes(bytes(data))
    return stored
