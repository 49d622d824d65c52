import pytest

from composition.engine.examples import parse_examples, read_examples
from composition.engine.types import EngineError, Example


def test_jsonl_rows_parse_and_bad_rows_are_numbered():
    text = '{"input": "a", "target": "b"}\n\nnot json\n{"input": "c"}\n[1, 2]\n'

    examples, errors = parse_examples(text, "jsonl")

    assert examples == [Example("a", "b")]
    assert [(e.row, e.message) for e in errors] == [
        (3, "not valid JSON (Expecting value)"),
        (4, "'target' is missing or empty"),
        (5, 'expected an object {"input": …, "target": …}'),
    ]


def test_csv_with_quotes_and_newlines():
    text = 'input,target\n"one, two",three\n"multi\nline",x\n'

    examples, errors = parse_examples(text, "csv")

    assert examples == [Example("one, two", "three"), Example("multi\nline", "x")]
    assert errors == []


def test_tsv_needs_input_and_target_columns():
    _, errors = parse_examples("question\tanswer\nq\ta\n", "tsv")

    assert [str(e) for e in errors] == [
        "row 1: the header must name the columns 'input' and 'target'"
    ]


def test_tsv_row_with_extra_fields_is_reported():
    examples, errors = parse_examples("input\ttarget\nq\ta\nq\ta\textra\n", "tsv")

    assert examples == [Example("q", "a")]
    assert [str(e) for e in errors] == ["row 3: more fields than the header has"]


def test_read_examples_refuses_a_file_with_bad_rows(tmp_path):
    path = tmp_path / "shots.jsonl"
    path.write_text('{"input": "a", "target": ""}\n')

    with pytest.raises(EngineError, match="row 1: 'target' is missing or empty"):
        read_examples(path)


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(EngineError, match="unknown format 'xlsx'"):
        parse_examples("", "xlsx")
