"""Training examples rendered by the serving code path.

One example = the prompt :func:`ie_service.extraction.extractor.render_prompt` builds for a
text and a label group (task template, the task's prompt schema, the model's prompt format)
and the answer the constrained decoder accepts for that group (``Task.gold_answer``):
compact JSON in the run's answer shape, ``full`` (every label of the group a key in group
order, ``[]`` where the label is absent) or ``compact`` (only the labels present, in group
order; ``{}`` for none). A compact row says ``"answer_shape": "compact"`` (a row without it
is full, as every row rendered before shapes existed); ``train fit`` writes it into
the adapter's manifest and ``weights merge-lora`` into the merged model's ``ie_service.json``.

Schemas vary as users write them: the gold labels plus sampled distractors, shuffled, in
groups of the sizes the extractor sends, sometimes no gold label at all, sometimes with
descriptions (where the source has them), label names renamed (``PER`` / ``person``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..gold import GoldDoc
from ..extraction.constraints import FULL, check_shape
from ..extraction.extractor import render_prompt
from ..extraction.tasks import TASKS
from ..extraction.tasks.base import NotExpressible
from ..extraction.templates import TemplateRegistry
from .sources import Source, relation_descriptions, training_splits

P_NO_GOLD = 0.1  # share of examples whose label group holds no gold label (all lists empty)
P_DESCRIPTIONS = 0.3  # share of RE examples that describe their relations
P_RENAME = 0.5  # share of examples of a renaming source that use the other label names
P_SHUFFLE_ROLES = 0.3
P_TYPED = 0.5  # share of examples of a source with relation types whose schema gives them
RENAMES = {
    "uner-en": {"PER": "person", "LOC": "location", "ORG": "organization"},
    "uner-zh": {"PER": "人物", "LOC": "地点", "ORG": "机构"},
}


def compact(answer: Any) -> str:
    """The JSON text the constrained decoder produces (no whitespace, unicode as is)."""
    return json.dumps(answer, ensure_ascii=False, separators=(",", ":"))


def renamed(doc: GoldDoc, mapping: dict[str, str]) -> GoldDoc:
    return doc.model_copy(update={"entities": [(t, mapping.get(ty, ty)) for t, ty in doc.entities]})


@dataclass
class Inventory:
    """The labels a source uses: names (NER, RE) or event type → sorted roles (EE)."""

    names: list[str]
    roles: dict[str, list[str]]

    @classmethod
    def of(cls, task: str, docs: list[GoldDoc]) -> "Inventory":
        schema = TASKS[task].gold_schema(docs)
        if isinstance(schema, dict):
            return cls(list(schema), schema)
        return cls(list(schema), {})


def sample_names(gold: list[str], pool: list[str], size: int, rng: random.Random) -> list[str]:
    """A label group: gold labels (unless none are drawn) plus distractors, shuffled."""
    chosen = [] if rng.random() < P_NO_GOLD else rng.sample(gold, min(len(gold), size))
    taken = {n.lower() for n in gold}
    distractors = list(dict.fromkeys(n for n in pool if n.lower() not in taken))
    chosen += rng.sample(distractors, min(len(distractors), max(0, size - len(chosen))))
    rng.shuffle(chosen)
    return chosen


def raw_schema(task: str, names: list[str], inventory: Inventory, descriptions: dict[str, str],
               rng: random.Random, types: dict[str, tuple[str, str]] | None = None) -> Any:
    """The schema as a user writes it in a request (RE with ``types``: sometimes typed,
    ``[{"relation", "head_type", "tail_type"}]``, answered by the types' keys)."""
    if task == "ee":
        out = {}
        for n in names:
            roles = list(inventory.roles[n])
            if rng.random() < P_SHUFFLE_ROLES:
                rng.shuffle(roles)
            out[n] = roles
        return out
    if descriptions and rng.random() < P_DESCRIPTIONS:
        return {n: descriptions.get(n, "") for n in names}
    if types and rng.random() < P_TYPED:
        return [{"relation": n, "head_type": types[n][0], "tail_type": types[n][1]} if n in types else n
                for n in names]
    return names


class ExampleBuilder:
    """Renders (prompt, answer) pairs for one model's prompt format."""

    def __init__(self, render: Callable[[str, str], str], templates: TemplateRegistry | None = None,
                 shape: str = FULL) -> None:
        check_shape(shape)
        self.render = render
        self.templates = templates or TemplateRegistry.default()
        self.shape = shape  # the answer shape the examples teach

    def example(self, task_name: str, language: str, doc: GoldDoc, schema: Any) -> dict[str, Any]:
        """One example; raises ``NotExpressible`` when the gold is over the grammar's bounds."""
        task = TASKS[task_name]
        group = task.labels(schema)
        template = self.templates.pick(task_name, language, None, constrained=True)
        answer = task.gold_answer(doc, group, self.shape)
        prompt = render_prompt(self.render, template, task, group, doc.text)
        row = {"task": task_name, "language": language, "id": doc.id, "schema": schema,
               "prompt": prompt, "answer": compact(answer)}
        # full rows name no shape: a file rendered before shapes existed reads the same
        return row if self.shape == FULL else {**row, "answer_shape": self.shape}

    def for_source(self, source: Source, docs: list[GoldDoc], inventory: Inventory,
                   pools: list[str], rng: random.Random, variants: int,
                   descriptions: dict[str, str]) -> Iterator[dict[str, Any]]:
        """``variants`` examples per document, each with its own sampled schema."""
        task = TASKS[source.task]
        for doc in docs:
            for _ in range(variants):
                d, inv, pool = doc, inventory, pools
                mapping = RENAMES.get(source.name)
                if mapping and rng.random() < P_RENAME:
                    d = renamed(doc, mapping)
                    inv = Inventory([mapping.get(n, n) for n in inventory.names], {})
                    pool = [mapping.get(n, n) for n in pools]
                size = rng.randint(1, task.labels_per_prompt) if rng.random() < 0.5 else task.labels_per_prompt
                candidates = pool or inv.names
                if "annotated" in d.extra:  # distractors only among the relations known absent
                    candidates = [n for n in candidates if n in d.extra["annotated"]]
                names = sample_names(task.gold_label_names(d), candidates, size, rng)
                if not names:
                    continue
                schema = raw_schema(source.task, names, inv, descriptions, rng, source.types)
                try:
                    ex = self.example(source.task, source.language, d, schema)
                except NotExpressible:
                    continue
                yield {"source": source.name, **ex}


def build_examples(data_dir: Path, sources: list[Source], render: Callable[[str, str], str],
                   seed: int = 0, variants: int = 2, source_variants: dict[str, int] | None = None,
                   splits: dict[str, tuple] | None = None, shape: str = FULL) -> tuple[list[dict], dict[str, Any]]:
    """Every training example of ``sources`` (dev splits and test-set sentences left out)
    and counts for the manifest. ``source_variants`` overrides ``variants`` per source;
    ``splits`` are :func:`training_splits` when the caller has read them already; ``shape``:
    the answer shape the examples teach."""
    rng = random.Random(seed)
    builder = ExampleBuilder(render, shape=shape)
    splits = splits or training_splits(data_dir, sources)
    inventories = {s.name: Inventory.of(s.task, splits[s.name][0]) for s in sources}
    examples: list[dict] = []
    counts: dict[str, Any] = {}
    for s in sources:
        train, dev, dropped = splits[s.name]
        # distractors: the source's own labels, plus (NER) other sources' of the same language; an
        # RE or EE set is annotated for its own labels only (another set's relation may hold unlabeled)
        pool = sorted({n for o in sources if o.task == s.task and o.language == s.language
                       and (o.task == "ner" or o.name == s.name) for n in inventories[o.name].names})
        descriptions = relation_descriptions(data_dir) if s.name == "fewrel" else {}
        n = (source_variants or {}).get(s.name, variants)
        made = list(builder.for_source(s, train, inventories[s.name], pool, rng, n, descriptions))
        examples += made
        counts[s.name] = {"task": s.task, "language": s.language, "license": s.license,
                          "train_docs": len(train), "dev_docs": len(dev), "examples": len(made),
                          "variants": n, "left_out_test_sentences": dropped}
    rng.shuffle(examples)
    return examples, counts


def dev_sets(data_dir: Path, splits: dict[str, tuple]) -> dict[str, list[GoldDoc]]:
    """Held-out gold sets of :func:`training_splits`, by name, for ``ie-service eval --dataset FILE``."""
    from .sources import fewrel_splits

    out = {}
    for name, (_, dev, _) in splits.items():
        if name == "fewrel":  # grouped by relation in the file: shuffled, so any first N mixes them
            for key, docs in (("dev", list(dev)), ("zeroshot", fewrel_splits(data_dir)["zeroshot"])):
                random.Random(0).shuffle(docs)
                out[f"fewrel-{key}"] = docs
        else:
            out[f"{name}-dev"] = dev
    return out


def write_gold_jsonl(docs: list[GoldDoc], path: Path) -> None:
    """The project's JSONL gold format (``evaluation.datasets.load_jsonl`` reads it)."""
    with path.open("w", encoding="utf-8") as f:
        for d in docs:
            row = {"id": d.id, "text": d.text,
                   "entities": [{"text": t, "type": ty} for t, ty in d.entities],
                   "relations": [{"head": h, "relation": r, "tail": t} for h, r, t in d.relations],
                   "events": [{"type": e.type, "trigger": e.trigger,
                               "arguments": [{"role": r, "text": v} for r, v in e.arguments]}
                              for e in d.events]}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
