"""``ladybug:PATH``: an on-disk LadybugDB (the maintained Kùzu fork) property graph, queried
with Cypher. ``kg query`` opens it read-only and runs only what
:func:`~ie_service.kg.stores.read_only.check_cypher` lets through.

``load`` runs, in one transaction: the schema (Kùzu needs typed tables before any data:
:data:`SCHEMA`), a clear of every node and edge, then the statements of
:func:`~ie_service.kg.export.to_cypher` as exported, parameters and all (rows sent in
chunks; the confidence cast to DOUBLE)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ladybug
from tqdm import tqdm

from ...errors import UserInputError, one_line
from ..export import to_cypher
from ..graph import Graph
from . import Counts, QueryError, chunks
from .read_only import check_cypher

SCHEMA = [
    "CREATE NODE TABLE IF NOT EXISTS Entity(id STRING PRIMARY KEY, name STRING, type STRING, confidence DOUBLE)",
    "CREATE NODE TABLE IF NOT EXISTS Document(id STRING PRIMARY KEY)",
    "CREATE REL TABLE IF NOT EXISTS MENTIONS(FROM Document TO Entity)",
    "CREATE REL TABLE IF NOT EXISTS RELATION(FROM Entity TO Entity, type STRING, doc_id STRING, "
    "confidence DOUBLE)",
    # a store made before confidences were exported gets the columns
    "ALTER TABLE Entity ADD IF NOT EXISTS confidence DOUBLE",
    "ALTER TABLE RELATION ADD IF NOT EXISTS confidence DOUBLE",
]
CLEAR = "MATCH (n) DETACH DELETE n"

COUNT_QUERIES = {
    "entities": "MATCH (e:Entity) RETURN count(e) AS n",
    "relations": "MATCH ()-[r:RELATION]->() RETURN count(r) AS n",
    "documents": "MATCH (d:Document) RETURN count(d) AS n",
    "mentions": "MATCH ()-[m:MENTIONS]->() RETURN count(m) AS n",
}
CHUNK_ROWS = 10_000


class LadybugStore:
    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = path
        try:
            self.db = ladybug.Database(str(path), read_only=read_only)
            self.conn = ladybug.Connection(self.db)
        except RuntimeError as exc:
            raise UserInputError(f"{path}: cannot open as a ladybug store ({one_line(exc)})") from None

    def run(self, query: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Rows of one Cypher statement (of the last, when ``query`` has several)."""
        try:
            result = self.conn.execute(query, parameters or {})
        except RuntimeError as exc:
            raise QueryError(f"Cypher: {one_line(exc)}") from None
        if isinstance(result, list):  # several statements: the last one's rows
            result = result[-1]
        return result.rows_as_dict().get_all()

    def load(self, graph: Graph, progress: bool = True) -> Counts:
        statements = to_cypher(graph)
        total = sum(len(s["parameters"]["rows"]) for s in statements)
        self.run("BEGIN TRANSACTION")
        try:
            for ddl in SCHEMA:
                self.run(ddl)
            self.run(CLEAR)
            with tqdm(total=total, desc="ladybug load", unit="row", disable=None if progress else True) as bar:
                for s in statements:
                    # Kùzu types a parameter column of nulls only as STRING: cast the
                    # confidence (Neo4j's Cypher has no CAST, so the export leaves it out)
                    query = s["query"].replace("= row.confidence", "= CAST(row.confidence AS DOUBLE)")
                    for rows in chunks(s["parameters"]["rows"], CHUNK_ROWS):
                        self.run(query, {**s["parameters"], "rows": rows})
                        bar.update(len(rows))
        except BaseException:
            self.run("ROLLBACK")
            raise
        self.run("COMMIT")
        return self.counts()

    def explain(self, text: str) -> str:
        """The store's plan of one statement (``EXPLAIN``), as text."""
        try:
            result = self.conn.execute("EXPLAIN " + text)
            rows = result.get_all()
        except (RuntimeError, AttributeError) as exc:  # AttributeError: several statements
            raise QueryError(f"Cypher: {one_line(exc).replace('EXPLAIN ', '', 1)}") from None
        return "\n".join(str(cell) for row in rows for cell in row)

    def query(self, text: str) -> list[dict[str, Any]]:
        """Rows of a read query; anything else is refused before it runs
        (:mod:`~ie_service.kg.stores.read_only`)."""
        check_cypher(text, self.explain)
        return self.run(text)

    def counts(self) -> Counts:
        return Counts(**{what: self.run(q)[0]["n"] for what, q in COUNT_QUERIES.items()})

    def close(self) -> None:
        self.conn.close()
        self.db.close()
