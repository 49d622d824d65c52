"""The playground: a few inputs run through one module by a worker.

A request is a job like any other (``GenerationRequest``): capped per user
(HUB_MAX_ACTIVE_PLAYGROUND), run once, and failed by the periodic sweep when
no worker took it within a minute.
"""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction

from composition.engine_refs import base_model_ref, module_ref
from composition.models import GenerationRequest, JobStatus
from hubsite import job_runs
from modules.models import Module

PLAYGROUND_MAX_INPUTS = 8
PLAYGROUND_MAX_CHARS = 2000


def playground_request(
    *, user, module: Module, inputs: list[str], max_new_tokens: int = 64
) -> GenerationRequest:
    """Queue a generation with ``module`` for a few inputs.

    Raises ``ValidationError`` for bad input and ``JobLimitExceeded`` when the
    user already waits for as many requests as allowed.
    """
    inputs = [text for text in inputs if text.strip()]
    errors = []
    if not inputs:
        errors.append("type at least one input")
    if len(inputs) > PLAYGROUND_MAX_INPUTS:
        errors.append(f"at most {PLAYGROUND_MAX_INPUTS} inputs at a time")
    if any(len(text) > PLAYGROUND_MAX_CHARS for text in inputs):
        errors.append(f"an input is longer than {PLAYGROUND_MAX_CHARS} characters")
    if not 1 <= max_new_tokens <= 256:
        raise ValidationError({"max_new_tokens": ["must be between 1 and 256"]})
    if errors:
        raise ValidationError({"inputs": errors})
    with transaction.atomic():
        return job_runs.job_create(
            GenerationRequest,
            owner=user,
            module=module,
            inputs=inputs,
            max_new_tokens=max_new_tokens,
            steps=len(inputs),
        )


def playground_run(*, job_id: int, attempt: int, worker_host: str) -> None:
    job_runs.run(
        GenerationRequest,
        job_id=job_id,
        attempt=attempt,
        worker_host=worker_host,
        body=_generate,
    )


def _generate(request: GenerationRequest, work_dir: Path) -> None:
    from composition.engine.compose import predict

    module = Module.objects.select_related("base_model", "owner").get(pk=request.module_id)
    outputs = predict(
        base_model_ref(module.base_model),
        request.inputs,
        adapter=module_ref(module),
        max_new_tokens=request.max_new_tokens,
    )
    job_runs.finish(request, JobStatus.SUCCEEDED, outputs=outputs, current_step=len(outputs))
