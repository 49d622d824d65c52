"""Every validation rule, each against a real adapter damaged in one way.

These tests need no database: modules.validation is plain Python.
"""

import hashlib
import json
import pickle
import stat
import zipfile
from pathlib import Path

import pytest

from modules.validation import (
    ADAPTER_CONFIG,
    MODEL_CARD,
    SAFETENSORS_WEIGHTS,
    AdapterInvalid,
    BaseModelShape,
    convert_pickled_weights,
    extract_adapter_zip,
    hash_file,
    read_lora_config,
    read_safetensors_header,
    validate_adapter,
)
from tests.modules.adapters import drop_tensor, edit_config, rewrite_header, zip_folder

TINY = BaseModelShape.from_json(
    identifier="acme/tiny-llama",
    task_type="CAUSAL_LM",
    num_layers=2,
    linear_shapes={"q_proj": [[64, 64]], "v_proj": [[64, 32]]},
)
MiB = 1024 * 1024


def problems_of(folder: Path, base: BaseModelShape | None = TINY) -> list[str]:
    with pytest.raises(AdapterInvalid) as raised:
        validate_adapter(folder / ADAPTER_CONFIG, folder / SAFETENSORS_WEIGHTS, base)
    return [str(p) for p in raised.value.problems]


def weights(folder: Path) -> Path:
    return folder / SAFETENSORS_WEIGHTS


# --- A valid adapter ------------------------------------------------------------


def test_a_peft_adapter_is_summarised(adapter_dir):
    summary = validate_adapter(adapter_dir / ADAPTER_CONFIG, weights(adapter_dir), TINY)

    assert summary.config.r == 4
    assert summary.config.lora_alpha == 8
    assert summary.task_type == "CAUSAL_LM"
    assert summary.target_modules == ("q_proj", "v_proj")
    assert summary.adapted_module_count == 4  # 2 layers × (q_proj, v_proj)
    # Per layer: q_proj A 4×64 + B 64×4, v_proj A 4×64 + B 32×4.
    assert summary.parameter_count == 2 * (4 * 64 + 64 * 4 + 4 * 64 + 32 * 4)
    assert summary.dtypes == ("F32",)


def test_header_is_read_without_the_tensor_data(adapter_dir, tmp_path):
    # The data region is replaced by zeros of the same length: the header
    # alone must give the same table, proving no tensor bytes are needed.
    original = weights(adapter_dir).read_bytes()
    size = int.from_bytes(original[:8], "little")
    blank = tmp_path / "blank.safetensors"
    blank.write_bytes(original[: 8 + size] + b"\0" * (len(original) - 8 - size))

    assert read_safetensors_header(blank) == read_safetensors_header(weights(adapter_dir))


def test_rank_pattern_gives_some_modules_another_rank(make_adapter):
    folder = make_adapter(r=4)
    edit_config(folder, r=8, rank_pattern={"q_proj": 4, "v_proj": 4})

    summary = validate_adapter(folder / ADAPTER_CONFIG, weights(folder), TINY)

    assert summary.config.r == 8


def test_hash_file_gives_size_and_sha256(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"lora")

    local = hash_file(path)

    assert local.size == 4
    assert local.sha256 == hashlib.sha256(b"lora").hexdigest()


# --- adapter_config.json ------------------------------------------------------


def test_config_that_is_not_json(adapter_dir):
    (adapter_dir / ADAPTER_CONFIG).write_text('{"r": 4,')

    [problem] = problems_of(adapter_dir)

    assert problem.startswith("adapter_config.json: is not valid JSON")


def test_config_that_is_not_an_object(adapter_dir):
    (adapter_dir / ADAPTER_CONFIG).write_text("[1, 2]")

    assert problems_of(adapter_dir) == ["adapter_config.json: must hold a JSON object"]


def test_config_of_another_peft_method(adapter_dir):
    edit_config(adapter_dir, peft_type="PREFIX_TUNING")

    assert problems_of(adapter_dir) == [
        'adapter_config.json: "peft_type" must be "LORA", found \'PREFIX_TUNING\''
    ]


