import json

import pytest

from composition.training.services import TrainingSubmission
from tests.composition.conftest import SHOTS

# Tiny settings: a few steps of a tiny model take well under a second.
TINY_SETTINGS = {"steps": 3, "rank": 4, "alpha": 8, "batch_size": 2, "warmup_steps": 1}
ROWS = [{"input": e.input, "target": e.target} for e in SHOTS]


@pytest.fixture
def training_submission(tiny_base):
    def make(**overrides):
        values = {
            "base_model": tiny_base,
            "name": "tiny-skill",
            "examples": list(SHOTS),
            "data_source": "three test examples",
            **TINY_SETTINGS,
            **overrides,
        }
        return TrainingSubmission(**values)

    return make


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return path
