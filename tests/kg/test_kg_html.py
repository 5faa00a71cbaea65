"""``kg export --format html``: one self-contained page, safe against hostile entity names,
checked by parsing and by a real headless Chromium (rendered, no errors, search, sources).

Regenerate the README screenshot with
``KG_VIEW_SCREENSHOT=docs/kg-view.png .venv/bin/python -m pytest tests/kg/test_kg_html.py -k screenshot``."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import struct
import zlib
from pathlib import Path
from urllib.parse import quote

import pytest
from headless_chromium import run_chromium
from html_dom import Page, parse_page as parse

from ie_service.cli import main
from ie_service.kg.build import Document, read_documents
from ie_service.kg.graph import Edge, EntityNode, Graph, entity_id, entity_key, load_graph
from ie_service.kg import html_view
from ie_service.kg.html_view import (PALETTE, cap_message, json_for_script, page_data, split_sentences,
                                     to_html)

STATIC = Path(__file__).resolve().parents[2] / "ie_service" / "kg" / "static"

PWN = "document.body.setAttribute('data-pwned','1')"
HOSTILE = [
    f"</script><script>{PWN}</script>",
    f"<img src=x onerror=\"{PWN}\">",
    "<!-- <script>",
    "</SCRIPT >",
    '"quotes" \'single\' \\back\\slash\\',
    "`backtick ${x}`",
    "line\u2028sep\u2029para",
    "😀 emoji 👩‍👩‍👧",
    "北京大学",
    "{{VIS_JS}}",
    "]]> &amp; &lt;",
]


def make_graph(triples: list[tuple[str, str | None, str, str, str | None, str]]) -> Graph:
    """A Graph from ``(head, head type, relation, tail, tail type, doc)``; names are kept raw
    (load_graph would clean them), so the page sees them exactly."""
    g = Graph()
    for head, head_type, relation, tail, tail_type, doc in triples:
        ends = []
        for name, type_ in ((head, head_type), (tail, tail_type)):
            eid = entity_id(entity_key(name) + name)  # raw names stay distinct
            node = g.entities.setdefault(eid, EntityNode(eid, name, type_))
            node.docs.add(doc)
            ends.append(eid)
        g.edges.append(Edge(ends[0], relation, ends[1], doc))
        g.docs.add(doc)
    return g


def hostile_graph() -> Graph:
    return make_graph([(name, "evil<type>", f"rel {name}", "Microsoft", "organization", "doc </script>")
                       for name in HOSTILE]
                      + [("Microsoft", "organization", "founded by", "Bill Gates", "person", "d1")])


SAMPLE_DOCS = [
    {"id": "microsoft", "text": "Microsoft was founded by Bill Gates and Paul Allen in 1975. "
                                "The company is headquartered in Redmond, Washington."},
    {"id": "apple", "text": "Apple was founded by Steve Jobs and Steve Wozniak. "
                            "Apple is headquartered in Cupertino, California."},
    {"id": "amazon", "text": "Amazon was founded by Jeff Bezos in Seattle, Washington. "
                             "Amazon is headquartered in Seattle. "
                             "Jeff Bezos also founded Blue Origin, which is based in Kent, Washington."},
    {"id": "people", "text": "Bill Gates and Paul Allen grew up in Seattle. "
                             "Steve Jobs was born in San Francisco, California. "
                             "Steve Wozniak was born in San Jose, California."},
]
SAMPLE_TRIPLES = [
    ("microsoft", "Microsoft", "organization", "founded by", "Bill Gates", "person"),
    ("microsoft", "Microsoft", "organization", "founded by", "Paul Allen", "person"),
    ("microsoft", "Microsoft", "organization", "headquartered in", "Redmond", "location"),
    ("microsoft", "Redmond", "location", "located in", "Washington", "location"),
    ("apple", "Apple", "organization", "founded by", "Steve Jobs", "person"),
    ("apple", "Apple", "organization", "founded by", "Steve Wozniak", "person"),
    ("apple", "Apple", "organization", "headquartered in", "Cupertino", "location"),
    ("apple", "Cupertino", "location", "located in", "California", "location"),
    ("amazon", "Amazon", "organization", "founded by", "Jeff Bezos", "person"),
    ("amazon", "Amazon", "organization", "headquartered in", "Seattle", "location"),
    ("amazon", "Seattle", "location", "located in", "Washington", "location"),
    ("amazon", "Blue Origin", "organization", "founded by", "Jeff Bezos", "person"),
    ("amazon", "Blue Origin", "organization", "based in", "Kent", "location"),
    ("amazon", "Kent", "location", "located in", "Washington", "location"),
    ("people", "Bill Gates", "person", "grew up in", "Seattle", "location"),
    ("people", "Paul Allen", "person", "grew up in", "Seattle", "location"),
    ("people", "Steve Jobs", "person", "born in", "San Francisco", "location"),
    ("people", "Steve Wozniak", "person", "born in", "San Jose", "location"),
    ("people", "San Francisco", "location", "located in", "California", "location"),
    ("people", "San Jose", "location", "located in", "California", "location"),
]


@pytest.fixture()
def sample(tmp_path) -> tuple[Path, Path]:
    """A realistic triples file (as kg build writes it) and its documents file."""
    by_doc: dict[str, list] = {}
    for doc, head, head_type, relation, tail, tail_type in SAMPLE_TRIPLES:
        by_doc.setdefault(doc, []).append({"head": {"text": head, "type": head_type}, "relation": relation,
                                           "tail": {"text": tail, "type": tail_type}})
    triples = tmp_path / "triples.jsonl"
    triples.write_text("".join(json.dumps({"doc_id": d, "triples": t}) + "\n" for d, t in by_doc.items()))
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps(d) + "\n" for d in SAMPLE_DOCS))
    return triples, docs


def page_json(page: str) -> dict:
    (data,) = [text for attrs, text in parse(page).scripts if attrs.get("type") == "application/json"]
    return json.loads(data)


# ---------------------------------------------------------------- the page, parsed


def test_page_is_self_contained():
    page = to_html(hostile_graph())
    p = parse(page)
    assert not [u for u in p.links if re.match(r"\s*(https?:)?//", u, re.I)], p.links
    assert all("src" not in attrs for attrs, _ in p.scripts)
    vis = max((text for _, text in p.scripts), key=len)
    assert "@version 10.1.5" in vis and len(vis) > 500_000 and "sourceMappingURL" not in vis
    assert "default-src 'none'" in page  # the policy that forbids network access at view time
    assert p.body["data-status"] == "loading"


def test_hostile_names_cannot_break_out():
    page = to_html(hostile_graph(), title="</title><script>x</script>")
    p = parse(page)
    assert [attrs.get("type") for attrs, _ in p.scripts] == [None, "application/json", None, None]
    assert [attrs.get("id") for attrs, _ in p.scripts] == [None, "kg-data", None, None]
    for needle in ("</script><script>document", "<img src=x", "<!-- <script>", "\u2028", "\u2029"):
        assert needle not in page
    assert page.count("@version 10.1.5") == 1  # the "{{VIS_JS}}" name was not expanded
    assert p.text_of["kg-title"] == "</title><script>x</script>"
    data = page_json(page)
    names = {n["name"] for n in data["nodes"]}
    assert names == set(HOSTILE) | {"Microsoft", "Bill Gates"}
    assert {e["relation"] for e in data["edges"]} >= {f"rel {h}" for h in HOSTILE}
    assert {"doc </script>", "d1"} <= {d for n in data["nodes"] for d in n["docs"]}
    assert {x["type"] for x in data["legend"]} == {"evil<type>", "organization", "person"}


def test_json_for_script_escapes_everything_that_could_end_a_script():
    value = {"s": "</script><!--\u2028\u2029&<>"}
    text = json_for_script(value)
    assert not re.search(r"[<>&\u2028\u2029]", text) and json.loads(text) == value


def test_cap_keeps_the_most_connected_and_says_so():
    star = [("Hub", "org", f"r{i}", f"Leaf {i}", "person", "d") for i in range(6)]
    pair = [("Second", "org", f"s{i}", f"Leaf {i}", "person", "d") for i in range(2)]
    lonely = [("Lonely A", None, "knows", "Lonely B", None, "d")]
    g = make_graph(star + pair + lonely)
    data = page_data(g, max_nodes=4)
    assert [n["name"] for n in data["nodes"]] == ["Hub", "Leaf 0", "Leaf 1", "Second"]
    assert data["total"] == 10
    assert data["message"] == "showing 4 of 10 entities, the most connected; use kg query/kg load for the rest"
    assert {(e["relation"]) for e in data["edges"]} == {"r0", "r1", "s0", "s1"}  # both ends kept
    assert page_data(g, max_nodes=10)["message"] is None
    assert cap_message(12345, 500) == ("showing 500 of 12,345 entities, the most connected; "
                                       "use kg query/kg load for the rest")


def test_types_get_distinct_colours_and_no_type_is_grey():
    g = make_graph([("A", "org", "r", "B", "person", "d"), ("C", None, "r", "A", "org", "d")])
    legend = {x["type"]: x for x in page_data(g)["legend"]}
    assert legend["org"]["color"] == PALETTE[0] and legend["org"]["count"] == 1
    assert legend["person"]["color"] == PALETTE[1] and legend[None]["color"] == "#bab0ac"


def test_split_sentences_latin_and_chinese():
    assert split_sentences('He said "hi." Then left!  Why?\n\nNew  para') == \
        ['He said "hi."', "Then left!", "Why?", "New para"]
    assert split_sentences("阿里巴巴由马云创立。总部在杭州！“是吗？”他问。") == \
        ["阿里巴巴由马云创立。", "总部在杭州！", "“是吗？”", "他问。"]


def test_sentences_found_for_an_edge_and_a_node(sample):
    triples, docs = sample
    data = page_data(load_graph(triples), read_documents([str(docs)]))
    name = {n["id"]: n["name"] for n in data["nodes"]}
    edge = next(e for e in data["edges"] if (name[e["from"]], e["relation"], name[e["to"]])
                == ("Amazon", "headquartered in", "Seattle"))
    assert edge["docs"] == ["amazon"]
    assert edge["sentences"] == {"amazon": ["Amazon was founded by Jeff Bezos in Seattle, Washington.",
                                            "Amazon is headquartered in Seattle."]}
    seattle = next(n for n in data["nodes"] if n["name"] == "Seattle")
    assert seattle["docs"] == ["amazon", "people"]
    assert seattle["sentences"]["people"] == ["Bill Gates and Paul Allen grew up in Seattle."]
    assert data["withDocuments"] is True and "sentences" not in page_data(load_graph(triples))["nodes"][0]


def test_chinese_sentences_for_an_edge():
    g = make_graph([("阿里巴巴", "组织", "创始人", "马云", "人物", "zh")])
    docs = [Document(id="zh", text="阿里巴巴由马云创立。阿里巴巴总部位于杭州。马云是老师！")]
    (edge,) = page_data(g, docs)["edges"]
    assert edge["sentences"] == {"zh": ["阿里巴巴由马云创立。"]}


def test_cli_export_html(sample, tmp_path, capsys):
    triples, docs = sample
    out = tmp_path / "graph.html"
    assert main(["kg", "export", "--triples", str(triples), "--format", "html", "--out", str(out),
                 "--documents", str(docs), "--max-nodes", "5"]) == 0
    printed = capsys.readouterr().out
    assert "showing 5 of 17 entities, the most connected; use kg query/kg load for the rest" in printed
    data = page_json(out.read_text(encoding="utf-8"))
    assert len(data["nodes"]) == 5 and data["withDocuments"]
    with pytest.raises(SystemExit) as exit_:
        main(["kg", "export", "--triples", str(triples), "--format", "turtle", "--out", str(tmp_path / "x"),
              "--max-nodes", "5"])
    assert exit_.value.code == 2 and "--format html" in capsys.readouterr().err


def test_vendored_library_matches_its_readme_and_script():
    digest = hashlib.md5((STATIC / "vis-network.min.js").read_bytes()).hexdigest()
    assert digest in (STATIC / "README.md").read_text()
    script = (STATIC.parent.parent.parent / "scripts" / "vendor-vis-network.sh").read_text()
    assert f'MD5="${{MD5-{digest}}}"' in script and 'VERSION="${VERSION:-10.1.5}"' in script
    assert (STATIC / "vis-network.LICENSE-MIT").is_file() and (STATIC / "vis-network.LICENSE-APACHE-2.0").is_file()


# ---------------------------------------------------------------- a real headless Chromium


def browse(chromium: str, tmp_path: Path, page: str, fragment: str = "") -> Page:
    """The DOM after the page ran, with no console output and no recorded error."""
    path = tmp_path / "graph.html"
    path.write_text(page, encoding="utf-8")
    dom, console = run_chromium(chromium, tmp_path, path.as_uri() + fragment, "--dump-dom")
    assert console == []
    p = parse(dom)
    assert p.text_of.get("errors", "") == ""
    assert p.body.get("data-status") == "rendered", dom[-2000:]
    assert "data-pwned" not in p.body
    return p


@pytest.mark.parametrize("name", [HOSTILE[0], HOSTILE[1], "北京大学", "😀 emoji 👩‍👩‍👧"])
def test_browser_renders_hostile_names_and_finds_them(chromium, tmp_path, name):
    p = browse(chromium, tmp_path, to_html(hostile_graph()), "#q=" + quote(name))
    assert p.text_of["panel-title"] == name
    assert "doc </script>" in p.text_of["panel-body"]
    assert "Export with --documents" in p.text_of["panel-body"]
    assert p.text_of.get("search-msg", "") == ""


def test_browser_search_not_found_says_so(chromium, tmp_path):
    p = browse(chromium, tmp_path, to_html(hostile_graph()), "#q=" + quote("Nobody <here>"))
    assert p.text_of["search-msg"] == "No entity matches “Nobody <here>”."
    assert "data-selected" not in p.body


def test_browser_edge_shows_its_source_sentence(chromium, tmp_path, sample):
    triples, docs = sample
    graph = load_graph(triples)
    data = page_data(graph, read_documents([str(docs)]), max_nodes=8)
    name = {n["id"]: n["name"] for n in data["nodes"]}
    edge = next(e for e in data["edges"] if name[e["from"]] == "Microsoft" and name[e["to"]] == "Bill Gates")
    p = browse(chromium, tmp_path, to_html(graph, read_documents([str(docs)]), max_nodes=8), "#edge=" + edge["id"])
    assert p.body["data-selected"] == edge["id"]
    assert p.text_of["panel-title"] == "Microsoft → founded by → Bill Gates"
    assert "Microsoft was founded by Bill Gates and Paul Allen in 1975." in p.text_of["panel-body"]
    assert p.text_of["cap"].startswith("Showing 8 of 17 entities, the most connected")


def test_browser_renders_an_empty_graph(chromium, tmp_path):
    p = browse(chromium, tmp_path, to_html(Graph()))
    assert p.text_of["panel-body"] == "The graph has no entities."
    assert p.text_of["counts"] == "0 entities · 0 triples · 0 distinct edges"


def test_browser_records_errors_visibly(chromium, tmp_path, monkeypatch):
    monkeypatch.setattr(html_view, "vis_network_js", lambda: "throw new Error('vis failed to load')")
    path = tmp_path / "graph.html"
    path.write_text(to_html(hostile_graph()), encoding="utf-8")
    dom, console = run_chromium(chromium, tmp_path, path.as_uri(), "--dump-dom")
    p = parse(dom)
    assert p.body["data-status"] == "error"
    assert "vis failed to load" in p.text_of["errors"] and "vis is not defined" in p.text_of["errors"]
    assert any("Uncaught" in line for line in console)  # what the other tests assert is absent


def png_colors(path: Path) -> set[tuple[int, ...]]:
    """The distinct RGB colours of a PNG: with Pillow if installed, else the stdlib."""
    try:
        from PIL import Image
    except ImportError:
        return png_colors_stdlib(path)
    with Image.open(path) as im:
        return {c[:3] for _, c in im.convert("RGB").getcolors(maxcolors=1 << 24)}


def png_colors_stdlib(path: Path) -> set[tuple[int, ...]]:
    """Decode an 8-bit RGB/RGBA, non-interlaced PNG (what Chromium writes) with zlib."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, color_type, _, _, interlace = header
    assert depth == 8 and color_type in (2, 6) and interlace == 0, header
    bpp = 3 if color_type == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    prev, colors = bytearray(stride), set()
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        colors.update(tuple(line[i:i + 3]) for i in range(0, stride, bpp))
        prev = line
    return colors


