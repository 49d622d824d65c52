"""Jobs on a tiny model. Django is imported inside the fixtures that need it:
the engine's tests (tests/composition/engine/) load this file with Django off."""

import json

import pytest

from composition.engine.base_models import read_base_model_spec
from composition.engine.synthetic import build_loras, build_tiny_llama
from composition.engine.types import Example

TINY_ID = "tiny/llama"
SHOTS = [
    Example("which is red ? options : ( a ) cat ( b ) dog", "( a )"),
    Example("the answer is not true", "false"),
    Example("one plus two", "three"),
]
HELDOUT = [Example("two plus two", "four"), Example("is blue a cat ? yes or no", "no")]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_adapter_dirs(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-adapters")
    folders = [root / f"a{i}" for i in range(4)]
    return build_loras(
        tiny_model_dir, folders, seeds=[0, 1, 2, 3], task_type="CAUSAL_LM",
        targets=("q_proj", "v_proj"), base_id=TINY_ID, std=0.05,
    )  # fmt: skip


@pytest.fixture
def tiny_base(db, tiny_model_dir):
    from modules.services import base_model_register

    spec = read_base_model_spec(tiny_model_dir, identifier=TINY_ID)
    return base_model_register(spec=spec, weights_location=str(tiny_model_dir))


@pytest.fixture
def tiny_modules(tiny_base, tiny_adapter_dirs, django_user_model):
    from modules.services import module_create

    author = django_user_model.objects.create_user(username="lorahub", password="x-long-pass-1")
    return [
        module_create(
            owner=author,
            name=f"skill-{i}",
            files={
                "adapter_config.json": folder / "adapter_config.json",
                "adapter_model.safetensors": folder / "adapter_model.safetensors",
            },
            base_model=tiny_base,
        )
        for i, folder in enumerate(tiny_adapter_dirs)
    ]


@pytest.fixture
def private_module(user, tiny_base, tiny_adapter_dirs):
    """ada's private module, composable with tiny_modules: ada/secret-skill."""
    from modules.models import Module
    from modules.services import module_create

    folder = tiny_adapter_dirs[3]
    return module_create(
        owner=user,
        name="secret-skill",
        files={
            "adapter_config.json": folder / "adapter_config.json",
            "adapter_model.safetensors": folder / "adapter_model.safetensors",
        },
        base_model=tiny_base,
        visibility=Module.Visibility.PRIVATE,
    )


@pytest.fixture
def submission(tiny_base, tiny_modules):
    from composition.services import CompositionSubmission

    def make(**overrides):
        values = {
            "base_model": tiny_base,
            "examples": SHOTS,
            "modules": tiny_modules[:3],
            "heldout": HELDOUT,
            "steps": 4,
            "max_new_tokens": 3,
            **overrides,
        }
        return CompositionSubmission(**values)

    return make


def examples_jsonl(examples) -> str:
    return "\n".join(json.dumps({"input": e.input, "target": e.target}) for e in examples)
