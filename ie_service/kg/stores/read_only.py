"""What ``kg query`` lets through: read statements only, decided by allow-lists over what
the query *is* (parsed), not a deny-list of today's verbs.

SPARQL: rdflib's parser and algebra. Only SELECT / ASK / CONSTRUCT / DESCRIBE parse (an
update, ``LOAD``, ``;``-joined statements do not), and no ``SERVICE`` anywhere in the algebra
(a query must never make this process call another server).

Cypher (LadybugDB): two layers. (1) Lexical, before the store sees the text: one statement
that starts with MATCH / OPTIONAL MATCH / UNWIND / WITH / RETURN (or ``CALL`` of a read-only
catalogue function), no ``CALL`` / ``LOAD`` elsewhere, so nothing that acts while it is
planned (``EXPORT DATABASE`` makes its folder and ``LOAD FROM`` opens files during
``EXPLAIN``) reaches the store. (2) The store's own planner: ``EXPLAIN`` the statement and
allow only read operators (scans, joins, filters, projections, aggregates, ordering,
limits); ``COPY_TO``, ``SET_PROPERTY``, ``INSERT``, ``DELETE``, ``MERGE``, ``TRANSACTION``
(CHECKPOINT) or any operator not on the list is refused."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from ...errors import UserInputError


class ReadOnlyViolation(UserInputError):
    """A query that is not a read: refused before it runs (exit 2)."""


# ---- SPARQL

SPARQL_FORMS = {"SelectQuery", "AskQuery", "ConstructQuery", "DescribeQuery"}


def _names(node: object) -> Iterator[str]:
    """Every algebra / parse node name under ``node`` (iterative: no recursion limit)."""
    from rdflib.plugins.sparql.parserutils import CompValue

    stack, seen = [node], set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, CompValue):
            yield item.name
            stack.extend(item.values())
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set)) or type(item).__name__ == "ParseResults":
            stack.extend(item)


def check_sparql(text: str) -> None:
    """:class:`ReadOnlyViolation` unless ``text`` is one SELECT / ASK / CONSTRUCT / DESCRIBE
    query with no SERVICE clause anywhere."""
    from rdflib.plugins.sparql.algebra import translateQuery
    from rdflib.plugins.sparql.parser import parseQuery

    try:
        parsed = parseQuery(text)
        algebra = translateQuery(parsed).algebra
    except Exception as exc:  # pyparsing / rdflib raise many types for a bad query
        first = " ".join(str(exc).split())[:200]
        raise ReadOnlyViolation(f"SPARQL: only one SELECT, ASK, CONSTRUCT or DESCRIBE query is "
                                f"allowed (kg query is read-only): {first}") from None
    if algebra.name not in SPARQL_FORMS:
        raise ReadOnlyViolation(f"SPARQL: {algebra.name} is not a read query")
    names = set(_names(algebra)) | set(_names(parsed))
    if "ServiceGraphPattern" in names:
        raise ReadOnlyViolation("SPARQL: SERVICE is refused (kg query never calls another server)")


# ---- Cypher

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>//[^\n]*|/\*.*?(?:\*/|\Z))
  | (?P<string>'(?:[^'\\]|\\.)*(?:'|\Z)|"(?:[^"\\]|\\.)*(?:"|\Z))
  | (?P<quoted>`(?:[^`]|``)*(?:`|\Z))
  | (?P<param>\$\w+)
  | (?P<word>[^\W\d]\w*)
  | (?P<number>\d[\w.]*)
  | (?P<punct>.)
""", re.VERBOSE | re.DOTALL)

FIRST_WORDS = {"MATCH", "OPTIONAL", "UNWIND", "WITH", "RETURN", "CALL"}
# CALL of these catalogue functions only (they read the schema); lower case as LadybugDB names them
READ_CALLS = {"show_tables", "table_info", "show_functions", "show_connection"}
# words that never appear in a read (they act while planned, or are statements of their own)
NEVER = {"CALL", "LOAD", "COPY", "EXPORT", "IMPORT", "ATTACH", "DETACH", "USE", "INSTALL",
         "UNINSTALL", "CHECKPOINT", "CREATE", "MERGE", "SET", "DELETE", "REMOVE", "DROP", "ALTER",
         "BEGIN", "COMMIT", "ROLLBACK", "EXPLAIN", "PROFILE", "FOREACH", "TRUNCATE", "COMMENT"}