@pytest.mark.parametrize("rank", [0, -4, 2.5, "8", True])
def test_rank_must_be_a_positive_integer(adapter_dir, rank):
    edit_config(adapter_dir, r=rank)

    [problem] = problems_of(adapter_dir)

    assert problem == (
        f'adapter_config.json: "r" (the rank) must be a positive integer, found {rank!r}'
    )


def test_lora_alpha_must_be_a_positive_number(adapter_dir):
    edit_config(adapter_dir, lora_alpha="sixteen")

    [problem] = problems_of(adapter_dir)

    assert '"lora_alpha" must be a positive number' in problem


@pytest.mark.parametrize("targets", [[], [""], 42, None])
def test_target_modules_must_name_modules(adapter_dir, targets):
    edit_config(adapter_dir, target_modules=targets)
    if targets is None:
        config = json.loads((adapter_dir / ADAPTER_CONFIG).read_text())
        assert "target_modules" not in config

    [problem] = problems_of(adapter_dir)

    assert '"target_modules" must be a non-empty list of module names' in problem


def test_unsupported_task_type(adapter_dir):
    edit_config(adapter_dir, task_type="SEQ_CLS")

    [problem] = problems_of(adapter_dir)

    assert "\"task_type\" 'SEQ_CLS' is not supported" in problem


def test_task_type_must_be_the_base_models(adapter_dir):
    edit_config(adapter_dir, task_type="SEQ_2_SEQ_LM")

    assert problems_of(adapter_dir) == [
        'adapter_config.json: "task_type" is SEQ_2_SEQ_LM but acme/tiny-llama is a CAUSAL_LM model'
    ]


def test_dora_is_refused(adapter_dir):
    edit_config(adapter_dir, use_dora=True)

    [problem] = problems_of(adapter_dir)

    assert "DoRA adapters are not supported" in problem


def test_a_target_pattern_that_is_not_a_regular_expression(adapter_dir):
    edit_config(adapter_dir, target_modules="(q_proj")

    [problem] = problems_of(adapter_dir)

    assert '"target_modules" is not a valid regular expression' in problem


# The attack's 14-character pattern, and a variant that also selects the real modules.
# Neither is ever matched here: the config alone is read.
HOSTILE = r"(?:.|.){23}.*X"
HOSTILE_VARIANT = r"(?:.|.){23}.*proj"


@pytest.mark.parametrize("pattern", [HOSTILE, HOSTILE_VARIANT])
def test_a_catastrophic_target_pattern_is_refused_before_any_matching(adapter_dir, pattern):
    edit_config(adapter_dir, target_modules=pattern)

    with pytest.raises(AdapterInvalid) as raised:
        read_lora_config(adapter_dir / ADAPTER_CONFIG)

    [problem] = [str(p) for p in raised.value.problems]
    assert problem.startswith('adapter_config.json: "target_modules" repeats a group')
    assert problem.endswith('list the module names instead, e.g. ["q_proj", "v_proj"]')


# A key that PEFT, matching it as (.*\.)?(key)$, would try with two wildcards.
WILDCARD_KEY = r".*\.q_proj"


@pytest.mark.parametrize(
    ("field", "value", "start"),
    [
        ("rank_pattern", {HOSTILE_VARIANT: 4}, f'"rank_pattern" key {HOSTILE_VARIANT!r}'),
        ("alpha_pattern", {HOSTILE: 8}, f'"alpha_pattern" key {HOSTILE!r}'),
        ("rank_pattern", {WILDCARD_KEY: 4}, f'"rank_pattern" key {WILDCARD_KEY!r}'),
        ("exclude_modules", ".*.*lm_head", '"exclude_modules"'),
        ("modules_to_save", ["lm_head", "(a+)+"], "\"modules_to_save\" entry '(a+)+'"),
    ],
)
def test_the_other_patterns_of_a_config_obey_the_same_rule(adapter_dir, field, value, start):
    edit_config(adapter_dir, **{field: value})

    with pytest.raises(AdapterInvalid) as raised:
        read_lora_config(adapter_dir / ADAPTER_CONFIG)

    [problem] = [str(p) for p in raised.value.problems]
    assert problem.startswith(f"adapter_config.json: {start} ")


