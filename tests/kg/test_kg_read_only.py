"""``kg query`` is read-only (issue 20): the probe's attacks are refused with one line and
exit 2, write no file, send no request, and the store still answers afterwards; ordinary
reads still run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_http import tiny_server

from ie_service.kg.stores.read_only import ReadOnlyViolation, check_cypher_plan, check_cypher_text, check_sparql

pytest.importorskip("pyoxigraph")
pytest.importorskip("ladybug")

TRIPLES = [{"doc_id": "d1", "triples": [
    {"head": {"text": "Apple", "type": "org"}, "relation": "founded by", "tail": {"text": "Steve Jobs", "type": "person"}},
    {"head": {"text": "Apple", "type": "org"}, "relation": "located in", "tail": {"text": "Cupertino", "type": None}}]}]


REPO = Path(__file__).resolve().parents[2]


def cli(*args, cwd=None):
    """``ie-service kg ...`` of this checkout (also when run in another folder)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "ie_service.cli", "kg", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("ro")
    triples = root / "t.jsonl"
    triples.write_text("".join(json.dumps(r) + "\n" for r in TRIPLES))
    specs = {"ladybug": f"ladybug:{root / 'lb.db'}", "oxigraph": f"oxigraph:{root / 'ox'}"}
    for spec in specs.values():
        done = cli("load", "--triples", str(triples), "--store", spec)
        assert done.returncode == 0, done.stderr[-2000:]
    return specs


def assert_refused(done):
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr[-2000:])
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr


def still_answers(spec):
    """The store opens read-only and answers (a CHECKPOINT that ran would have wedged it)."""
    from ie_service.kg.stores import open_store, parse_store_spec

    store = open_store(parse_store_spec(spec), read_only=True)
    try:
        assert store.counts().entities == 3
    finally:
        store.close()


