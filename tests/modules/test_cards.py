"""Model cards: front matter, tags, summaries and safe rendering (no database)."""

import pytest

from modules.cards import (
    ModelCard,
    normalize_tags,
    parse_card,
    split_tags,
    summarize,
    with_metadata,
)
from modules.markdown import render_markdown
from modules.validation import AdapterInvalid

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