@pytest.mark.parametrize(
    "pattern",
    [
        r".*\.(q_proj|v_proj)",
        r"model\.layers\.\d+\.self_attn\.(q|v)_proj",
        r"^(?!.*lm_head).*proj$",
        "all-linear",
    ],
)
def test_target_patterns_people_write_still_validate(adapter_dir, pattern):
    edit_config(adapter_dir, target_modules=pattern)

    summary = validate_adapter(adapter_dir / ADAPTER_CONFIG, weights(adapter_dir), TINY)

    assert summary.target_modules == ("q_proj", "v_proj")
    assert summary.adapted_module_count == 4


def test_rank_pattern_keys_naming_modules_still_apply(make_adapter):
    folder = make_adapter(r=4)
    edit_config(
        folder,
        r=8,
        rank_pattern={r"model\.layers\.\d+\.self_attn\.q_proj": 4, "v_proj": 4},
        alpha_pattern={"q_proj": 16},
    )

    summary = validate_adapter(folder / ADAPTER_CONFIG, weights(folder), TINY)

    assert summary.config.r == 8


def test_a_module_path_too_long_to_match_is_refused(adapter_dir):
    long_path = "model.layers.0." + "deep." * 50 + "q_proj"

    def lengthen(header):
        for kind in ("A", "B"):
            old = f"base_model.model.model.layers.0.self_attn.q_proj.lora_{kind}.weight"
            header[f"base_model.model.{long_path}.lora_{kind}.weight"] = header.pop(old)

    rewrite_header(weights(adapter_dir), lengthen)

    problems = problems_of(adapter_dir, base=None)

    assert len(problems) == 2
    assert problems[0].endswith(
        f"adapts a module path of {len(long_path)} characters; at most 256 are accepted"
    )


def test_config_problems_and_header_problems_are_reported_together(adapter_dir):
    edit_config(adapter_dir, r=0)
    weights(adapter_dir).write_bytes(b"tiny")

    problems = problems_of(adapter_dir)

    assert [p.split(":")[0] for p in problems] == [ADAPTER_CONFIG, SAFETENSORS_WEIGHTS]


def test_read_lora_config_keeps_the_raw_json(adapter_dir):
    config = read_lora_config(adapter_dir / ADAPTER_CONFIG)

    assert config.raw["peft_type"] == "LORA"
    assert sorted(config.target_modules) == ["q_proj", "v_proj"]


# --- Safetensors header -------------------------------------------------------


def test_file_too_short_for_a_header(adapter_dir):
    weights(adapter_dir).write_bytes(b"\x10\x00")

    assert problems_of(adapter_dir) == [
        "adapter_model.safetensors: is 2 bytes long, too short to be a safetensors file"
    ]


def test_header_length_beyond_the_file(adapter_dir):
    path = weights(adapter_dir)
    path.write_bytes((10_000).to_bytes(8, "little") + path.read_bytes()[8:])

    [problem] = problems_of(adapter_dir)

    assert "announce a header of 10000 bytes in a file of" in problem


def test_a_pickle_renamed_to_safetensors(make_adapter, tmp_path):
    folder = make_adapter(safe_serialization=False)
    (folder / "adapter_model.bin").rename(weights(folder))

    [problem] = problems_of(folder)

    assert problem.startswith("adapter_model.safetensors: is not a safetensors file")


def test_header_that_is_not_json(adapter_dir):
    path = weights(adapter_dir)
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    path.write_bytes(raw[:8] + b"{" + b"x" * (size - 1) + raw[8 + size :])

    [problem] = problems_of(adapter_dir)

    assert "has a header that is not valid JSON" in problem


def test_offsets_that_disagree_with_the_shape(adapter_dir):
    def widen(header):
        header["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"]["shape"] = [4, 65]

    rewrite_header(weights(adapter_dir), widen)

    [problem] = problems_of(adapter_dir)

    assert problem == (
        "adapter_model.safetensors: tensor 'base_model.model.model.layers.0.self_attn.q_proj"
        ".lora_A.weight': F32 [4, 65] needs 1040 bytes, its offsets [0, 1024] span 1024"
    )


