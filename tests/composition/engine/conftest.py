"""Examples shared by several engine tests.

The tiny models and modules they use come from ``tests/composition/engine/fixtures.py``.
"""

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
