"""Tiny synthetic models and modules, built once per session (a pytest plugin).

The root conftest registers this module, so the engine's tests and those of
the replication harness (tests/benchmarks/) share the same builds. The
builders pull in torch, so they are imported when a fixture first needs them.
"""

from pathlib import Path

import pytest

from composition.engine.types import AdapterRef, ModelRef


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> ModelRef:
    from composition.engine.synthetic import build_tiny_llama

    folder = build_tiny_llama(tmp_path_factory.mktemp("llama"))
    return ModelRef("tiny/base", folder, "CAUSAL_LM")


@pytest.fixture(scope="session")
def tiny_t5(tmp_path_factory) -> ModelRef:
    from composition.engine.synthetic import build_tiny_t5

    folder = build_tiny_t5(tmp_path_factory.mktemp("t5"))
    return ModelRef("tiny/base", folder, "SEQ_2_SEQ_LM")


def _adapters(
    base: ModelRef, root: Path, targets, count=3, prefix="module", **kwargs
) -> tuple[AdapterRef, ...]:
    from composition.engine.synthetic import build_lora

    return tuple(
        AdapterRef(
            f"tester/{prefix}-{i}",
            build_lora(
                Path(base.path),
                root / f"m{i}",
                seed=i,
                task_type=base.task_type,
                targets=targets,
                **kwargs,
            ),
        )
        for i in range(count)
    )


@pytest.fixture(scope="session")
def llama_modules(tiny_llama, tmp_path_factory) -> tuple[AdapterRef, ...]:
    return _adapters(tiny_llama, tmp_path_factory.mktemp("llama-loras"), ("q_proj", "v_proj"))


@pytest.fixture(scope="session")
def t5_modules(tiny_t5, tmp_path_factory) -> tuple[AdapterRef, ...]:
    return _adapters(tiny_t5, tmp_path_factory.mktemp("t5-loras"), ("q", "v"))


@pytest.fixture(scope="session")
def make_modules(tmp_path_factory):
    """Build extra modules with other settings (rank, targets…) for mismatch tests."""

    def make(base: ModelRef, targets=("q_proj", "v_proj"), count=1, prefix="extra", **kwargs):
        root = tmp_path_factory.mktemp(prefix)
        return _adapters(base, root, targets, count=count, prefix=prefix, **kwargs)

    return make