def test_browser_screenshot_is_not_blank(chromium, tmp_path, sample):
    triples, docs = sample
    page = to_html(load_graph(triples), read_documents([str(docs)]), title="Companies, founders, places")
    browse(chromium, tmp_path, page)  # rendered, no errors
    shot = tmp_path / "kg-view.png"
    _, console = run_chromium(chromium, tmp_path, (tmp_path / "graph.html").as_uri() + "#q=Seattle",
                              f"--screenshot={shot}", "--window-size=1280,760", "--hide-scrollbars")
    assert console == [] and shot.is_file()
    colors = png_colors(shot)
    assert len(colors) > 200  # text, antialiasing, nodes: not a blank page
    fills = {tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in PALETTE[:3]}
    assert fills <= colors  # a node of each of the three types is drawn in its legend colour
    if os.environ.get("KG_VIEW_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["KG_VIEW_SCREENSHOT"])
    if importlib.util.find_spec("PIL"):
        assert png_colors_stdlib(shot) == colors  # the fallback decoder agrees with Pillow


# ---------------------------------------------------------------- after a real `kg build` (issue 30)
# The page said "(no type)" on every entity and "4 relations" where kg build had counted 5
# triples: a --relations schema gives no types (RE triples carry their ends' types only where
# the schema has head_type / tail_type), and the page counted distinct edges across documents.

KG_DOCS = [{"id": "a", "text": "Microsoft was founded by Bill Gates. Microsoft is headquartered in Redmond. "
                               "Apple is headquartered in Cupertino."},
           {"id": "b", "text": "Microsoft, founded by Bill Gates, opened an office in Seattle."}]
KG_SCHEMA = [{"relation": "founded by", "head_type": "organization", "tail_type": "person"},
             {"relation": "headquartered in", "head_type": "organization", "tail_type": "location"}]


def kg_reply(prompt: str, schema: dict | None) -> str:
    """The model's answer for a document: typed pairs where the prompt names the types."""
    keys = ("organization", "person", "location") if "organization" in prompt else ("subject", "object", "object")
    org, per, loc = keys
    founded = [{org: "Microsoft", per: "Bill Gates"}]
    hq = ([{org: "Microsoft", loc: "Redmond"}, {org: "Apple", loc: "Cupertino"}] if "Redmond" in prompt else [])
    return json.dumps({"founded by": founded, "headquartered in": hq})


def kg_build(tmp_path: Path, capsys, schema_args: list[str]) -> tuple[dict, Path]:
    """``kg build`` through the CLI against the app with a scripted engine: its printed
    counts and the triples file."""
    from fakes import ScriptedEngine
    from live_app import serve_app

    from ie_service.api.app import create_app

    docs, out = tmp_path / "docs.jsonl", tmp_path / "triples.jsonl"
    docs.write_text("".join(json.dumps(d) + "\n" for d in KG_DOCS))
    with serve_app(create_app(lambda: ScriptedEngine(kg_reply))) as url:
        capsys.readouterr()
        assert main(["kg", "build", "--input", str(docs), "--out", str(out), "--url", url, *schema_args]) == 0
    counts = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return counts, out


def test_kg_build_typed_schema_types_the_nodes_and_the_counts_agree(tmp_path, capsys):
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(KG_SCHEMA))
    counts, out = kg_build(tmp_path, capsys, ["--schema", str(schema)])
    assert counts["triples"] == 4  # a: 3, b: 1 (Microsoft founded by Bill Gates again)
    data = page_data(load_graph(out))
    assert {n["name"]: n["type"] for n in data["nodes"]} == {
        "Microsoft": "organization", "Apple": "organization", "Bill Gates": "person",
        "Redmond": "location", "Cupertino": "location"}
    assert data["typed"] is True and {x["type"] for x in data["legend"]} == {"organization", "person", "location"}
    assert data["triples"] == counts["triples"] == 4 and data["totalEdges"] == len(data["edges"]) == 3