def test_truncated_data(adapter_dir):
    path = weights(adapter_dir)
    path.write_bytes(path.read_bytes()[:-512])

    [problem] = problems_of(adapter_dir)

    assert "but the file holds" in problem and "(truncated or padded)" in problem


def test_overlapping_tensors(adapter_dir):
    def overlap(header):
        entry = header["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"]
        entry["data_offsets"] = [0, 1024]

    rewrite_header(weights(adapter_dir), overlap)

    [problem] = problems_of(adapter_dir)

    assert "(tensors overlap or leave a gap)" in problem


def test_unknown_dtype(adapter_dir):
    def strange(header):
        header["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"]["dtype"] = "F12"

    rewrite_header(weights(adapter_dir), strange)

    [problem] = problems_of(adapter_dir)

    assert "unknown dtype 'F12'" in problem


# --- LoRA tensors -------------------------------------------------------------


def test_integer_dtype_is_refused(adapter_dir):
    # I32 has the size of F32, so only the dtype rule can object.
    def to_integers(header):
        header["base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"]["dtype"] = "I32"

    rewrite_header(weights(adapter_dir), to_integers)

    assert problems_of(adapter_dir) == [
        "adapter_model.safetensors: tensor 'base_model.model.model.layers.1.self_attn.v_proj"
        ".lora_B.weight' has dtype I32; expected a floating-point dtype (F16, BF16, F32, F64)"
    ]


def test_tensor_name_with_a_line_break_after_lora_weight_is_not_a_lora_weight(adapter_dir):
    name = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"

    def rename(header):
        header[name + "\n"] = header.pop(name)

    rewrite_header(weights(adapter_dir), rename)

    assert f"tensor {name + chr(10)!r} is not a LoRA weight" in " ".join(problems_of(adapter_dir))


def test_tensor_that_is_not_a_lora_weight(adapter_dir):
    def rename(header):
        header["base_model.model.lm_head.weight"] = header.pop(
            "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
        )

    rewrite_header(weights(adapter_dir), rename)

    problems = problems_of(adapter_dir)

    assert (
        "adapter_model.safetensors: tensor 'base_model.model.lm_head.weight' is not a LoRA "
        "weight; expected names ending in '.lora_A.weight' or '.lora_B.weight'"
    ) in problems


def test_tensors_of_a_module_the_config_does_not_target(adapter_dir):
    edit_config(adapter_dir, target_modules=["q_proj"])

    problems = problems_of(adapter_dir)

    assert len(problems) == 4  # v_proj A and B in two layers
    assert (
        "adapter_model.safetensors: tensor 'base_model.model.model.layers.0.self_attn.v_proj"
        ".lora_A.weight' adapts 'model.layers.0.self_attn.v_proj', which target_modules "
        "['q_proj'] does not select"
    ) in problems


def test_target_listed_without_tensors(adapter_dir):
    edit_config(adapter_dir, target_modules=["q_proj", "v_proj", "k_proj"])

    assert problems_of(adapter_dir) == [
        "adapter_model.safetensors: target module 'k_proj' is listed in adapter_config.json "
        "but no lora_A/lora_B tensor adapts it"
    ]


def test_lora_a_without_its_b(adapter_dir):
    drop_tensor(weights(adapter_dir), "layers.1.self_attn.q_proj.lora_B")

    assert problems_of(adapter_dir) == [
        "adapter_model.safetensors: tensor 'base_model.model.model.layers.1.self_attn.q_proj"
        ".lora_A.weight' has no matching lora_B weight"
    ]


def test_a_must_be_rank_by_in_features(make_adapter):
    folder = make_adapter(r=4)
    edit_config(folder, r=8, lora_alpha=16)

    problems = problems_of(folder)

    assert (
        "adapter_model.safetensors: tensor 'base_model.model.model.layers.0.self_attn.q_proj"
        ".lora_A.weight' has shape [4, 64]; expected [8, in_features] (lora_A is r × in, r = 8)"
    ) in problems