@pytest.mark.parametrize("attack", [
    "COPY (MATCH (e:Entity) RETURN e.name) TO '{out}/x.csv'",
    "COPY (MATCH (e:Entity) RETURN e.name) TO 'x.csv'",  # relative: into the working folder
    "copy (MATCH (e:Entity) RETURN e.name) to '{out}/x.csv'",
    "MATCH (e:Entity) RETURN e.name; COPY (MATCH (e:Entity) RETURN e.name) TO '{out}/x.csv'",
    "EXPORT DATABASE '{out}/exported'",
    "/* read */ EXPORT DATABASE '{out}/exported'",
    "CHECKPOINT",
    "MATCH (e:Entity) SET e.name = 'x'",
    "MATCH (e:Entity) DETACH DELETE e",
    "MERGE (e:Entity {{id: 'x'}})",
    "MATCH (e:Entity) WITH e LOAD FROM '{out}/x.csv' RETURN *",
    "CALL threads=1",
    "ATTACH '{out}/other.db' AS other (dbtype lbug)",
    "INSTALL httpfs",
    "BEGIN TRANSACTION",
])
def test_ladybug_attacks_are_refused_and_write_nothing(stores, tmp_path, attack):
    out = tmp_path / "w"
    out.mkdir()
    done = cli("query", "--store", stores["ladybug"], attack.format(out=out), cwd=tmp_path)
    assert_refused(done)
    assert list(out.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["w"]
    still_answers(stores["ladybug"])


READS = [
    ("MATCH (e:Entity) RETURN e.name ORDER BY e.name", [{"e.name": "Apple"}, {"e.name": "Cupertino"},
                                                        {"e.name": "Steve Jobs"}]),
    ("MATCH (a:Entity)-[r:RELATION]->(b:Entity) WHERE r.type = 'founded by' RETURN a.name, b.name",
     [{"a.name": "Apple", "b.name": "Steve Jobs"}]),
    ("MATCH (d:Document) OPTIONAL MATCH (d)-[:MENTIONS]->(e) WITH d, count(e) AS n RETURN d.id, n",
     [{"d.id": "d1", "n": 3}]),
    ("UNWIND ['Apple', 'Nobody'] AS name MATCH (e:Entity {name: name}) RETURN e.name", [{"e.name": "Apple"}]),
    ("MATCH (e:Entity) WHERE e.name = 'COPY (x) TO' RETURN e.name", []),  # a verb inside a string is text
    ("MATCH (e:Entity) RETURN e.name AS `set` ORDER BY `set` SKIP 2 LIMIT 1", [{"set": "Steve Jobs"}]),
    ("MATCH p = (a:Entity)-[:RELATION*1..2]->(b:Entity) RETURN count(p) AS n", [{"n": 2}]),
    ("MATCH (a:Entity) RETURN a.name, COUNT { MATCH (a)-[:RELATION]->() } AS deg ORDER BY deg DESC LIMIT 1",
     [{"a.name": "Apple", "deg": 2}]),
]


@pytest.mark.parametrize("query,rows", READS)
def test_ladybug_reads_still_run(stores, query, rows):
    done = cli("query", "--store", stores["ladybug"], query)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [json.loads(line) for line in done.stdout.splitlines()] == rows


def test_the_plan_layer_refuses_write_operators(tmp_path):
    """Layer 2 alone: the store's own EXPLAIN of writes names operators not on the list."""
    import ladybug

    db = ladybug.Database(str(tmp_path / "db"))
    conn = ladybug.Connection(db)
    conn.execute("CREATE NODE TABLE T(id STRING PRIMARY KEY, name STRING)")

    def plan(q):
        return "\n".join(str(c) for row in conn.execute("EXPLAIN " + q).get_all() for c in row)

    for write, operator in [(f"COPY (MATCH (t:T) RETURN t.id) TO '{tmp_path}/x.csv'", "COPY_TO"),
                            ("MATCH (t:T) SET t.name = 'x'", "SET_PROPERTY"), ("CREATE (t:T {id: 'x'})", "INSERT"),
                            ("CHECKPOINT", "TRANSACTION"), ("MATCH (t:T) DELETE t", "DELETE"),
                            ("MERGE (t:T {id: 'y'})", "MERGE")]:
        with pytest.raises(ReadOnlyViolation, match=operator):
            check_cypher_plan(plan(write))
    check_cypher_plan(plan("MATCH (t:T) RETURN t.id ORDER BY t.id LIMIT 3"))
    assert not (tmp_path / "x.csv").exists()
    db.close()


@pytest.mark.parametrize("text", ["MATCH (n) RETURN n.copy", "MATCH (n:CALL) RETURN n", "RETURN 'LOAD FROM x'",
                                  "MATCH (n) RETURN n // DELETE everything"])
def test_the_lexical_layer_reads_words_in_context(text):
    check_cypher_text(text)  # a property, a label, a string, a comment: not clauses


# ---- Oxigraph: SPARQL


@pytest.fixture
def recorder():
    with tiny_server(lambda method, path, body: (200, {"head": {"vars": []}, "results": {"bindings": []}})) as r:
        yield r


SPARQL_ATTACKS = [
    "SELECT * WHERE {{ SERVICE <{url}/sparql> {{ ?s ?p ?o }} }}",
    "SELECT * WHERE {{ ?s ?p ?o OPTIONAL {{ SERVICE SILENT <{url}/sparql> {{ ?s ?q ?x }} }} }}",
    "ASK {{ FILTER EXISTS {{ SERVICE <{url}/sparql> {{ ?a ?b ?c }} }} }}",
    "SELECT * WHERE {{ {{ SELECT ?s WHERE {{ SERVICE <{url}/sparql> {{ ?s ?p ?o }} }} }} }}",
    "select * where {{ service <{url}/sparql> {{ ?s ?p ?o }} }}",
    "LOAD <{url}/data.nt>",
    "INSERT DATA {{ <urn:a> <urn:b> <urn:c> }}",
    "DELETE WHERE {{ ?s ?p ?o }}",
    "CLEAR ALL",
    "SELECT * WHERE {{ ?s ?p ?o }} ; DROP ALL",
]


@pytest.mark.parametrize("attack", SPARQL_ATTACKS)
def test_oxigraph_attacks_are_refused_and_call_no_server(stores, recorder, attack):
    done = cli("query", "--store", stores["oxigraph"], attack.format(url=recorder.url))
    assert_refused(done)
    assert recorder.requests == []
    still_answers(stores["oxigraph"])


@pytest.mark.parametrize("query", [
    "PREFIX ie: <https://ie-service.example/kg/> SELECT (COUNT(*) AS ?n) WHERE { ?r a ie:Relation }",
    "ASK { ?s ?p ?o }", "CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o } LIMIT 1",
    "DESCRIBE <https://ie-service.example/kg/Relation>",
    'SELECT ?s WHERE { ?s ?p "SERVICE <http://x>" }',  # the word inside a literal is text
])
def test_sparql_reads_pass(query):
    check_sparql(query)
