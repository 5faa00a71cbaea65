"""One HTML reader for the page tests (playground, KG view): what a test asks of a page."""

from __future__ import annotations

from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "option", "source",
        "track", "wbr"}


class Page(HTMLParser):
    """The text of every element with an id, the highlighted ``<mark>``s, the ``<script>``s
    (attributes, text), every src/href, ``<body>``'s attributes and every tag seen."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text_of: dict[str, str] = {}
        self.marks: list[dict] = []
        self.scripts: list[tuple[dict, str]] = []
        self.links: list[str] = []
        self.body: dict = {}
        self.tags: list[str] = []
        self._open: list[tuple[str, str | None]] = []  # (tag, id) of the open elements

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        self.links += [v or "" for k, v in attrs if k in ("src", "href")]
        if tag == "body":
            self.body = a
        if tag == "mark":
            self.marks.append({**a, "text": ""})
        if tag == "script":
            self.scripts.append((a, ""))
        if tag not in VOID:
            self._open.append((tag, a.get("id")))

    def handle_endtag(self, tag):
        while any(t == tag for t, _ in self._open):
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data):
        for _, i in self._open:
            if i:
                self.text_of[i] = self.text_of.get(i, "") + data
        innermost = self._open[-1][0] if self._open else None
        if innermost == "mark":
            self.marks[-1]["text"] += data
        if innermost == "script":
            self.scripts[-1] = (self.scripts[-1][0], self.scripts[-1][1] + data)


def parse_page(page: str) -> Page:
    p = Page()
    p.feed(page)
    p.close()
    return p
