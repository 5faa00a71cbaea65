"""Hostile names round-trip through the embedded stores (`kg load` / `kg query`, Oxigraph and
LadybugDB) and through the Neo4j import CSV, checked against neo4j-admin import's rules."""

import csv
import json
import re
import subprocess
import sys
from collections import Counter
from urllib.parse import unquote

import pytest

from ie_service.kg.export import BASE, csv_value, export, to_cypher
from ie_service.kg.graph import clean_text, entity_id, entity_key, load_graph
from ie_service.kg.stores import KINDS, graph_counts, open_store, parse_store_spec

pytest.importorskip("pyoxigraph")
pytest.importorskip("ladybug")

BACKSLASHES = "C:\\new\\table\\"  # ends with a backslash; \n and \t here are two characters each
UNICODE_ESCAPE = "\\u0041 is not A"  # an N-Triples / JSON escape sequence, kept as text
NAMES = [
    "O'Brien \"the\" Quote", BACKSLASHES, UNICODE_ESCAPE, "line1\nline2\r\n\tend", "<script>alert(1)</script>",
    "`rm -rf /`", 'Bobby"}) DETACH DELETE n //', "x'}) DETACH DELETE n //", "=SUM(A1:A9)", "+1 555",
    "-2+3", "@cmd", "'=quoted", "🦀 Rustacean 👩‍💻", "北京大学", "$rows {id: 1}", '" } ; DROP ALL ; #',
    "Cafe\u0301", "100% <sure> & \"right\"",
]
RELATIONS = ['rel "quoted"', "back\\slash", "}) DETACH DELETE n //", "=HYPERLINK(\"x\")", "关系",
             "🦀 likes", "a/b#c?d", "<rel>", "`tick`", "-minus"]
TYPES = [None, 'org "x"', "人物", "=formula", "back\\type"]
DOCS = ["doc 1", "=cmd", "'=cmd", "d\\x", 'doc"}) //', "文档", "🦀", "a/b#c?d%20",
        entity_id(entity_key("北京大学"))]  # a document id equal to an entity id


def ent(text, type_):
    return {"text": text, "type": type_}