def test_b_must_be_out_features_by_rank(adapter_dir):
    def transpose_b(header):
        entry = header["base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight"]
        entry["shape"] = list(reversed(entry["shape"]))

    rewrite_header(weights(adapter_dir), transpose_b)

    assert problems_of(adapter_dir) == [
        "adapter_model.safetensors: tensor 'base_model.model.model.layers.0.self_attn.v_proj"
        ".lora_B.weight' has shape [4, 32]; expected [out_features, 4] (lora_B is out × r, r = 4)"
    ]


def test_in_features_must_match_the_base_model(make_adapter):
    folder = make_adapter(hidden_size=48, intermediate_size=96, num_attention_heads=3,
                          num_key_value_heads=1)  # fmt: skip

    problems = problems_of(folder)

    assert (
        "adapter_model.safetensors: tensor 'base_model.model.model.layers.0.self_attn.q_proj"
        ".lora_A.weight' has shape [4, 48]; expected [4, 64] (q_proj of acme/tiny-llama is "
        "64 → 64)"
    ) in problems


def test_out_features_must_match_the_base_model(make_adapter):
    # Four key/value heads instead of two: v_proj is 64 → 64, the base's is 64 → 32.
    folder = make_adapter(num_key_value_heads=4)

    problems = problems_of(folder)

    assert problems == [
        "adapter_model.safetensors: tensor 'base_model.model.model.layers.0.self_attn.v_proj"
        ".lora_B.weight' has shape [64, 4]; expected [32, 4] (v_proj of acme/tiny-llama is "
        "64 → 32)",
        "adapter_model.safetensors: tensor 'base_model.model.model.layers.1.self_attn.v_proj"
        ".lora_B.weight' has shape [64, 4]; expected [32, 4] (v_proj of acme/tiny-llama is "
        "64 → 32)",
    ]


def test_module_the_base_model_does_not_have(make_adapter):
    folder = make_adapter(target_modules=("q_proj", "v_proj", "k_proj"))

    problems = problems_of(folder)

    assert (
        "adapter_model.safetensors: tensor 'base_model.model.model.layers.0.self_attn.k_proj"
        ".lora_A.weight' adapts 'k_proj', but acme/tiny-llama has no linear layer of that "
        "name (it has q_proj, v_proj)"
    ) in problems


def test_layer_beyond_the_base_models_depth(make_adapter):
    folder = make_adapter(num_hidden_layers=3)

    problems = problems_of(folder)

    assert len(problems) == 2  # q_proj and v_proj of layer 2
    assert (
        "adapter_model.safetensors: tensor 'base_model.model.model.layers.2.self_attn.q_proj"
        ".lora_A.weight' adapts layer 2, but acme/tiny-llama has 2 layers (0 to 1)"
    ) in problems


def test_without_a_base_model_only_the_adapters_own_consistency_is_checked(make_adapter):
    folder = make_adapter(num_hidden_layers=3, num_key_value_heads=4)

    summary = validate_adapter(folder / ADAPTER_CONFIG, weights(folder), base=None)

    assert summary.adapted_module_count == 6


def test_problem_list_is_capped_for_display(make_adapter):
    folder = make_adapter(num_hidden_layers=2)
    edit_config(folder, target_modules=["k_proj"])

    with pytest.raises(AdapterInvalid) as raised:
        validate_adapter(folder / ADAPTER_CONFIG, weights(folder), TINY)
    messages = raised.value.messages()

    assert len(raised.value.problems) == 9  # 8 unselected tensors + k_proj without tensors
    assert len(messages) == 9
    raised.value.problems *= 5
    assert len(raised.value.messages()) == 21
    assert raised.value.messages()[-1] == "… and 25 more problems of the same kind"


# --- .zip archives ------------------------------------------------------------


def extract(archive: Path, tmp_path: Path, limit: int = 50 * MiB):
    target = tmp_path / "out"
    target.mkdir(exist_ok=True)
    return extract_adapter_zip(archive, target, max_uncompressed_bytes=limit, name=archive.name)


def zip_problems(archive: Path, tmp_path: Path, limit: int = 50 * MiB) -> list[str]:
    with pytest.raises(AdapterInvalid) as raised:
        extract(archive, tmp_path, limit)
    return [str(p) for p in raised.value.problems]


