"""Model cards: front matter, tags, summaries and safe rendering (no database)."""

import json

import pytest

from modules.cards import (
    MAX_CARD_DATA_BYTES,
    ModelCard,
    card_body,
    normalize_tags,
    parse_card,
    split_tags,
    stored_card_data,
    summarize,
    with_metadata,
)
from modules.markdown import render_markdown
from modules.validation import AdapterInvalid
from tests.modules.hostile_cards import MERGE_KEY, SELF_REFERENCE, alias_bomb, oversized_metadata

PEFT_TEMPLATE_START = (
    "# Model Card for Model ID\n\n<!-- Provide a quick summary of what the model is/does. -->\n\n"
    "\n\n## Model Details\n\n### Model Description\n\n"
    "- **Developed by:** [More Information Needed]\n\n### Recommendations\n\n"
    "Users (both direct and downstream) should be made aware of the risks.\n"
)


def test_front_matter_is_split_from_the_body():
    card = parse_card("---\nlicense: mit\ntags: [QA, base_model:adapter:x/y]\n---\n\n# Hi\n")

    assert card.metadata == {"license": "mit", "tags": ["QA", "base_model:adapter:x/y"]}
    assert card.body == "# Hi\n"
    assert card.tags == ["qa"]  # derived Hub tags are left out
    assert card.license == "mit"


def test_a_card_without_front_matter_is_all_body():
    card = parse_card("# Just markdown\n\n---\n\nA rule above, not front matter.\n")

    assert card.metadata == {}
    assert card.body.startswith("# Just markdown")


@pytest.mark.parametrize(
    "text, message",
    [
        ("---\ntags: [a\n---\n", "has front matter that is not valid YAML"),
        ("---\n- a\n- b\n---\n", "has front matter that is not a YAML mapping"),
    ],
)
def test_broken_front_matter_is_a_readme_problem(text, message):
    with pytest.raises(AdapterInvalid) as raised:
        parse_card(text)

    assert str(raised.value).startswith(f"README.md: {message}")


@pytest.mark.parametrize(
    "text, line",
    [(alias_bomb(), 3), (SELF_REFERENCE, 3), (MERGE_KEY, 2)],
    ids=["alias-bomb", "self-reference", "merge-key"],
)
def test_front_matter_with_yaml_anchors_or_aliases_is_refused(text, line):
    with pytest.raises(AdapterInvalid) as raised:
        parse_card(text)

    message = str(raised.value)
    assert message.startswith("README.md: has front matter with a YAML anchor or alias")
    assert f"line {line})" in message and "Write the values out instead." in message


def test_front_matter_larger_than_the_bound_as_json_is_refused():
    parse_card(oversized_metadata(MAX_CARD_DATA_BYTES - 100))  # under the bound: kept

    with pytest.raises(AdapterInvalid) as raised:
        parse_card(oversized_metadata(MAX_CARD_DATA_BYTES))

    message = str(raised.value)
    assert message.startswith("README.md: has front matter of 65,5")
    assert "at most 65,536 bytes (64 KiB) of card metadata" in message
    assert "Move long text into the card's Markdown body." in message


def test_deeply_nested_front_matter_is_a_readme_problem():
    with pytest.raises(AdapterInvalid, match=r"^README.md: has front matter nested too deeply"):
        parse_card("---\nx: " + "[" * 5000 + "]" * 5000 + "\n---\n")


def test_card_data_is_plain_json_whatever_the_yaml_holds():
    card = parse_card(
        "---\n2024-01-02: day\nwhen: 2024-05-06\nscore: .nan\n1: one\nlist: !!set {a}\n---\n"
    )

    assert card.data == {
        "2024-01-02": "day", "when": "2024-05-06", "score": "nan", "1": "one",
        "list": ["a"],
    }  # fmt: skip
    json.dumps(card.data, allow_nan=False)  # valid JSON, which jsonb also accepts


def test_stored_card_data_of_a_card_the_hub_refuses_is_empty():
    assert stored_card_data(alias_bomb()) == {}
    assert stored_card_data(SELF_REFERENCE) == {}
    assert stored_card_data("---\nlicense: mit\n---\n# Fine\n") == {"license": "mit"}
    assert stored_card_data("") == {}


def test_the_body_is_found_without_reading_the_front_matter():
    assert card_body(alias_bomb()) == "# Laughs\n\nA card that laughs a lot.\n"
    assert card_body("# No front matter\n") == "# No front matter\n"


def test_rendered_cards_write_shared_values_out_in_full():
    shared = ["a", "b"]
    card = ModelCard(metadata={"tags": shared, "also": shared}, body="Body\n")

    assert parse_card(card.render()).metadata == {"tags": ["a", "b"], "also": ["a", "b"]}


def test_metadata_is_written_and_other_keys_are_kept():
    card = parse_card("---\npipeline_tag: text-generation\nlicense: mit\n---\nBody\n")

    updated = with_metadata(card, base_model="acme/m", tags=["qa"], license="", datasets=["d"])

    assert updated.metadata == {
        "pipeline_tag": "text-generation",
        "base_model": "acme/m",
        "library_name": "peft",
        "tags": ["qa"],
        "datasets": ["d"],
    }
    assert parse_card(updated.render()).metadata == updated.metadata
    assert updated.render().endswith("Body\n")


def test_tags_become_slugs_once_each():
    assert normalize_tags(
        ["Text Generation", "text-generation", "Ünïcode!", "", None, "a" * 60]
    ) == [
        "text-generation",
        "unicode",
        "a" * 50,
    ]
    assert split_tags("sentiment, Movie Reviews,,") == ["sentiment", "movie-reviews"]


def test_summary_is_the_introduction_not_a_templates_later_sections():
    assert summarize("# Title\n\nAnswers **yes/no** questions, see [docs](x).\n\n## Use\n") == (
        "Answers yes/no questions, see docs."
    )
    assert summarize(PEFT_TEMPLATE_START) == ""


def test_summary_drops_emphasis_but_keeps_underscores_inside_words():
    text = "# T\n\nA _careful_ __bold__ adapter for flan_t5_large on `word_unscrambling`.\n"
    assert summarize(text) == "A careful bold adapter for flan_t5_large on word_unscrambling."


def test_rendering_hides_comments_but_not_in_code():
    html = render_markdown("Text <!-- note -->\n\n```html\n<!-- shown -->\n```\n")

    assert "note" not in html
    assert "&lt;!-- shown --&gt;" in html


def test_rendering_escapes_raw_html_and_drops_script_links():
    html = render_markdown(
        "<script>alert(1)</script>\n\n[x](javascript:alert(1)) [ok](https://example.org) "
        "<img src=x onerror=alert(1)>"
    )

    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html
    assert '<a href="https://example.org" rel="nofollow noopener noreferrer">ok</a>' in html
    assert "<img" not in html


def test_an_empty_card_renders_to_nothing():
    assert render_markdown(ModelCard().body) == ""
