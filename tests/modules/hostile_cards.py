"""Model cards built to make a hub do too much work."""


def alias_bomb(levels: int = 5, width: int = 9) -> str:
    """A "billion laughs" README: each level lists ``width`` aliases of the level below.

    Its text grows by one line per level, what it stands for by a factor of
    ``width``: at 5 levels, 59,049 strings (about 400 KB of JSON) in 300 bytes.
    """
    lines = ["---", "license: mit", f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join([*lines, "---", "", "# Laughs", "", "A card that laughs a lot.", ""])


# An alias inside the value it names: a list that holds itself.
SELF_REFERENCE = "---\nlicense: mit\nloop: &loop [*loop]\n---\n\n# Loop\n"

# Anchors also serve YAML merge keys (<<), which cards have no need for either.
MERGE_KEY = "---\ndefaults: &defaults {license: mit}\nmodel:\n  <<: *defaults\n---\n\n# Merge\n"


def oversized_metadata(size: int) -> str:
    """A card whose front matter holds ``size`` characters of text in one value."""
    return f"---\nlicense: mit\nnotes: {'x' * size}\n---\n\n# Long notes\n"