def test_zip_of_an_adapter_folder_is_extracted_and_hashed(adapter_dir, tmp_path):
    archive = zip_folder(adapter_dir, tmp_path / "adapter.zip", prefix="my-adapter/")

    files = extract(archive, tmp_path)

    assert set(files) == {ADAPTER_CONFIG, SAFETENSORS_WEIGHTS, MODEL_CARD}
    original = hash_file(weights(adapter_dir))
    assert files[SAFETENSORS_WEIGHTS].sha256 == original.sha256
    assert files[SAFETENSORS_WEIGHTS].path.read_bytes() == weights(adapter_dir).read_bytes()


def test_zip_with_files_at_its_root_and_extra_files_left_behind(adapter_dir, tmp_path):
    (adapter_dir / "training_args.bin").write_bytes(b"not read")
    archive = zip_folder(adapter_dir, tmp_path / "adapter.zip", prefix="")

    files = extract(archive, tmp_path)

    assert set(files) == {ADAPTER_CONFIG, SAFETENSORS_WEIGHTS, MODEL_CARD}
    assert not (tmp_path / "out" / "training_args.bin").exists()


def test_zip_problems_never_name_the_servers_copy_of_the_archive(tmp_path):
    # Uploads are checked from temporary files (tmpk3j2.upload.zip) users never named.
    temporary = tmp_path / "tmpk3j2x9.upload.zip"
    temporary.write_bytes(b"not a zip")
    target = tmp_path / "out"
    target.mkdir()

    with pytest.raises(AdapterInvalid) as raised:
        extract_adapter_zip(temporary, target, max_uncompressed_bytes=MiB)

    assert [str(p) for p in raised.value.problems] == [
        "the uploaded .zip: is not a readable zip archive (File is not a zip file)"
    ]


def test_zip_entry_with_an_absolute_path(adapter_dir, tmp_path):
    archive = zip_folder(adapter_dir, tmp_path / "a.zip", prefix="")
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("/etc/cron.d/evil", "* * * * * root true")

    assert zip_problems(archive, tmp_path) == [
        "a.zip: entry '/etc/cron.d/evil' has an absolute path"
    ]


def test_zip_entry_that_climbs_out_with_dot_dot(adapter_dir, tmp_path):
    archive = zip_folder(adapter_dir, tmp_path / "a.zip", prefix="")
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("adapter/../../outside.txt", "escape")

    assert zip_problems(archive, tmp_path) == [
        "a.zip: entry 'adapter/../../outside.txt' points outside the archive ('..')"
    ]
    assert not (tmp_path / "outside.txt").exists()


def test_zip_entry_that_is_a_symbolic_link(adapter_dir, tmp_path):
    archive = zip_folder(adapter_dir, tmp_path / "a.zip", prefix="")
    link = zipfile.ZipInfo("notes.txt")
    link.create_system = 3  # Unix, where the mode bits mean what they say
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr(link, "/etc/passwd")

    assert zip_problems(archive, tmp_path) == ["a.zip: entry 'notes.txt' is a symbolic link"]


def test_zip_entry_that_is_encrypted(adapter_dir, tmp_path):
    archive = tmp_path / "a.zip"
    zip_folder(adapter_dir, archive, prefix="")
    # Set the "encrypted" flag of one entry in the central directory.
    data = bytearray(archive.read_bytes())
    central = data.rfind(b"PK\x01\x02")
    data[central + 8] |= 0x1
    archive.write_bytes(bytes(data))

    problems = zip_problems(archive, tmp_path)

    assert len(problems) == 1 and problems[0].endswith("is encrypted")


