"""Checks on a client's ``json_schema`` before the engine sees it.

vLLM validates a schema with xgrammar and raises on the bad ones, but (measured on 0.32)
a ``$ref`` that loops still compiles and the request ends with ``finish_reason: "error"``
and no text, and grammar compilation has no time limit (an ``enum`` of 100k strings took
minutes; the cost grows faster than linearly: 10k random strings 2.6 s, 30k 23 s). So:

* :func:`check_json_schema` (pure Python, cheap): size, ``enum``/``const`` values, depth,
  counts (``minItems``, ``maxLength``, ...), number limits and regex repetition (issue 31:
  the compile cost bounded by the schema's shape; for clients' schemas: ``/generate`` checks
  them when it reads the request), the JSON
  Schema meta-schema, local ``$ref`` targets, and that the schema has at least one finite
  instance (no ``$ref`` loop without a way out).
* :class:`GrammarCompileGuard`: compiles the schema with xgrammar for the served
  tokenizer in a thread of its own, with a time limit (xgrammar releases the GIL, so the
  event loop keeps serving); an overrunning compile is quarantined (see the class). The
  result is cached by xgrammar, so a schema sent again costs nothing.

Both raise :class:`~ie_service.errors.InvalidJsonSchema` (422); congestion of the
compiler raises :class:`GrammarBusy` (503 with Retry-After).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from ..errors import InvalidJsonSchema, Unavailable

log = logging.getLogger(__name__)

MAX_SCHEMA_BYTES = 32 * 1024
MAX_ENUM_VALUES = 1000  # enum entries + const values, whole schema
MAX_DEPTH = 64  # vLLM 0.32 refuses deeper (MAX_STRUCTURED_OUTPUT_JSON_NESTING)
# issue 31: no count may exceed the longest answer in tokens (max_tokens <= 32768): a larger
# minimum can never be met, a larger maximum never reached
MAX_SCHEMA_COUNT = 32768
COUNT_KEYWORDS = ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties")
# JSON's exact-integer range (RFC 8259 interoperability); xgrammar fails past int64 (500-ish
# "Check failed" text) and builds a digit grammar from each limit
MAX_SCHEMA_NUMBER = 2**53
NUMBER_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
# xgrammar 0.2.8 expands a regex repetition with a cost quadratic in its count (measured,
# pattern conversion alone: a{1000} 0.05 s, a{3000} 0.46 s, a{10000} 5.6 s): each count is
# capped, and so is the size of all the schema's patterns with every repetition expanded
# ((a{1000}){1000} is 10^6; ten a{1000} are 10^4, 0.5 s)
MAX_PATTERN_REPEAT = 1000
MAX_PATTERN_SIZE = 10_000
_QUANTIFIER = re.compile(r"\{(\d+)(,(\d*))?\}")
COMPILE_TIMEOUT_S = 10.0
CPU_SHARE_OF_OWN_FAULT = 0.25  # a compile that overran with less CPU than this share was starved
_XGRAMMAR_PREFIX = re.compile(r"^\[[\d:]+\] \S+:\d+: ")

_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SUBSCHEMA_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains",
                  "propertyNames", "unevaluatedProperties", "unevaluatedItems", "additionalItems")


# issue 20: an allow-list of what xgrammar enforces while decoding (measured on 0.2.8 by
# comparing the grammar with and without each keyword): anything else would be accepted
# and silently ignored (``if/then/else``, ``dependentRequired``, ``$dynamicRef``, ``not``,
# ``contains``, ``uniqueItems``, ... gave 200s whose output breaks the schema)
ENFORCED_KEYWORDS = frozenset({
    "type", "enum", "const", "nullable",
    "properties", "required", "additionalProperties", "unevaluatedProperties",
    "patternProperties", "propertyNames", "minProperties", "maxProperties",
    "items", "prefixItems", "additionalItems", "unevaluatedItems", "minItems", "maxItems",
    "anyOf", "oneOf", "allOf", "$ref", "$defs", "definitions",
    "pattern", "minLength", "maxLength", "format",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
})
ANNOTATION_KEYWORDS = frozenset({
    "$schema", "$id", "$anchor", "$comment", "title", "description", "default", "examples",
    "deprecated", "readOnly", "writeOnly",
})
STRING_FORMATS = frozenset({  # vLLM's STRING_SUPPORTED_FORMATS (xgrammar backend)
    "email", "date", "time", "date-time", "duration", "ipv4", "ipv6", "hostname", "uuid",
    "uri", "uri-reference", "uri-template",
})


def check_json_schema(schema: Any, *, limits: bool = True) -> None:
    """Raise :class:`InvalidJsonSchema` unless ``schema`` is a JSON schema (of reasonable
    size: ``limits``, for schemas from clients) whose ``$ref``s resolve locally and which
    some finite JSON value satisfies."""
    if not isinstance(schema, dict):
        raise InvalidJsonSchema("json_schema must be a JSON object")
    try:
        size = len(json.dumps(schema, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    except (TypeError, ValueError) as exc:
        raise InvalidJsonSchema(f"json_schema is not plain JSON: {exc}") from exc
    if limits:
        _check_limits(schema, size)
        _check_keywords(schema)
    _check_meta(schema)
    _check_refs_and_finiteness(schema)


def _check_limits(schema: dict, size: int) -> None:
    if size > MAX_SCHEMA_BYTES:
        raise InvalidJsonSchema(
            f"json_schema is {size} bytes; at most {MAX_SCHEMA_BYTES} bytes are accepted "
            "(grammar compilation time grows with the schema)")
    values, depth = _count(schema)
    if depth > MAX_DEPTH:
        raise InvalidJsonSchema(f"json_schema nests {depth} levels deep; at most {MAX_DEPTH}")
    if values > MAX_ENUM_VALUES:
        raise InvalidJsonSchema(
            f"json_schema lists {values} enum/const values; at most {MAX_ENUM_VALUES} are accepted")
    _check_bounds(schema)


def _count(root: Any) -> tuple[int, int]:
    """(enum/const values, nesting depth) of a JSON value; iterative, so any depth the
    JSON parser accepted is measured without recursion."""
    values, deepest = 0, 0
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, dict):
            if isinstance(node.get("enum"), list):
                values += len(node["enum"])
            if "const" in node:
                values += 1
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return values, deepest


def _subschemas(node: dict) -> list[tuple[str, Any]]:
    """(JSON pointer suffix, subschema) of every place in ``node`` that holds a schema."""
    out: list[tuple[str, Any]] = []
    for key in _SUBSCHEMA_MAPS:
        if isinstance(node.get(key), dict):
            out += [(f"/{key}/{name}", child) for name, child in node[key].items()]
    for key in _SUBSCHEMA_LISTS:
        if isinstance(node.get(key), list):
            out += [(f"/{key}/{i}", child) for i, child in enumerate(node[key])]
    for key in _SUBSCHEMA_ONE:
        if key in node:
            child = node[key]
            if key == "items" and isinstance(child, list):  # draft 4-7 tuple form
                out += [(f"/items/{i}", c) for i, c in enumerate(child)]
            else:
                out.append((f"/{key}", child))
    return out


def _nodes(root: dict) -> Iterator[tuple[str, dict]]:
    """(JSON pointer, subschema) of every object subschema of ``root``; iterative."""
    stack: list[tuple[str, Any]] = [("", root)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, dict):
            yield where or "(root)", node
            stack += [(where + suffix, child) for suffix, child in _subschemas(node)]


def _check_keywords(root: dict) -> None:
    """Refuse (naming it) the first keyword the grammar would not enforce."""
    for where, node in _nodes(root):
        for key in node:
            if key not in ENFORCED_KEYWORDS and key not in ANNOTATION_KEYWORDS:
                raise InvalidJsonSchema(
                    f"json_schema keyword {key!r} at {where} is not enforced by the "
                    "grammar engine (the output could break it); supported: "
                    + ", ".join(sorted(ENFORCED_KEYWORDS)))
        if "format" in node and node["format"] not in STRING_FORMATS:
            raise InvalidJsonSchema(
                f"json_schema format {node['format']!r} at {where} is not enforced; "
                f"supported formats: {', '.join(sorted(STRING_FORMATS))}")
        if isinstance(node.get("allOf"), list) and len(node["allOf"]) > 1:
            raise InvalidJsonSchema(
                f"json_schema keyword 'allOf' at {where} with more than one schema is "
                "not fully enforced by the grammar engine; merge them into one schema")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_bounds(root: dict) -> None:
    """Counts, number limits and regex repetition within the caps (issue 31); the sizes of
    all patterns (``pattern`` and ``patternProperties`` keys) are added up."""
    pattern_total = 0
    for where, node in _nodes(root):
        for key in COUNT_KEYWORDS:
            if _is_number(node.get(key)) and node[key] > MAX_SCHEMA_COUNT:
                raise InvalidJsonSchema(f"json_schema {key} at {where} is {node[key]}; at most "
                                        f"{MAX_SCHEMA_COUNT} (the longest answer, in tokens)")
        for key in NUMBER_KEYWORDS:
            value = node.get(key)
            if _is_number(value) and not abs(value) <= MAX_SCHEMA_NUMBER:  # NaN too
                raise InvalidJsonSchema(f"json_schema {key} at {where} is {value}; it must lie "
                                        f"within ±2^53 ({MAX_SCHEMA_NUMBER})")
        patterns = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        if isinstance(node.get("patternProperties"), dict):
            patterns += list(node["patternProperties"])
        for pattern in patterns:
            try:
                pattern_total += pattern_size(pattern)
            except ValueError as exc:
                raise InvalidJsonSchema(f"json_schema pattern at {where}: {exc}") from None
            if pattern_total > MAX_PATTERN_SIZE:
                raise InvalidJsonSchema(
                    f"json_schema patterns (at {where} and before) expand to over {MAX_PATTERN_SIZE} "
                    "characters with their repetitions counted (e.g. (a{100}){100} is 10000); "
                    "use fewer or shorter repetitions")


def pattern_size(pattern: str) -> int:
    """The size of a regex with every counted repetition expanded (``a{3}`` is 3,
    ``(ab{2}){3}`` is 9; ``*``, ``+``, ``?`` count once). ValueError for a count over
    :data:`MAX_PATTERN_REPEAT`."""
    groups, last, i = [0], 0, 0  # the size of each open group; of the atom a count repeats
    while i < len(pattern):
        char = pattern[i]
        quantifier = _QUANTIFIER.match(pattern, i) if char == "{" else None
        if quantifier:
            digits = quantifier[3] or quantifier[1]
            count = int(digits) if len(digits) <= 9 else 10**9
            if count > MAX_PATTERN_REPEAT:
                raise ValueError(f"it repeats {count} times ({quantifier[0]}); at most {MAX_PATTERN_REPEAT}")
            groups[-1] += last * (count - 1)
            last *= count
            i = quantifier.end()
            continue
        if char == "(":
            groups.append(0)
            last = 0
        elif char == ")" and len(groups) > 1:
            last = groups.pop()
            groups[-1] += last
        elif char in "|*+?":
            last = 0 if char == "|" else last
        else:
            i = _class_end(pattern, i) if char == "[" else i + (char == "\\")
            last = 1
            groups[-1] += 1
        i += 1
    return sum(groups)


def _class_end(pattern: str, start: int) -> int:
    """The index of the ``]`` closing the character class that opens at ``start``."""
    i = start + 1
    while i < len(pattern) and pattern[i] != "]":
        i += 2 if pattern[i] == "\\" else 1
    return i


def _check_meta(schema: dict) -> None:
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - jsonschema comes with vllm / fastapi
        return
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise InvalidJsonSchema(f"json_schema is not a valid JSON Schema at {where}: {exc.message}") from None


# --- $ref resolution and "has a finite instance" ---------------------------------------------


def _resolve(root: dict, ref: str) -> Any:
    if not isinstance(ref, str) or not ref.startswith("#"):
        raise InvalidJsonSchema(f"json_schema $ref {ref!r}: only local references (#/...) are supported")
    node: Any = root
    pointer = ref[1:]
    if pointer and not pointer.startswith("/"):
        raise InvalidJsonSchema(f"json_schema $ref {ref!r}: not a JSON pointer")
    for raw in pointer.split("/")[1:] if pointer else []:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise InvalidJsonSchema(f"json_schema $ref {ref!r} points to nothing")
    if not isinstance(node, (dict, bool)):
        raise InvalidJsonSchema(f"json_schema $ref {ref!r} does not point to a schema")
    return node


def _check_refs_and_finiteness(root: dict) -> None:
    """Every ``$ref`` resolves; and the root has a finite instance, computed as a least
    fixpoint: a subschema is satisfiable by a finite value when its ``$ref`` target is,
    all its required properties are, its array may be empty or its items are, all of
    ``allOf`` and one of ``anyOf``/``oneOf`` are. ``{"$ref": "#"}``, ``a → b → a`` and a
    required property that recurses into itself have none (vLLM then fails the request
    with no text)."""
    nodes: list[dict] = []
    seen: set[int] = set()
    stack: list[Any] = [root]  # iterative: no RecursionError at any depth
    while stack:
        node = stack.pop()
        if not isinstance(node, dict) or id(node) in seen:
            continue
        seen.add(id(node))
        nodes.append(node)
        if "$ref" in node:
            _resolve(root, node["$ref"])
        stack += [child for _, child in _subschemas(node)]
    finite: dict[int, bool] = {id(n): False for n in nodes}

    def ok(node: Any) -> bool:
        if isinstance(node, bool):
            return node
        if not isinstance(node, dict):
            return True
        return finite.get(id(node), True)

    def evaluate(node: dict) -> bool:
        if "$ref" in node and not ok(_resolve(root, node["$ref"])):
            return False
        if isinstance(node.get("allOf"), list) and not all(ok(s) for s in node["allOf"]):
            return False
        for key in ("anyOf", "oneOf"):
            if isinstance(node.get(key), list) and node[key] and not any(ok(s) for s in node[key]):
                return False
        props = node.get("properties") if isinstance(node.get("properties"), dict) else {}
        for name in node.get("required") or []:
            if isinstance(name, str) and name in props and not ok(props[name]):
                return False
        min_items = node.get("minItems", 0)
        if isinstance(min_items, int) and min_items > 0 and "items" in node and not ok(node["items"]):
            return False
        if isinstance(node.get("prefixItems"), list):
            required_prefix = node["prefixItems"][: min_items if isinstance(min_items, int) else 0]
            if not all(ok(s) for s in required_prefix):
                return False
        return True

    changed = True
    while changed:
        changed = False
        for node in nodes:
            if not finite[id(node)] and evaluate(node):
                finite[id(node)] = True
                changed = True
    if not finite[id(root)]:
        raise InvalidJsonSchema(
            "json_schema has no finite instance: its $ref references loop with no way out "
            "(e.g. a schema that is only a reference to itself, or a required property that "
            "recurses forever)")


class GrammarBusy(Unavailable):
    """Grammar compilation is congested by other schemas (503, Retry-After): not this
    client's fault."""


