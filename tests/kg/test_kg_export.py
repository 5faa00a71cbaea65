"""Graph de-duplication and exports on a hand-made triples file; hostile names (formulas, newlines,
blank names) are normalised once for every exporter."""

import csv
import json

import pytest
from rdflib import Graph as RDFGraph
from rdflib import RDF, RDFS, Literal

from ie_service.kg.build import done_ids, read_documents
from ie_service.kg.export import export, to_cypher
from ie_service.kg.graph import load_graph


def ent(text, type_=None):
    return {"text": text, "type": type_, "start": 0, "end": len(text), "grounded": True}


EVIL = 'Bobby"}) DETACH DELETE n //'


@pytest.fixture()
def triples(tmp_path):
    path = tmp_path / "triples.jsonl"
    lines = [
        {"doc_id": "d1", "triples": [
            {"head": ent("Microsoft", "organization"), "relation": "founded by", "tail": ent("Bill Gates", "person")},
            {"head": ent("Microsoft"), "relation": "located in", "tail": ent("Redmond", "location")}]},
        {"doc_id": "d2", "triples": [
            {"head": ent("microsoft "), "relation": "founded by", "tail": ent("bill  gates", "person")},
            {"head": ent(EVIL), "relation": "knows", "tail": ent("Alice <x>")}]},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n" + '{"doc_id": "d3", "tri')  # torn line
    return path


def test_entities_are_deduplicated_across_case_spacing_and_docs(triples):
    g = load_graph(triples)
    names = sorted(e.name for e in g.entities.values())
    assert names == sorted(["Microsoft", "Bill Gates", "Redmond", EVIL, "Alice <x>"])
    ms = next(e for e in g.entities.values() if e.name == "Microsoft")
    assert ms.type == "organization" and ms.docs == {"d1", "d2"}
    assert len(g.edges) == 4 and g.docs == {"d1", "d2"}


def test_triples_are_counted_as_kg_build_wrote_them(tmp_path):
    """``Graph.triples``: every triple record read, repeats included (kg build's count);
    ``edges``: each (head, relation, tail) once per document; a triple's ends keep the types
    the RE answer gave them (issue 30)."""
    path = tmp_path / "t.jsonl"
    founded = {"head": ent("Microsoft", "organization"), "relation": "founded by", "tail": ent("Bill Gates", "person")}
    path.write_text("".join(json.dumps(x) + "\n" for x in [
        {"doc_id": "a", "triples": [founded, {**founded, "head": ent("microsoft", "organization")},
                                    {"head": ent("Microsoft"), "relation": "based in",
                                     "tail": ent("Redmond", "location")}]},
        {"doc_id": "b", "triples": [founded, {"head": ent(" "), "relation": "x", "tail": ent("y")}]}]))
    g = load_graph(path)
    assert g.triples == 4 and g.skipped == 1  # 5 written, one with an empty head
    assert len(g.edges) == 3 and len({(e.head, e.relation, e.tail) for e in g.edges}) == 2
    assert {e.name: e.type for e in g.entities.values()} == {
        "Microsoft": "organization", "Bill Gates": "person", "Redmond": "location"}


def test_turtle_and_ntriples_parse_back(triples, tmp_path):
    g = load_graph(triples)
    for fmt in ("turtle", "nt"):
        out = tmp_path / f"kg.{fmt}"
        export(g, fmt, out)
        rdf = RDFGraph().parse(out, format=fmt)
        labels = {str(o) for _, _, o in rdf.triples((None, RDFS.label, None))}
        assert {"Microsoft", "Bill Gates", EVIL, "founded by"} <= labels
        assert (None, None, Literal("Alice <x>")) in rdf
        mentioned = [t for t in rdf if str(t[1]).endswith("mentionedIn")]
        assert len(mentioned) == 7  # Microsoft and Bill Gates in two docs, three others in one


def test_neo4j_csv(triples, tmp_path):
    files = export(load_graph(triples), "neo4j-csv", tmp_path / "neo4j")
    by_name = {p.name: list(csv.reader(p.open())) for p in files}
    assert by_name["entities.csv"][0] == ["id:ID(Entity)", "name", "type", "confidence:float", ":LABEL"]
    assert len(by_name["entities.csv"]) == 1 + 5
    assert by_name["relations.csv"][0][:3] == [":START_ID(Entity)", ":END_ID(Entity)", ":TYPE"]
    assert len(by_name["relations.csv"]) == 1 + 4 and len(by_name["mentions.csv"]) == 1 + 7
    assert any(row[1] == EVIL for row in by_name["entities.csv"])


def test_cypher_is_parameterised(triples):
    statements = to_cypher(load_graph(triples))
    for s in statements:
        assert "$rows" in s["query"]
        assert "Bobby" not in s["query"] and "Microsoft" not in s["query"]
    entity_rows = statements[1]["parameters"]["rows"]
    assert any(r["name"] == EVIL for r in entity_rows)
    assert "MENTIONS" in statements[2]["query"]


def test_read_documents_and_done_ids(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("Alpha text.")
    (tmp_path / "docs" / "b.jsonl").write_text('{"id": "x1", "text": "one"}\n\n{"text": "two"}\n')
    docs = list(read_documents([str(tmp_path / "docs")]))
    assert [(d.id, d.text) for d in docs] == [("a.txt", "Alpha text."), ("x1", "one"), ("b:3", "two")]
    out = tmp_path / "t.jsonl"
    out.write_text('{"doc_id": "x1", "triples": []}\n{"doc_id": "b:3", "tr')
    assert done_ids(out) == {"x1"}


def test_build_concurrency_follows_the_services_replicas():
    """``kg build`` asks ``/v1/models`` how many engine replicas serve; a server that does not
    say (or answers nonsense) counts as one."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from ie_service.kg.build import service_replicas

    answers = {"/a/v1/models": (200, {"data": [{"id": "m", "replicas": 3}]}),
               "/b/v1/models": (200, {"data": [{"id": "m"}]}),
               "/c/v1/models": (200, {"data": [{"id": "m", "replicas": "many"}]}),
               "/d/v1/models": (404, {"error": "no"})}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            status, body = answers.get(self.path, (404, {}))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        assert [service_replicas(f"{base}/{p}") for p in "abcd"] == [3, 1, 1, 1]
    finally:
        server.shutdown()
        server.server_close()


def test_ntriples_writer_and_rdflib_turtle_hold_the_same_graph(tmp_path):
    """N-Triples are written directly, Turtle by rdflib: parsed back, the two are one graph,
    hostile literals included."""
    from rdflib.compare import isomorphic

    from ie_service.kg.export import to_rdf

    hostile = ['a "quoted" \\ back\\slash', "line\nbreak", "tab\there", "<tag> & }) DETACH DELETE n //",
               "=1+2", "北京 🦀", "\\u0041 stays text"]
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps({"doc_id": f"doc {i}\r", "triples": [
        {"head": ent(h, "type \"x\""), "relation": f"rel {h}", "tail": ent("Tail", None)}]}) + "\n"
        for i, h in enumerate(hostile)) + json.dumps({"doc_id": "empty", "triples": []}) + "\n")
    g = load_graph(path)
    nt, ttl = RDFGraph().parse(data=to_rdf(g, "nt"), format="nt"), RDFGraph().parse(data=to_rdf(g, "turtle"),
                                                                                  format="turtle")
    assert isomorphic(nt, ttl)
    labels = {str(o) for _, _, o in nt.triples((None, RDFS.label, None))}
    assert {e.name for e in g.entities.values()} <= labels and "empty" in labels
    assert len(nt) == len(ttl) > 7 * 6


# --- hostile names: Neo4j CSV and the other exporters (issue 12, part 4) ---------------------------------


def ungrounded(text, type_=None):
    return {"text": text, "type": type_, "start": None, "end": None, "grounded": False}


@pytest.fixture()
def nasty_graph(tmp_path):
    lines = [{"doc_id": "d1", "triples": [
        {"head": ungrounded("=HYPERLINK(\"http://evil\",\"x\")", "org\n"), "relation": "founded\nby",
         "tail": ungrounded("+1 555", "person")},
        {"head": ungrounded("@SUM(A1:A9)"), "relation": "knows", "tail": ungrounded("-2+3")},
        {"head": ungrounded("Bill\nGates", "person\r\n"), "relation": "knows", "tail": ungrounded("   ")},
        {"head": ungrounded("Bill Gates"), "relation": "cmd", "tail": ungrounded("\tTAB")},
    ]}]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return load_graph(path)


def test_neo4j_csv_has_no_formulas_or_raw_newlines(nasty_graph, tmp_path):
    files = export(nasty_graph, "neo4j-csv", tmp_path / "neo")
    for f in files:
        raw = f.read_text()
        rows = list(csv.reader(f.open()))
        assert len(raw.splitlines()) == len(rows)  # no record spans two lines
        for row in rows[1:]:
            for cell in row:
                assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (f.name, cell)
    entities = {row[1] for row in list(csv.reader((tmp_path / "neo" / "entities.csv").open()))[1:]}
    assert "'=HYPERLINK(\"http://evil\",\"x\")" in entities and "'+1 555" in entities
    assert "Bill Gates" in entities and "" not in entities and "'TAB" not in entities


def test_names_and_types_normalised_once_for_every_exporter(nasty_graph, tmp_path):
    assert nasty_graph.skipped == 1  # the whitespace-only tail: no entity with an empty name
    names = {e.name for e in nasty_graph.entities.values()}
    assert "Bill Gates" in names and "TAB" in names and all(n.strip() == n and n for n in names)
    types = {e.type for e in nasty_graph.entities.values()} - {None}
    assert types == {"org", "person"}
    assert {e.relation for e in nasty_graph.edges} == {"founded by", "knows", "cmd"}
    rows = to_cypher(nasty_graph)[1]["parameters"]["rows"]
    assert {r["type"] for r in rows} - {None} == {"org", "person"}
    export(nasty_graph, "turtle", tmp_path / "kg.ttl")
    rdf = RDFGraph().parse(tmp_path / "kg.ttl", format="turtle")
    assert {str(o) for o in rdf.objects(None, RDFS.label)} >= {"Bill Gates", "founded by"}
    assert {str(o).rsplit("/", 1)[-1] for o in rdf.objects(None, RDF.type)} >= {"org", "person"}
