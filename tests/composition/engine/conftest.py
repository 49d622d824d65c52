"""Engine tests: examples shared by several files, and the check that they need no Django.

The tiny models and modules they use come from ``tests/composition/engine/fixtures.py``.
"""

import sys

import pytest

from composition.engine.types import Example

EXAMPLES = (
    Example("which is red ? options : ( a ) cat ( b ) dog", "( a )"),
    Example("the answer is not true", "false"),
    Example("one plus two", "three"),
    Example("is the sentence true ? yes or no", "yes"),
    Example("which contains a bird", "( b ) bird"),
)
HELDOUT = (
    Example("two plus two", "four"),
    Example("is blue a cat ? yes or no", "no"),
)


@pytest.fixture(autouse=True)
def _no_django(request):
    """With pytest-django off (``make test`` runs the engine tests so), nothing imports Django.

    With the plugin on, the plugin itself has set Django up: there is nothing to check.
    """
    yield
    if not request.config.pluginmanager.has_plugin("django"):
        leaked = sorted(name for name in sys.modules if name.split(".")[0] == "django")
        assert not leaked, f"Django was imported during an engine test: {leaked[:5]}"