# operators of LadybugDB 0.22 plans that only read (EXPLAIN box names)
READ_OPERATORS = {
    "RESULT_COLLECTOR", "PROJECTION", "FILTER", "FLATTEN", "LIMIT", "SKIP", "MULTIPLICITY_REDUCER",
    "SCAN_NODE_TABLE", "SCAN_REL_TABLE", "PRIMARY_KEY_SCAN_NODE_TABLE", "QUERY_PRIMARY_KEY_LOOKUP",
    "INDEX_LOOKUP", "HASH_JOIN_BUILD", "HASH_JOIN_PROBE", "INTERSECT_BUILD", "INTERSECT",
    "CROSS_PRODUCT", "AGGREGATE", "AGGREGATE_FINALIZE", "AGGREGATE_SCAN", "ORDER_BY",
    "ORDER_BY_MERGE", "ORDER_BY_SCAN", "TOP_K", "TOP_K_SCAN", "UNWIND", "UNION_ALL_SCAN",
    "RECURSIVE_EXTEND", "PATH_PROPERTY_PROBE", "SEMI_MASKER", "DUMMY_SINK", "EMPTY_RESULT",
    "TABLE_FUNCTION_CALL",
}
# table functions a read plan may call (READ_FTABLE: re-reading an intermediate result)
READ_TABLE_FUNCTIONS = {"READ_FTABLE"} | {name.upper() for name in READ_CALLS}
_BOX = re.compile(r"│\s*([A-Z][A-Z0-9_]*)\[\d+\]\s*│")
_FUNCTION = re.compile(r"Function:\s*([A-Za-z0-9_]+)")


def cypher_tokens(text: str) -> list[tuple[str, str]]:
    """(kind, text) of every token but spaces and comments."""
    out = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind not in ("space", "comment"):
            out.append((kind, m.group()))
    return out


def check_cypher_text(text: str) -> None:
    """Layer 1 (lexical): one statement of read clauses, no CALL / LOAD (but CALL of
    :data:`READ_CALLS`), none of :data:`NEVER`."""
    tokens = cypher_tokens(text)
    while tokens and tokens[-1] == ("punct", ";"):
        tokens.pop()
    if not tokens:
        raise ReadOnlyViolation("Cypher: empty query")
    if ("punct", ";") in tokens:
        raise ReadOnlyViolation("Cypher: one statement at a time (no ';')")
    first = tokens[0][1].upper() if tokens[0][0] == "word" else tokens[0][1]
    if first not in FIRST_WORDS:
        raise ReadOnlyViolation(f"Cypher: a read query starts with MATCH, OPTIONAL MATCH, UNWIND, "
                                f"WITH or RETURN, not {tokens[0][1]!r} (kg query is read-only)")
    for i, (kind, value) in enumerate(tokens):
        if kind != "word":
            continue
        before = tokens[i - 1][1] if i else ""
        if before in (".", ":", "|"):  # a property, a label or a relationship type
            continue
        word = value.upper()
        if word == "CALL":
            name = tokens[i + 1][1] if i + 1 < len(tokens) and tokens[i + 1][0] == "word" else ""
            if name.lower() in READ_CALLS and i + 2 < len(tokens) and tokens[i + 2][1] == "(":
                continue
            raise ReadOnlyViolation(f"Cypher: CALL is allowed only for {', '.join(sorted(READ_CALLS))}")
        if word in NEVER:
            raise ReadOnlyViolation(f"Cypher: {value} is not allowed (kg query is read-only)")


def plan_operators(plan: str) -> tuple[list[str], list[str]]:
    """(operator names, table function names) of an ``EXPLAIN`` plan."""
    return _BOX.findall(plan), [f.upper() for f in _FUNCTION.findall(plan)]


def check_cypher_plan(plan: str) -> None:
    """Layer 2: every operator of the store's plan is on :data:`READ_OPERATORS`."""
    operators, functions = plan_operators(plan)
    if not operators:
        raise ReadOnlyViolation("Cypher: the store gave no plan for this query")
    for op in operators:
        if op not in READ_OPERATORS:
            raise ReadOnlyViolation(f"Cypher: the plan has {op}, which is not a read (kg query is read-only)")
    for fn in functions:
        if fn not in READ_TABLE_FUNCTIONS:
            raise ReadOnlyViolation(f"Cypher: the plan calls {fn}, which is not a read function")


def check_cypher(text: str, explain: Callable[[str], str]) -> None:
    """Both layers; ``explain(text)`` returns the store's ``EXPLAIN`` plan of ``text``."""
    check_cypher_text(text)
    check_cypher_plan(explain(text))
