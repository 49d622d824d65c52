"""Model cards rendered to HTML that is safe to put in a page.

Two layers: markdown-it renders with raw HTML turned off (any tag in a card
comes out as text) and refuses script-like link targets; nh3 then keeps only
an allow-list of tags, attributes and URL schemes, whatever the renderer did.
"""

import re

import nh3
from markdown_it import MarkdownIt

_renderer = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])

ALLOWED_TAGS = {
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "img", "li", "ol", "p", "pre", "s", "strong", "table", "tbody", "td", "th", "thead",
    "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "code": {"class"},  # language-python…, for highlighting
}


# Fenced code blocks, kept as they are; HTML comments outside them are
# notes to the card's editors (hidden on the Hugging Face Hub too).
_FENCED_CODE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
_COMMENT = re.compile(r"<!--.*?-->", re.S)


def render_markdown(text: str) -> str:
    html = _renderer.render(_without_comments(text))
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="nofollow noopener noreferrer",
    )


def _without_comments(text: str) -> str:
    pieces, position = [], 0
    for block in _FENCED_CODE.finditer(text):
        pieces.append(_COMMENT.sub("", text[position : block.start()]))
        pieces.append(block.group(0))
        position = block.end()
    pieces.append(_COMMENT.sub("", text[position:]))
    return "".join(pieces)
