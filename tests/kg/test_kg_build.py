"""`ie-service kg build` against the real server: interrupted, resumed, nothing lost or doubled."""

import json
import signal
import subprocess
import sys

import pytest

from waits import wait_until

pytestmark = pytest.mark.engine

DOCS = [
    "Microsoft was founded by Bill Gates and Paul Allen in Albuquerque.",
    "Apple was founded by Steve Jobs in Cupertino.",
    "Amazon was founded by Jeff Bezos in Seattle.",
    "Tesla is led by Elon Musk and is located in Austin.",
]


def build_cmd(url, inp, out):
    return [sys.executable, "-m", "ie_service.cli", "kg", "build", "--input", str(inp), "--out", str(out),
            "--relations", "founded by,located in", "--url", url, "--concurrency", "1", "--max-tokens", "160"]


def test_build_interrupt_resume_export(server_url, tmp_path):
    inp = tmp_path / "docs.jsonl"
    inp.write_text("".join(json.dumps({"id": f"doc{i}", "text": t}) + "\n" for i, t in enumerate(DOCS)))
    out = tmp_path / "triples.jsonl"
    proc = subprocess.Popen(build_cmd(server_url, inp, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def first_written() -> bool:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        return out.exists() and bool(out.read_text().strip())

    wait_until(first_written, 300, interval=0.2, what="kg build's first document")
    proc.send_signal(signal.SIGKILL)  # interrupted after its first document
    proc.wait()
    first = [json.loads(x)["doc_id"] for x in out.read_text().splitlines()]
    assert 1 <= len(first) < len(DOCS)

    done = subprocess.run(build_cmd(server_url, inp, out), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts["skipped"] == len(first) and counts["docs"] == len(DOCS) - len(first)
    ids = [json.loads(x)["doc_id"] for x in out.read_text().splitlines()]
    assert sorted(ids) == [f"doc{i}" for i in range(len(DOCS))]  # all there, none twice
    for line in out.read_text().splitlines():
        for t in json.loads(line)["triples"]:
            assert t["relation"] in ("founded by", "located in")

    ttl = tmp_path / "kg.ttl"
    exported = subprocess.run([sys.executable, "-m", "ie_service.cli", "kg", "export", "--triples", str(out),
                               "--format", "turtle", "--out", str(ttl)], capture_output=True, text=True)
    assert exported.returncode == 0, exported.stderr
    from rdflib import Graph
    Graph().parse(ttl, format="turtle")

    from ie_service.kg.graph import load_graph  # the built relations come back from both stores
    built = load_graph(out)
    assert built.edges
    kg = [sys.executable, "-m", "ie_service.cli", "kg"]
    for store, query, row_key in [
            (f"oxigraph:{tmp_path / 'ox'}", "SELECT ?h ?r ?t WHERE { ?h ?p ?t . ?p "
             "<http://www.w3.org/2000/01/rdf-schema#label> ?r FILTER(CONTAINS(STR(?p), '/relation/')) }",
             lambda r: (r["h"].rsplit("/", 1)[1], r["r"], r["t"].rsplit("/", 1)[1])),
            (f"ladybug:{tmp_path / 'lb.db'}", "MATCH (h:Entity)-[r:RELATION]->(t:Entity) "
             "RETURN h.id AS h, r.type AS r, t.id AS t", lambda r: (r["h"], r["r"], r["t"]))]:
        loaded = subprocess.run(kg + ["load", "--triples", str(out), "--store", store], capture_output=True, text=True)
        assert loaded.returncode == 0, loaded.stderr[-2000:]
        rows = subprocess.run(kg + ["query", "--store", store, query], capture_output=True, text=True)
        assert rows.returncode == 0, rows.stderr[-2000:]
        got = {row_key(json.loads(line)) for line in rows.stdout.splitlines()}
        assert got == {(e.head, e.relation, e.tail) for e in built.edges}, store
