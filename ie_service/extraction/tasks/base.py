"""The contract every extraction task fulfils, and helpers shared by tasks.

A task owns everything about itself: how a request names its labels, the prompt's schema,
the JSON schema enforced while decoding, the parser, the typed records and their grounding,
and the mapping of gold documents (evaluation tuples, training answers). Routes, wire
models, metrics labels, CLI choices and evaluation are derived from the registry of tasks.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from ...gold import GoldDoc
from ..chunking import Chunk
from ..constraints import MAX_ITEMS, MAX_SPAN_CHARS
from ..grounding import locate
from ..parsing import Parsed
from ..records import Span

L = TypeVar("L", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
RESERVED_FIELDS = {"language", "raw_output", "warnings", "stats", "template"}


class TaskError(TypeError):
    """A task class that does not fulfil the contract (raised when it is registered)."""


class NotExpressible(ValueError):
    """A gold document that the task's answer grammar cannot express (over a bound, or a
    span not in the text); training leaves such documents out."""


class Grounder:
    """Locates spans of one chunk in the full text and counts the ones it cannot find."""

    def __init__(self, text: str, chunk: Chunk) -> None:
        self.text, self.chunk = text, chunk
        self.ungrounded = 0
        self.self_relations = 0  # RE: head and tail the same span, dropped

    def span(self, value: str, cls: type[Span] = Span, **fields: Any) -> Span:
        where = locate(value, self.chunk.text)
        if where is not None:
            start, end = where[0] + self.chunk.offset, where[1] + self.chunk.offset
        else:
            where = locate(value, self.text)  # the model may quote a neighbouring chunk
            start, end = where if where else (None, None)
        if where is None:
            self.ungrounded += 1
            return cls(text=value, grounded=False, **fields)
        return cls(text=self.text[start:end], start=start, end=end, grounded=True, **fields)


class Task(ABC, Generic[L]):
    """One extraction task. ``L`` is its label type (what ``labels`` returns).

    Subclasses set the class attributes and implement every abstract method; the registry
    instantiates and checks them, so an incomplete task fails when it is registered."""

    name: ClassVar[str]  # /extract/<name>, CLI --task, metrics label, a template's "task"
    labels_per_prompt: ClassVar[int]  # labels per prompt when a schema is split (OneKE's sizes)
    records_field: ClassVar[str]  # the response's key for the records ("entities")
    record: ClassVar[type[BaseModel]]  # one record on the wire
    wire_schema: ClassVar[Any]  # type of the request's "schema" (validated by pydantic)
    schema_help: ClassVar[str] = ""  # OpenAPI description of "schema"
    summary: ClassVar[str] = ""  # OpenAPI description of the route
    templates_dir: ClassVar[Path | None] = None  # templates shipped with the task, if any

    @property
    def title(self) -> str:
        """Prefix of the task's wire model names (``NERRequest``)."""
        return type(self).__name__

    # --- request side ----------------------------------------------------------------

    @abstractmethod
    def labels(self, raw: Any) -> list[L]:
        """The request's schema as label objects; SchemaError when it cannot be understood."""

    @abstractmethod
    def prompt_schema(self, group: list[L]) -> Any:
        """What a OneKE-style prompt shows as ``schema`` for one label group."""

    def labels_text(self, group: list[L]) -> str:
        """The labels as words, for a KnowLM-style instruction's ``{labels}``."""
        return ", ".join(label.name for label in group)

    @abstractmethod
    def json_schema(self, group: list[L], shape: str = "full") -> dict[str, Any]:
        """The answer's JSON schema, enforced while decoding (cache it: one grammar each).
        ``shape``: the model's answer shape, ``full`` (every label a key) or ``compact``
        (only labels with something, in order, lists non-empty; see ``constraints``). The
        extractor passes ``shape`` only for a compact model, so a task that knows only
        ``full`` keeps working with every other model."""

    def answer_grammar(self, group: list[L], shape: str = "full") -> str | None:
        """Grounded decoding: ``json_schema(group, shape)``'s shape as xgrammar EBNF rules
        (``root`` and what it needs) whose span values use the rule ``span`` (a quoted run of
        the chunk's text, see ``extraction.grounded_grammar``). None: the task has no
        grounded form and keeps its JSON schema."""
        return None

    @abstractmethod
    def parse(self, text: str, group: list[L]) -> Parsed:
        """Model output → raw records (strings); never raises."""

    @abstractmethod
    def build(self, records: list[Any], group: list[L], ground: Grounder) -> list[BaseModel]:
        """Raw records → typed records located in the text."""

    @abstractmethod
    def key(self, record: Any) -> tuple:
        """Identity of a record, for merging chunks and label groups."""

    @abstractmethod
    def grounded_only(self, record: Any) -> Any | None:
        """The record without ungrounded spans, or None if it cannot stand without them."""

    # --- gold side: evaluation and training --------------------------------------------

    @abstractmethod
    def gold_schema(self, docs: list[GoldDoc]) -> Any:
        """The request schema naming every label a gold set uses."""

    @abstractmethod
    def gold_label_names(self, doc: GoldDoc) -> list[str]:
        """The names of the labels present in one gold document, sorted."""

    @abstractmethod
    def gold_tuples(self, doc: GoldDoc) -> dict[str, list[tuple]]:
        """Score kind → gold tuples (type first), as the scorer compares them."""

    @abstractmethod
    def predicted_tuples(self, response: dict[str, Any]) -> dict[str, list[tuple]]:
        """Score kind → tuples of a response (JSON) of this task's route."""

    @abstractmethod
    def gold_answer(self, doc: GoldDoc, group: list[L], shape: str = "full") -> dict[str, Any]:
        """The answer the constrained decoder would give for ``doc`` and one label group:
        keys are the group's labels in order (compact: those with something), the shape is
        ``json_schema(group, shape)``'s. Spans are the text's own spelling. NotExpressible
        when a bound is exceeded."""