def test_zip_that_expands_beyond_the_limit(adapter_dir, tmp_path):
    archive = zip_folder(adapter_dir, tmp_path / "a.zip", prefix="")
    with zipfile.ZipFile(archive, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("notes.txt", b"\0" * (3 * MiB))  # compresses to a few kilobytes

    assert archive.stat().st_size < MiB
    [problem] = zip_problems(archive, tmp_path, limit=2 * MiB)
    assert problem.startswith("a.zip: expands to ")
    assert problem.endswith(f"over the limit of {2 * MiB} bytes")


def test_zip_with_two_adapters_names_both_with_control_characters_escaped(adapter_dir, tmp_path):
    archive = zip_folder(adapter_dir, tmp_path / "a.zip", prefix="one/")
    with zipfile.ZipFile(archive, "a") as zf:
        zf.write(adapter_dir / ADAPTER_CONFIG, "two\x1b[2J/" + ADAPTER_CONFIG)

    [problem] = zip_problems(archive, tmp_path)

    assert (
        "holds more than one adapter ('one/adapter_config.json', 'two\\x1b[2J/adapter_config.json')"
    ) in problem
    assert "\x1b" not in problem


def test_zip_without_an_adapter_config(adapter_dir, tmp_path):
    (adapter_dir / ADAPTER_CONFIG).unlink()
    archive = zip_folder(adapter_dir, tmp_path / "a.zip")

    assert zip_problems(archive, tmp_path) == ["a.zip: holds no adapter_config.json"]


def test_file_that_is_not_a_zip(adapter_dir, tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(weights(adapter_dir).read_bytes())

    [problem] = zip_problems(archive, tmp_path)

    assert problem.startswith("a.zip: is not a readable zip archive")


def test_zip_with_a_corrupt_entry(adapter_dir, tmp_path):
    archive = tmp_path / "a.zip"
    zip_folder(adapter_dir, archive, prefix="")
    data = bytearray(archive.read_bytes())
    # Flip bytes inside the first entry's compressed data.
    for offset in range(200, 260):
        data[offset] ^= 0xFF
    archive.write_bytes(bytes(data))

    problems = zip_problems(archive, tmp_path)

    assert len(problems) == 1
    assert "a.zip: is " in problems[0] and "zip archive" in problems[0]


# --- adapter_model.bin --------------------------------------------------------


def test_pickled_weights_are_converted_to_the_same_safetensors(make_adapter, tmp_path):
    pickled = make_adapter(safe_serialization=False) / "adapter_model.bin"
    target = tmp_path / SAFETENSORS_WEIGHTS

    convert_pickled_weights(pickled, target)

    import torch
    from safetensors.torch import load_file

    converted = load_file(str(target))
    original = torch.load(pickled, weights_only=True)
    assert converted.keys() == original.keys()
    assert all(torch.equal(converted[k], original[k]) for k in original)


def test_legacy_pickle_format_is_converted(tmp_path):
    import torch

    legacy = tmp_path / "adapter_model.bin"
    torch.save({"x.lora_A.weight": torch.ones(2, 3)}, legacy, _use_new_zipfile_serialization=False)

    convert_pickled_weights(legacy, tmp_path / SAFETENSORS_WEIGHTS)

    [tensor] = read_safetensors_header(tmp_path / SAFETENSORS_WEIGHTS)
    assert tensor.shape == (2, 3)


class _RunsCode:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"
    hostile = tmp_path / "adapter_model.bin"
    hostile.write_bytes(pickle.dumps({"weights": _RunsCode(marker)}))

    with pytest.raises(AdapterInvalid) as raised:
        convert_pickled_weights(hostile, tmp_path / SAFETENSORS_WEIGHTS)

    assert str(raised.value).startswith(
        "adapter_model.bin: was refused by PyTorch's safe loader (weights_only=True)"
    )
    assert not marker.exists()
    assert not (tmp_path / SAFETENSORS_WEIGHTS).exists()


def test_hostile_object_saved_by_torch_is_refused(tmp_path):
    import torch

    marker = tmp_path / "code-ran"
    hostile = tmp_path / "adapter_model.bin"
    torch.save({"weights": _RunsCode(marker)}, hostile)

    with pytest.raises(AdapterInvalid, match="refused by PyTorch's safe loader"):
        convert_pickled_weights(hostile, tmp_path / SAFETENSORS_WEIGHTS)
    assert not marker.exists()


def test_pickle_of_plain_numbers_is_not_weights(tmp_path):
    import torch

    numbers = tmp_path / "adapter_model.bin"
    torch.save({"lr": 0.001}, numbers)

    with pytest.raises(AdapterInvalid) as raised:
        convert_pickled_weights(numbers, tmp_path / SAFETENSORS_WEIGHTS)

    assert str(raised.value) == "adapter_model.bin: entry 'lr' is a float, not a tensor"
