"""Reading few-shot examples from JSONL, CSV or TSV, with per-row errors."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from composition.engine.types import EngineError, Example

FORMATS = ("jsonl", "csv", "tsv")


@dataclass(frozen=True)
class RowError:
    row: int  # 1-based line (JSONL) or record (CSV/TSV) number
    message: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.message}"


def parse_examples(text: str, fmt: str) -> tuple[list[Example], list[RowError]]:
    """Examples from ``text`` in ``fmt``; rows that fail are reported, not raised."""
    if fmt == "jsonl":
        return _parse_jsonl(text)
    if fmt in ("csv", "tsv"):
        return _parse_delimited(text, "," if fmt == "csv" else "\t")
    raise EngineError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def guess_format(name: str) -> str:
    suffix = Path(name).suffix.lower().lstrip(".")
    return {"json": "jsonl", "ndjson": "jsonl"}.get(suffix, suffix)


def read_examples(path: str | Path) -> list[Example]:
    """Every example of a file, or an error listing the bad rows."""
    path = Path(path)
    fmt = guess_format(path.name)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EngineError(f"{path}: cannot be read ({exc})") from exc
    examples, errors = parse_examples(text, fmt)
    if errors:
        listed = "; ".join(str(e) for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise EngineError(f"{path}: {listed}{more}")
    if not examples:
        raise EngineError(f"{path}: no examples")
    return examples


def _parse_jsonl(text: str) -> tuple[list[Example], list[RowError]]:
    examples: list[Example] = []
    errors: list[RowError] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(RowError(number, f"not valid JSON ({exc.msg})"))
            continue
        if not isinstance(record, dict):
            errors.append(RowError(number, 'expected an object {"input": …, "target": …}'))
            continue
        _append(examples, errors, number, record.get("input"), record.get("target"))
    return examples, errors


def _parse_delimited(text: str, delimiter: str) -> tuple[list[Example], list[RowError]]:
    examples: list[Example] = []
    errors: list[RowError] = []
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if "input" not in header or "target" not in header:
        return [], [RowError(1, "the header must name the columns 'input' and 'target'")]
    reader.fieldnames = header
    for number, record in enumerate(reader, start=2):
        if None in record:
            errors.append(RowError(number, "more fields than the header has"))
            continue
        _append(examples, errors, number, record.get("input"), record.get("target"))
    return examples, errors


def _append(
    examples: list[Example], errors: list[RowError], number: int, input_text: object, target: object
) -> None:
    if not isinstance(input_text, str) or not input_text.strip():
        errors.append(RowError(number, "'input' is missing or empty"))
    elif not isinstance(target, str) or not target.strip():
        errors.append(RowError(number, "'target' is missing or empty"))
    else:
        examples.append(Example(input_text, target))