def test_kg_build_untyped_schema_says_so_once_not_no_type_on_every_node(tmp_path, capsys):
    counts, out = kg_build(tmp_path, capsys, ["--relations", "founded by,headquartered in"])
    data = page_data(load_graph(out))
    assert all(n["type"] is None for n in data["nodes"])
    assert data["typed"] is False and data["legend"] == []  # no "(no type)" entry for everything
    assert data["triples"] == counts["triples"] == 4


@pytest.mark.parametrize("typed", [True, False])
def test_browser_counts_triples_like_kg_build_and_types_from_triples(chromium, tmp_path, capsys, typed):
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(KG_SCHEMA))
    counts, out = kg_build(tmp_path, capsys, ["--schema", str(schema)] if typed
                           else ["--relations", "founded by,headquartered in"])
    page = to_html(load_graph(out))
    p = browse(chromium, tmp_path, page, "#q=Microsoft")
    assert p.text_of["counts"] == f"5 entities · {counts['triples']} triples · 3 distinct edges"
    assert "(no type)" not in p.text_of.get("legend", "") and "no type" not in p.text_of["panel-body"]
    if typed:
        assert p.text_of["panel-body"].startswith("organization · 2 relations")
        assert "person" in p.text_of["legend"] and "location" in p.text_of["legend"]
    else:
        assert p.text_of["panel-body"].startswith("2 relations")
        assert "Entities have no types" in p.text_of["legend"]