class TriggersOnly(ABC):
    """A task that can be asked for event types and triggers only (``eval --triggers-only``)."""

    trigger_score_kinds: ClassVar[tuple[str, ...]] = ("triggers",)

    @abstractmethod
    def triggers_only(self, schema: Any, examples: list[dict]) -> tuple[Any, list[dict]]:
        """A schema and examples that ask for types and triggers but no arguments."""


def check_task(task: Task) -> None:
    """TaskError unless ``task`` has every attribute the contract needs, well formed."""
    cls = type(task)
    for attr in ("name", "labels_per_prompt", "records_field", "record", "wire_schema"):
        if not hasattr(cls, attr):
            raise TaskError(f"task {cls.__qualname__} does not set {attr!r}")
    if not isinstance(cls.name, str) or not NAME.match(cls.name):
        raise TaskError(f"task name {cls.name!r} must match {NAME.pattern} (it is a URL path and a CLI word)")
    if not isinstance(cls.labels_per_prompt, int) or cls.labels_per_prompt < 1:
        raise TaskError(f"task {cls.name!r}: labels_per_prompt must be a positive int")
    if not cls.records_field.isidentifier() or cls.records_field in RESERVED_FIELDS:
        raise TaskError(f"task {cls.name!r}: records_field {cls.records_field!r} is not a free field name")
    if not (isinstance(cls.record, type) and issubclass(cls.record, BaseModel)):
        raise TaskError(f"task {cls.name!r}: record must be a pydantic model")


# --- helpers shared by the built-in tasks ----------------------------------------------

def named(group: list[Any]) -> Any:
    """Label names, or ``{name: description}`` when any label has a description."""
    if any(label.description for label in group):
        return {label.name: label.description for label in group}
    return [label.name for label in group]


def span_key(span: Span | None) -> tuple:
    if span is None:
        return (None,)
    return (span.start, span.end) if span.grounded else (span.text.lower(),)


def gold_span(text: str, value: str, limit: int = MAX_SPAN_CHARS) -> str:
    """The text's own spelling of a gold span (as grounding finds it)."""
    where = locate(value, text)
    if where is None:
        raise NotExpressible(f"gold span {value!r} is not in the text")
    out = text[where[0]:where[1]]
    if len(out) > limit:
        raise NotExpressible(f"gold span over {limit} characters: {out[:40]!r}...")
    return out


def bounded(values: list, limit: int = MAX_ITEMS, what: str = "items of one label") -> list:
    """``values`` without repeats; NotExpressible when more than ``limit`` remain."""
    out = list(dict.fromkeys(values))
    if len(out) > limit:
        raise NotExpressible(f"more than {limit} {what}")
    return out
