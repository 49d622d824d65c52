"""Reading a page's form markup as assistive technology does: which controls have a name."""

from html.parser import HTMLParser

CONTROLS = {"input", "select", "textarea"}
UNNAMED_TYPES = {"hidden", "submit", "button", "reset", "image"}


class _Controls(HTMLParser):
    def __init__(self):
        super().__init__()
        self.controls: list[dict] = []
        self.label_for: set[str] = set()
        self.open_labels = 0

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "label":
            self.open_labels += 1
            if attributes.get("for"):
                self.label_for.add(attributes["for"])
        elif tag in CONTROLS and attributes.get("type") not in UNNAMED_TYPES:
            self.controls.append({**attributes, "_tag": tag, "_in_label": self.open_labels > 0})

    def handle_endtag(self, tag):
        if tag == "label":
            self.open_labels -= 1


def unlabelled_controls(html: str) -> list[str]:
    """Names (or ids) of the form controls on the page that no label or aria attribute names."""
    parser = _Controls()
    parser.feed(html)
    return [
        control.get("name") or control.get("id") or control["_tag"]
        for control in parser.controls
        if not (
            control["_in_label"]
            or control.get("id") in parser.label_for
            or control.get("aria-label")
            or control.get("aria-labelledby")
        )
    ]
