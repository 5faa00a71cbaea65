"""Loaders for public IE test sets into one gold record type.

Formats: WNUT-17 (``token<TAB>BIO``), CrossNER JSON (``sentence`` + ``entity_list``), FewFC
JSONL (``content`` + ``events[].mentions``), and the project's own JSONL (``text`` +
``entities`` / ``relations`` (or InstructIE's ``relation``) / ``events``). The data stays where it is (``../shared/data``
by default, or ``$IE_SERVICE_DATA``); any file of these formats can be given by path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..extraction.tasks import TASKS
from ..gold import GoldDoc, GoldEvent


def data_dir() -> Path:
    env = os.environ.get("IE_SERVICE_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"


NAMED = {
    "wnut17": ("wnut17/emerging.test.annotated", "bio"),
    "crossner-ai": ("crossner/ai-test.json", "crossner"),
    "crossner-music": ("crossner/music-test.json", "crossner"),
    "fewfc": ("fewfc/test_base.json", "fewfc"),
}


def load_bio(path: Path) -> list[GoldDoc]:
    docs, tokens, tags = [], [], []

    def flush() -> None:
        if tokens:
            docs.append(_bio_doc(f"{len(docs)}", tokens[:], tags[:]))
        tokens.clear()
        tags.clear()

    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            flush()
            continue
        token, _, tag = line.rstrip("\n").rpartition("\t")
        if not token:  # some files use spaces
            token, _, tag = line.strip().rpartition(" ")
        tokens.append(token)
        tags.append(tag.strip() or "O")
    flush()
    return docs


def bio_entities(tokens: list[str], tags: list[str], join: str = " ") -> list[tuple[str, str]]:
    """(text, type) of every BIO span, its tokens joined with ``join`` (an I- that does not
    continue a span of its type starts one)."""
    entities, current, ctype = [], [], None
    for token, tag in zip(tokens + [""], tags + ["O"]):
        inside = tag.startswith("I-") and ctype == tag[2:]
        if current and not inside:
            entities.append((join.join(current), ctype))
            current, ctype = [], None
        if tag.startswith("B-") or (tag.startswith("I-") and not inside):
            current, ctype = [token], tag[2:]
        elif inside:
            current.append(token)
    return entities


def _bio_doc(doc_id: str, tokens: list[str], tags: list[str]) -> GoldDoc:
    return GoldDoc(id=doc_id, text=" ".join(tokens), entities=bio_entities(tokens, tags))


def load_crossner(path: Path) -> list[GoldDoc]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [GoldDoc(id=str(i), text=d["sentence"],
                    entities=[(e["name"], e["type"]) for e in d.get("entity_list", [])])
            for i, d in enumerate(data)]


def load_fewfc(path: Path) -> list[GoldDoc]:
    docs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        events = []
        for ev in d.get("events", []):
            trigger = next((m["word"] for m in ev.get("mentions", []) if m.get("role") == "trigger"), None)
            args = [(m["role"], m["word"]) for m in ev.get("mentions", []) if m.get("role") != "trigger"]
            events.append(GoldEvent(type=ev["type"], trigger=trigger, arguments=args))
        docs.append(GoldDoc(id=str(d.get("id", len(docs))), text=d["content"], events=events))
    return docs


_JSONL_FIELDS = {"id", "text", "entities", "relations", "relation", "events"}


def load_jsonl(path: Path) -> list[GoldDoc]:
    """The project's format; fields it does not know are kept in ``extra``."""
    docs = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        d = json.loads(line)
        docs.append(GoldDoc(
            id=str(d.get("id", i)), text=d["text"],
            entities=[(e["text"], e["type"]) for e in d.get("entities", [])],
            # InstructIE / CCKS2023 write the triples under "relation"
            relations=[(r["head"], r["relation"], r["tail"])
                       for r in d.get("relations", d.get("relation", []))],
            events=[GoldEvent(type=e["type"], trigger=e.get("trigger"),
                              arguments=[(a["role"], a["text"]) for a in e.get("arguments", [])])
                    for e in d.get("events", [])],
            extra={k: v for k, v in d.items() if k not in _JSONL_FIELDS}))
    return docs


LOADERS = {"bio": load_bio, "crossner": load_crossner, "fewfc": load_fewfc, "jsonl": load_jsonl}


def sniff_format(path: Path) -> str:
    head = path.read_text(encoding="utf-8")[:2000].lstrip()
    if head.startswith("["):
        return "crossner"
    if head.startswith("{"):
        return "fewfc" if '"content"' in head.splitlines()[0] else "jsonl"
    return "bio"


def load(name_or_path: str, fmt: str | None = None) -> list[GoldDoc]:
    """A named set (``wnut17``, ``crossner-ai``, ``crossner-music``, ``fewfc``) or a file."""
    if name_or_path in NAMED:
        rel, named_fmt = NAMED[name_or_path]
        path, fmt = data_dir() / rel, fmt or named_fmt
    else:
        path = Path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(f"no dataset file at {path} (named sets: {sorted(NAMED)})")
    return LOADERS[fmt or sniff_format(path)](path)


def labels_of(docs: list[GoldDoc], task: str) -> Any:
    """The schema naming every label a dataset uses for ``task`` (entity types, relations,
    event type → roles, ...)."""
    return TASKS[task].gold_schema(docs)
