import json

from django.core.management import call_command

from modules.models import BaseModel
from modules.services import EMBEDDED_BASE_MODEL, embedded_model_dir


def test_install_demo_registers_smollm2_from_its_converted_folder(db, capsys):
    call_command("install_demo")

    base_model = BaseModel.objects.get(identifier=EMBEDDED_BASE_MODEL)
    assert base_model.family == "llama"
    assert base_model.task_type == BaseModel.TaskType.CAUSAL_LM
    assert (base_model.hidden_size, base_model.num_layers) == (576, 30)
    assert base_model.linear_shapes["q_proj"] == [[576, 576]]
    assert base_model.linear_shapes["v_proj"] == [[576, 192]]
    assert 130e6 < base_model.parameter_count < 140e6
    model_dir = embedded_model_dir()
    assert base_model.weights_location == str(model_dir)
    assert (model_dir / "model.safetensors").stat().st_size > 100e6
    assert (model_dir / "tokenizer.json").exists()
    config = json.loads((model_dir / "config.json").read_text())
    assert "quantization_config" not in config
    assert "Base model ready" in capsys.readouterr().out


def test_install_demo_twice_keeps_one_row_and_the_same_files(db):
    call_command("install_demo")
    weights = embedded_model_dir() / "model.safetensors"
    converted_at = weights.stat().st_mtime_ns

    call_command("install_demo")

    assert BaseModel.objects.filter(identifier=EMBEDDED_BASE_MODEL).count() == 1
    assert weights.stat().st_mtime_ns == converted_at