@pytest.fixture(scope="module")
def triples_file(tmp_path_factory):
    """Every name is a head once and a tail once; every (head, relation, tail) is in one
    document only, and every document has triples (what the RDF export can hold)."""
    n = len(NAMES)
    records = {d: [] for d in DOCS}
    for i, name in enumerate(NAMES):
        tail = NAMES[(i + 1) % n]
        records[DOCS[i % len(DOCS)]].append({
            "head": ent(name, TYPES[i % len(TYPES)]), "relation": RELATIONS[i % len(RELATIONS)],
            "tail": ent(tail, TYPES[(i + 1) % len(TYPES)])})
    path = tmp_path_factory.mktemp("kg") / "triples.jsonl"
    path.write_text("".join(json.dumps({"doc_id": d, "triples": t}, ensure_ascii=False) + "\n"
                            for d, t in records.items()), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def graph(triples_file):
    return load_graph(triples_file)


def cli(*args, check=True):
    done = subprocess.run([sys.executable, "-m", "ie_service.cli", "kg", *args],
                          capture_output=True, text=True, timeout=120)
    if check:
        assert done.returncode == 0, done.stderr[-2000:]
    return done


def query(store, text):
    return [json.loads(line) for line in cli("query", "--store", store, text).stdout.splitlines()]


@pytest.fixture(scope="module")
def stores(triples_file, tmp_path_factory):
    """Both stores, loaded twice through the CLI (the second load must change nothing)."""
    folder = tmp_path_factory.mktemp("stores")
    specs = {"oxigraph": f"oxigraph:{folder / 'ox'}", "ladybug": f"ladybug:{folder / 'lb.db'}"}
    loads = {kind: [json.loads(cli("load", "--triples", str(triples_file), "--store", spec).stdout.splitlines()[-1])
                    for _ in range(2)] for kind, spec in specs.items()}
    return specs, loads


def test_the_graph_keeps_the_hostile_names(graph):
    names = {e.name for e in graph.entities.values()}
    assert names == {clean_text(n) for n in NAMES}
    assert BACKSLASHES in names and "line1 line2 end" in names and "Café" in names
    assert {e.relation for e in graph.edges} == set(RELATIONS) and graph.docs == set(DOCS)
    assert len(graph.edges) == len(NAMES)


def test_every_store_counts_what_the_graph_holds_and_a_reload_changes_nothing(graph, stores):
    _, loads = stores
    expected = graph_counts(graph).model_dump()
    assert {**expected, "mentions": 0} == {"entities": len(NAMES), "relations": len(NAMES),
                                           "documents": len(DOCS), "mentions": 0}
    assert len(NAMES) < expected["mentions"] <= 2 * len(NAMES)  # an entity in one or two documents
    for kind, (first, second) in loads.items():
        assert first == expected, kind
        assert second == expected, kind


SPARQL_PREFIX = f"PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#> PREFIX ie: <{BASE}> "


def slug_of(iri, namespace):
    assert iri.startswith(BASE + namespace), iri
    return unquote(iri[len(BASE + namespace):])


def test_oxigraph_returns_every_entity_edge_and_mention(graph, stores):
    store = stores[0]["oxigraph"]
    rows = query(store, SPARQL_PREFIX + f"SELECT ?e ?name ?type WHERE {{ ?e rdfs:label ?name ; a ?type "
                                        f"FILTER(STRSTARTS(STR(?e), \"{BASE}entity/\")) }}")
    got = Counter((slug_of(r["e"], "entity/"), r["name"],
                   None if r["type"] == BASE + "Entity" else slug_of(r["type"], "type/")) for r in rows)
    assert got == Counter((e.id, e.name, e.type) for e in graph.entities.values())
    names = {r["name"] for r in rows}
    assert BACKSLASHES in names and UNICODE_ESCAPE in names  # byte-identical, no escape decoded

    rows = query(store, SPARQL_PREFIX + "SELECT ?h ?relation ?t ?doc WHERE { ?r a ie:Relation ; ie:head ?h ; "
                                        "ie:predicate ?p ; ie:tail ?t ; ie:source ?d . ?p rdfs:label ?relation . "
                                        "?d rdfs:label ?doc }")
    got = Counter((slug_of(r["h"], "entity/"), r["relation"], slug_of(r["t"], "entity/"), r["doc"]) for r in rows)
    assert got == Counter((e.head, e.relation, e.tail, e.doc_id) for e in graph.edges)
    # the direct triples (for plain SPARQL): one per (head, relation, tail)
    rows = query(store, SPARQL_PREFIX + f"SELECT ?h ?relation ?t WHERE {{ ?h ?p ?t . ?p rdfs:label ?relation "
                                        f"FILTER(STRSTARTS(STR(?p), \"{BASE}relation/\")) }}")
    got = Counter((slug_of(r["h"], "entity/"), r["relation"], slug_of(r["t"], "entity/")) for r in rows)
    assert got == Counter({(e.head, e.relation, e.tail) for e in graph.edges})

    rows = query(store, SPARQL_PREFIX + "SELECT ?e ?d WHERE { ?e ie:mentionedIn ?d }")
    got = Counter((slug_of(r["e"], "entity/"), slug_of(r["d"], "doc/")) for r in rows)
    assert got == Counter((e.id, d) for e in graph.entities.values() for d in e.docs)


def test_ladybug_returns_every_entity_edge_document_and_mention(graph, stores):
    store = stores[0]["ladybug"]
    rows = query(store, "MATCH (e:Entity) RETURN e.id AS id, e.name AS name, e.type AS type")
    assert Counter((r["id"], r["name"], r["type"]) for r in rows) == Counter(
        (e.id, e.name, e.type) for e in graph.entities.values())
    assert BACKSLASHES in {r["name"] for r in rows}

    rows = query(store, "MATCH (h:Entity)-[r:RELATION]->(t:Entity) "
                        "RETURN h.id AS head, r.type AS relation, t.id AS tail, r.doc_id AS doc_id")
    assert Counter((r["head"], r["relation"], r["tail"], r["doc_id"]) for r in rows) == Counter(
        (e.head, e.relation, e.tail, e.doc_id) for e in graph.edges)

    rows = query(store, "MATCH (d:Document) RETURN d.id AS id")
    assert sorted(r["id"] for r in rows) == sorted(graph.docs)
    rows = query(store, "MATCH (d:Document)-[:MENTIONS]->(e:Entity) RETURN d.id AS doc, e.id AS entity")
    assert Counter((r["doc"], r["entity"]) for r in rows) == Counter(
        (d, e.id) for e in graph.entities.values() for d in e.docs)


def test_the_exported_cypher_merges_when_run_again(graph, tmp_path):
    """Without the clear of ``load``: the exported statements themselves never duplicate."""
    store = open_store(parse_store_spec(f"ladybug:{tmp_path / 'lb.db'}"))
    try:
        before = store.load(graph, progress=False)
        for s in to_cypher(graph):
            store.run(s["query"], s["parameters"])
        assert store.counts() == before == graph_counts(graph)
    finally:
        store.close()


# ---- the command line's errors: one line, exit 2, no traceback


@pytest.mark.parametrize("spec", ["neo4j:/tmp/x", "oxigraph", "oxigraph:", "/tmp/x"])
def test_a_bad_store_spec_is_a_usage_error_naming_the_kinds(spec, triples_file):
    done = cli("load", "--triples", str(triples_file), "--store", spec, check=False)
    assert done.returncode == 2
    assert all(kind in done.stderr for kind in KINDS) and "Traceback" not in done.stderr


@pytest.mark.parametrize("kind,text", [("oxigraph", "SELECT ?x WHERE {"), ("ladybug", "MATCH (n RETURN n"),
                                       ("ladybug", "CREATE (e:Entity {id: 'x'})")])
def test_a_bad_query_is_one_line_and_exit_2(kind, text, stores):
    done = cli("query", "--store", stores[0][kind], text, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr


def test_querying_a_store_never_loaded_is_one_line(tmp_path):
    done = cli("query", "--store", f"ladybug:{tmp_path / 'none'}", "MATCH (n) RETURN n", check=False)
    assert done.returncode == 2 and "kg load" in done.stderr and "Traceback" not in done.stderr


# ---- what the RDF export cannot hold (issue 14): these fail until to_rdf keeps it


def rdf_counts(tmp_path, records):
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    graph = load_graph(path)
    store = open_store(parse_store_spec(f"oxigraph:{tmp_path / 'ox'}"))
    try:
        return store.load(graph, progress=False), graph_counts(graph)
    finally:
        store.close()


FOUNDED = {"head": ent("Microsoft", None), "relation": "founded by", "tail": ent("Bill Gates", None)}


def test_rdf_keeps_a_relation_stated_in_two_documents(tmp_path):
    got, expected = rdf_counts(tmp_path, [{"doc_id": "d1", "triples": [FOUNDED]},
                                          {"doc_id": "d2", "triples": [FOUNDED]}])
    assert got.relations == expected.relations == 2


def test_rdf_keeps_a_document_without_triples(tmp_path):
    got, expected = rdf_counts(tmp_path, [{"doc_id": "d1", "triples": [FOUNDED]}, {"doc_id": "d2", "triples": []}])
    assert got.documents == expected.documents == 2


def test_rdf_keeps_relations_that_differ_by_space_or_underscore(tmp_path):
    other = {**FOUNDED, "relation": "founded_by"}
    got, expected = rdf_counts(tmp_path, [{"doc_id": "d1", "triples": [FOUNDED, other]}])
    assert got.relations == expected.relations == 2
    store = open_store(parse_store_spec(f"oxigraph:{tmp_path / 'ox'}"), read_only=True)
    try:
        labels = store.query(SPARQL_PREFIX + f"SELECT ?p (COUNT(?l) AS ?n) WHERE {{ ?p rdfs:label ?l "
                                             f"FILTER(STRSTARTS(STR(?p), \"{BASE}relation/\")) }} GROUP BY ?p")
    finally:
        store.close()
    assert all(r["n"] == 1 for r in labels)


# ---- Neo4j import CSV, checked against neo4j-admin database import's documented rules

HEADER_FIELD = re.compile(r"^(?P<name>[^:]*)(?::(?P<type>[A-Za-z_]+(?:\[\])?)(?:\((?P<space>[^()]+)\))?)?$")
PROPERTY_TYPES = {"string", "int", "long", "float", "double", "boolean", "byte", "short", "char", "point",
                  "date", "localtime", "time", "localdatetime", "datetime", "duration"}
SPECIAL = {"ID", "START_ID", "END_ID", "TYPE", "LABEL", "IGNORE"}


def split_record(line):
    """One CSV record as neo4j-admin reads it (delimiter ``,``, quote ``"`` doubled inside a
    quoted field, no backslash escapes, no field spanning lines)."""
    fields, i = [], 0
    while True:
        if line.startswith('"', i):
            parts, j = [], i + 1
            while True:
                k = line.index('"', j)  # an unterminated quote raises
                parts.append(line[j:k])
                if line.startswith('"', k + 1):
                    parts.append('"')
                    j = k + 2
                    continue
                i = k + 1
                break
            fields.append("".join(parts))
            if i == len(line):
                return fields
            assert line[i] == ",", f"text after a closing quote: {line!r}"
            i += 1
        else:
            k = line.find(",", i)
            field = line[i:] if k < 0 else line[i:k]
            assert '"' not in field, f"a quote inside an unquoted field: {line!r}"
            fields.append(field)
            if k < 0:
                return fields
            i = k + 1


def read_import_file(path):
    """``(header, rows)``: header as ``[(name, type, id space)]``; rows as dicts by column."""
    raw = path.read_bytes().decode("utf-8")
    assert raw.endswith("\n") and "\r" not in raw.replace("\r\n", "\n")
    lines = raw.replace("\r\n", "\n").split("\n")[:-1]
    header = []
    for field in split_record(lines[0]):
        m = HEADER_FIELD.match(field)
        assert m, f"{path.name}: header field {field!r} is not name:TYPE"
        type_ = m["type"]
        assert type_ is None or type_ in SPECIAL or type_.removesuffix("[]") in PROPERTY_TYPES, field
        assert m["space"] is None or type_ in ("ID", "START_ID", "END_ID"), field
        header.append((m["name"], type_, m["space"]))
    rows = []
    for line in lines[1:]:
        cells = split_record(line)
        assert len(cells) == len(header), f"{path.name}: {line!r}"
        rows.append(cells)
    return header, rows


def column(header, type_):
    found = [i for i, (_, t, _) in enumerate(header) if t == type_]
    assert len(found) == 1, f"{type_} must be one column, header {header}"
    return found[0], header[found[0]][2]


def test_neo4j_csv_follows_neo4j_admin_import_rules(graph, tmp_path):
    files = {p.name: read_import_file(p) for p in export(graph, "neo4j-csv", tmp_path / "neo4j")}
    ids: dict[str | None, dict[str, list]] = {}  # id space → id → row
    node_values = {}
    for name in ("entities.csv", "documents.csv"):
        header, rows = files[name]
        i, space = column(header, "ID")
        column(header, "LABEL")
        for row in rows:
            assert row[i] not in ids.setdefault(space, {}), f"{name}: id {row[i]!r} twice in space {space}"
            ids[space][row[i]] = row
        node_values[name] = (header, rows)
    for name in ("relations.csv", "mentions.csv"):
        header, rows = files[name]
        (s, s_space), (e, e_space), _ = column(header, "START_ID"), column(header, "END_ID"), column(header, "TYPE")
        for row in rows:
            assert row[s] in ids.get(s_space, {}), f"{name}: :START_ID {row[s]!r} is no node of {s_space}"
            assert row[e] in ids.get(e_space, {}), f"{name}: :END_ID {row[e]!r} is no node of {e_space}"

    header, rows = files["entities.csv"]
    assert Counter((r[0], csv_value(r[1]), csv_value(r[2]) or None) for r in rows) == Counter(
        (e.id, e.name, e.type) for e in graph.entities.values())
    assert BACKSLASHES in {r[1] for r in rows}
    header, rows = files["documents.csv"]
    assert sorted(csv_value(r[0]) for r in rows) == sorted(graph.docs)
    header, rows = files["relations.csv"]
    assert Counter((r[0], r[1], csv_value(r[3]), csv_value(r[4])) for r in rows) == Counter(
        (e.head, e.tail, e.relation, e.doc_id) for e in graph.edges)
    header, rows = files["mentions.csv"]
    assert Counter((csv_value(r[0]), r[1]) for r in rows) == Counter(
        (d, e.id) for e in graph.entities.values() for d in e.docs)
    for header, rows in files.values():  # no cell a spreadsheet would evaluate
        assert not any(c.startswith(("=", "+", "-", "@")) for row in rows for c in row)


def test_split_record_reads_doubled_quotes_and_rejects_bare_ones():
    assert split_record('a,"b ""c"", d",') == ["a", 'b "c", d', ""]
    with pytest.raises(AssertionError):
        split_record('a,b"c')
    with pytest.raises(ValueError):
        split_record('"open')
    out = []
    csv.writer(type("W", (), {"write": lambda self, s: out.append(s)})()).writerow(['x"y', "a\\", "p,q"])
    assert split_record("".join(out).rstrip("\r\n")) == ['x"y', "a\\", "p,q"]
