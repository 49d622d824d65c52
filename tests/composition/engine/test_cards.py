"""Cards of composed modules: which sources they name, and rewriting that section."""

from composition.engine.cards import CardSource, sources_section, with_section

CARD = """---
tags: [lora]
---

# ada/mixed

Composed on the hub from 3 modules.

## Sources

| module | weight |
|---|---|
| lorahub/a | +0.5000 |
| ada/secret | -0.7000 |

## Held-out examples

Exact match: 50.0%.
"""


def test_sources_are_named_by_weight_and_the_unnamed_only_counted():
    section = sources_section(
        [CardSource("lorahub/a", 0.1), CardSource(None, -0.9), CardSource("lorahub/b", -0.3)]
    )

    assert section.splitlines() == [
        "## Sources",
        "",
        "| module | weight |",
        "|---|---|",
        "| lorahub/b | -0.3000 |",
        "| lorahub/a | +0.1000 |",
        "",
        "Also merged: 1 module that is not public, not named here.",
    ]
    assert "0.9" not in section


def test_a_card_with_no_public_source_has_no_table():
    section = sources_section([CardSource(None, 0.2), CardSource(None, 0.4)])

    assert "|" not in section
    assert "Merged: 2 modules that are not public, not named here." in section


def test_the_section_is_replaced_up_to_the_next_heading():
    card = with_section(
        CARD, sources_section([CardSource("lorahub/a", 0.5), CardSource(None, -0.7)])
    )

    assert "secret" not in card and "-0.7000" not in card
    assert card.startswith(CARD[: CARD.index("## Sources")])
    assert card.endswith("## Held-out examples\n\nExact match: 50.0%.\n")
    assert "| lorahub/a | +0.5000 |\n\nAlso merged: 1 module" in card


def test_a_card_without_the_section_is_left_as_its_owner_wrote_it():
    card = "# Mine\n\nNo sources listed.\n"

    assert with_section(card, sources_section([CardSource(None, 1.0)])) == card