class _Compile:
    """One compile in its own thread; ``overran`` once it passed the time limit."""

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self.overran = False
        self.cpu_clock: int | None = None

    def cpu_s(self) -> float | None:
        """CPU seconds the compile thread has used (None where the clock is unavailable)."""
        try:
            return time.clock_gettime(self.cpu_clock) if self.cpu_clock is not None else None
        except OSError:  # the thread has ended
            return None


class GrammarCompileGuard:
    """Compiles client schemas with xgrammar for the engine's tokenizer, like vLLM's
    xgrammar backend does, within a time limit, isolated from each other (issue 20):

    * each compile runs in a thread of its own, at most ``workers`` at a time. One that
      overruns its limit is *quarantined*: its slot is freed at once (xgrammar cannot be
      interrupted, the thread finishes in the background, uncounted), its schema is
      remembered as slow (sent again: 422 at once), and while ``max_overrunning`` such
      threads still run new schemas get 503 rather than piling up more;
    * who is at fault: at the limit, a compile that used at least a quarter of it in CPU
      time is the schema's (422); one that could not get the CPU, or waited for a slot, is the
      server's (503 with Retry-After: :class:`GrammarBusy`).
    """

    def __init__(self, tokenizer: Any, vocab_size: int | None = None, *, any_whitespace: bool = False,
                 timeout_s: float = COMPILE_TIMEOUT_S, workers: int = 2, max_overrunning: int = 2) -> None:
        self._tokenizer = tokenizer
        self._vocab_size = vocab_size
        self._any_whitespace = any_whitespace
        self.timeout_s = timeout_s
        self.workers = workers
        self.max_overrunning = max_overrunning
        self._compiler = None
        self._disabled = False  # pre-compilation impossible here: vLLM's own check remains
        self._lock = threading.Lock()
        self._passed: OrderedDict[str, None] = OrderedDict()  # schemas already accepted
        self._slow: OrderedDict[str, None] = OrderedDict()  # schemas that overran: 422 at once
        self._slots: asyncio.Semaphore | None = None
        self._running: set[_Compile] = set()  # compile threads not finished (incl. overrunning)

    @property
    def overrunning(self) -> int:
        return sum(1 for c in self._running if c.overran)

    def _ensure_compiler(self) -> None:
        with self._lock:
            if self._compiler is None:
                import xgrammar as xgr

                info = xgr.TokenizerInfo.from_huggingface(self._tokenizer, vocab_size=self._vocab_size)
                self._compiler = xgr.GrammarCompiler(info, max_threads=1, cache_limit_bytes=64 * 1024**2)

    def _compile(self, text: str) -> None:
        self._ensure_compiler()
        self._compiler.compile_json_schema(text, any_whitespace=self._any_whitespace)

    async def check(self, schema: dict) -> None:
        try:
            text = json.dumps(schema, ensure_ascii=False, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise InvalidJsonSchema(f"json_schema is not plain JSON: {exc}") from exc
        if text in self._passed:  # extraction sends the same few schemas again and again
            self._passed.move_to_end(text)
            return
        if text in self._slow:
            raise InvalidJsonSchema(self._slow_message(before=True))
        # the size caps are for clients' schemas (checked where the request is read, see
        # api/wire.py); extraction's own schemas can be larger and are trusted
        check_json_schema(schema, limits=False)
        if not self._disabled:
            await self._compile_within_limit(text, schema)
        self._passed[text] = None
        if len(self._passed) > 512:
            self._passed.popitem(last=False)

    def _slow_message(self, before: bool = False) -> str:
        return (f"json_schema took over {self.timeout_s:g}s to compile into a grammar"
                f"{' (when it was sent before)' if before else ''}; "
                "simplify it (fewer enum values, alternatives, properties or shorter repetitions)")

    async def _compile_within_limit(self, key: str, schema: dict) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.workers)
        if self.overrunning >= self.max_overrunning:
            raise GrammarBusy(f"grammar compilation is congested ({self.overrunning} slow schemas still "
                              "compiling); retry later")
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout=self.timeout_s)
        except asyncio.TimeoutError:
            raise GrammarBusy(f"no grammar compiler free within {self.timeout_s:g}s; retry later") from None
        try:
            await asyncio.to_thread(self._ensure_compiler)  # once; not counted against the schema
            job = _Compile()
            future: asyncio.Future = loop.create_future()
            text = json.dumps(schema, ensure_ascii=False)

            def run() -> None:
                try:
                    job.cpu_clock = time.pthread_getcpuclockid(threading.get_ident())
                except (AttributeError, OSError):
                    pass
                outcome: BaseException | None = None
                try:
                    self._compile(text)
                except BaseException as exc:  # noqa: BLE001 - handed to the awaiting request
                    outcome = exc
                finally:
                    try:
                        loop.call_soon_threadsafe(self._finished, job, future, outcome)
                    except RuntimeError:  # the loop is gone (shutting down): nobody waits
                        pass

            job.thread = threading.Thread(target=run, name="schema-compile", daemon=True)
            self._running.add(job)
            job.thread.start()
            try:
                await asyncio.wait_for(asyncio.shield(future), timeout=self.timeout_s)
            except asyncio.TimeoutError:
                job.overran = True  # quarantined: its slot is freed below, it ends on its own
                cpu = job.cpu_s()
                if cpu is not None and cpu < self.timeout_s * CPU_SHARE_OF_OWN_FAULT:
                    log.warning("schema compile overran %gs with %.1fs of CPU: congestion", self.timeout_s, cpu)
                    raise GrammarBusy(f"grammar compilation took over {self.timeout_s:g}s because the "
                                      "server is busy; retry later") from None
                self._slow[key] = None
                if len(self._slow) > 256:
                    self._slow.popitem(last=False)
                raise InvalidJsonSchema(self._slow_message()) from None
            except Exception:  # the compile's own error: translated below
                pass
        finally:
            self._slots.release()
        self._raise_compile_error(future)

    def _finished(self, job: _Compile, future: asyncio.Future, outcome: BaseException | None) -> None:
        self._running.discard(job)
        if job.overran and outcome is None:
            log.info("a quarantined schema compile finished")
        if not future.done():
            if outcome is None:
                future.set_result(None)
            else:
                future.set_exception(outcome)

    def _raise_compile_error(self, future: asyncio.Future) -> None:
        exc = future.exception()
        if exc is None:
            return
        if isinstance(exc, (ImportError, AttributeError, TypeError)):
            # the backend's tokenizer or xgrammar is not what we expect: leave the
            # check to vLLM rather than refusing every schema
            log.warning("schema pre-compilation unavailable: %s", exc)
            self._disabled = True
            return
        # xgrammar reports a bad schema as RuntimeError
        # "[01:39:26] /project/cpp/json_schema_converter.cc:4944: Unsupported type ..."
        message = _XGRAMMAR_PREFIX.sub("", " ".join(str(exc).split()))
        raise InvalidJsonSchema(f"json_schema cannot be compiled into a grammar: {message}") from None

    def close(self) -> None:
        """Nothing to stop: compile threads are daemons and end with their compile."""
