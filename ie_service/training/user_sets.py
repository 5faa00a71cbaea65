"""A user's files as training sources: one set per (file, task, language), a dev split held
out by a hash of the text, and optionally a share of the built-in training sets mixed in.

Schemas are sampled as for the built-in sets (``examples.build_examples``): the gold labels
plus distractors from the file's own label inventory for that task and language, sometimes no
gold label at all. The language of a document is detected from its text (Chinese or English),
so a mixed file trains both templates.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..extraction.extractor import detect_language
from ..extraction.tasks import TASKS, NotExpressible
from ..gold import GoldDoc
from .sources import Source, is_dev
from .user_data import BadRow, UserFile

OVER_BOUNDS = "over the answer's bounds"
USER_VARIANTS = 4  # examples per user sentence (schemas differ): small sets need more


@dataclass
class UserSet:
    source: Source
    train: list[GoldDoc]
    dev: list[GoldDoc]


def _not_read(root: Path, source: Source) -> tuple[list[GoldDoc], list[GoldDoc]]:
    raise RuntimeError(f"{source.name} is a user set: its documents are given, not read")


def expressible(task_name: str, doc: GoldDoc, labels: Any) -> str | None:
    """Why the task's answer grammar cannot hold ``doc`` (None when it can)."""
    task = TASKS[task_name]
    try:
        task.gold_answer(doc, task.labels(labels))
    except NotExpressible as exc:
        return str(exc)
    return None


def user_sets(files: list[UserFile], dev_share: float, license: str) -> list[UserSet]:
    """The sets of ``files``; documents the answer grammar cannot express become bad rows of
    their file (reason :data:`OVER_BOUNDS`)."""
    out: dict[str, UserSet] = {}
    for f in files:
        by_task: dict[str, list[tuple[int, GoldDoc]]] = {}
        for row in f.rows:
            doc = row.doc.model_copy(update={"id": f"{f.path.stem}-{row.line}"})
            for task in row.tasks:
                by_task.setdefault(task, []).append((row.line, doc))
        for task, rows in by_task.items():
            labels = TASKS[task].gold_schema([d for _, d in rows])
            for line, doc in rows:
                why = expressible(task, doc, labels) if labels else None
                if why:
                    f.bad.append(BadRow(line, OVER_BOUNDS, f"{task}: {why}"))
                    continue
                lang = detect_language(doc.text)
                name = f"{f.path.stem}-{task}-{lang}"
                if name not in out:
                    out[name] = UserSet(Source(name, task, lang, license, (f.path.name,), _not_read), [], [])
                (out[name].dev if is_dev(doc.text, dev_share) else out[name].train).append(doc)
        f.bad.sort(key=lambda b: b.line)
    return list(out.values())


def builtin_sample(data_dir: Path, count: int, seed: int) -> dict[str, tuple[list[GoldDoc], list[GoldDoc], int]]:
    """About ``count`` training documents of the built-in sets, spread over the sets in
    proportion to their size (splits as :func:`~.sources.training_splits`; no dev docs)."""
    from .sources import SOURCES, training_splits

    splits = training_splits(data_dir, list(SOURCES))
    total = sum(len(train) for train, _, _ in splits.values()) or 1
    rng = random.Random(seed)
    out = {}
    for name, (train, _, dropped) in splits.items():
        k = min(len(train), round(count * len(train) / total))
        out[name] = (rng.sample(train, k), [], dropped)
    return out


def builtin_examples(data_dir: Path, render: Callable[[str, str], str], count: int,
                     seed: int, shape: str = "full") -> tuple[list[dict], dict[str, Any]]:
    """About ``count`` examples of the built-in sets (one schema per sampled document)."""
    from .examples import build_examples
    from .sources import SOURCES

    if count <= 0:
        return [], {}
    splits = builtin_sample(data_dir, count, seed)
    examples, counts = build_examples(data_dir, list(SOURCES), render, seed=seed, variants=1, splits=splits,
                                      shape=shape)
    return examples, {f"builtin:{k}": v for k, v in counts.items()}
