"""How far predictions can be trusted: confidence thresholds, the ranking quality of the
confidence (AUROC), relations answered the wrong way round, and labels that flip when the
schema grows (schema stability).

Tuples are compared as :class:`~ie_service.evaluation.scoring.Scorer` compares them: per
document, as sets, text with whitespace collapsed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from ..extraction.tasks import TASKS
from .scoring import PRF, norm

THRESHOLDS = tuple(round(0.1 * i, 1) for i in range(1, 10))

Tuple = tuple[str, ...]


def _key(t: Iterable[Any]) -> Tuple:
    return tuple(norm(x) for x in t)


def scored_tuples(task_name: str, response: dict[str, Any]) -> tuple[dict[str, list[tuple]], dict[str, list]]:
    """``(predicted tuples, their confidences)`` per score kind, aligned, of one response.
    A record's tuples get its confidence; a record's ``arguments`` (events) get their own."""
    task = TASKS[task_name]
    field = task.records_field
    tuples: dict[str, list[tuple]] = defaultdict(list)
    confs: dict[str, list] = defaultdict(list)

    def add(records: list[dict], confidence: Any, skip: dict[str, list] | None = None) -> dict[str, list]:
        got = task.predicted_tuples({**response, field: records})
        for kind, items in got.items():
            for item in items:
                if skip and item in skip.get(kind, []):
                    continue
                tuples[kind].append(tuple(item))
                confs[kind].append(confidence)
        return got

    for record in response.get(field, []):
        arguments = record.get("arguments") if isinstance(record, dict) else None
        if not isinstance(arguments, list):
            add([record], record.get("confidence"))
            continue
        own = add([{**record, "arguments": []}], record.get("confidence"))
        for argument in arguments:
            add([{**record, "arguments": [argument]}], argument.get("confidence"), skip=own)
    for kind in task.predicted_tuples({**response, field: []}):
        tuples.setdefault(kind, [])
        confs.setdefault(kind, [])
    return dict(tuples), dict(confs)


def _doc_predictions(pred: list, conf: list | None) -> dict[Tuple, float | None]:
    """One document's predicted tuples (as the scorer's set) → the highest confidence of each."""
    out: dict[Tuple, float | None] = {}
    for i, t in enumerate(pred):
        key = _key(t)
        c = conf[i] if conf is not None and i < len(conf) else None
        prev = out.get(key)
        out[key] = c if key not in out else (prev if c is None else c if prev is None else max(prev, c))
    return out


class TrustScorer:
    """Accumulates one score kind's documents: (gold, predicted, confidences)."""

    def __init__(self) -> None:
        self.at = {t: PRF() for t in THRESHOLDS}
        self.ranked: list[tuple[float, bool]] = []  # (confidence, correct) of predictions
        self.unscored = 0  # predictions without a confidence
        self.reversed: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # relation → [reversed, predicted]

    def add(self, gold: Iterable[tuple], pred: list, conf: list | None, triples: bool = False) -> None:
        g = {_key(t) for t in gold}
        p = _doc_predictions(pred, conf)
        for t, prf in self.at.items():
            kept = {k for k, c in p.items() if c is None or c >= t}
            prf.tp += len(kept & g)
            prf.fp += len(kept - g)
            prf.fn += len(g - kept)
        for key, c in p.items():
            if c is None:
                self.unscored += 1
            else:
                self.ranked.append((c, key in g))
            if triples and len(key) == 3:
                counts = self.reversed[key[0]]
                counts[1] += 1
                if key not in g and (key[0], key[2], key[1]) in g:
                    counts[0] += 1

    def thresholds(self) -> dict[str, Any]:
        """P/R/F1 at each threshold and the best threshold by F1 (the lowest on a tie)."""
        table = {f"{t:.1f}": prf.as_dict() for t, prf in self.at.items()}
        best = max(self.at, key=lambda t: (round(self.at[t].f1, 6), -t))
        return {"table": table, "best": {"threshold": best, **self.at[best].as_dict()}}

    def report(self, triples: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"thresholds": self.thresholds(), "auroc": auroc(self.ranked),
                               "scored": len(self.ranked), "unscored": self.unscored,
                               "correct": sum(1 for _, ok in self.ranked if ok)}
        if triples:
            out["reversed"] = reversed_report(self.reversed)
        return out


def auroc(ranked: list[tuple[float, bool]]) -> float | None:
    """Area under the ROC curve of confidence for correct (True) vs wrong predictions: the
    chance that a correct one outranks a wrong one, ties counting half (Mann–Whitney U).
    None without both kinds."""
    pos = sum(1 for _, ok in ranked if ok)
    neg = len(ranked) - pos
    if not pos or not neg:
        return None
    ordered = sorted(ranked, key=lambda r: r[0])
    rank_sum, i = 0.0, 0
    while i < len(ordered):
        j = i
        while j < len(ordered) and ordered[j][0] == ordered[i][0]:
            j += 1
        mid = (i + 1 + j) / 2  # average 1-based rank of the tie group
        rank_sum += mid * sum(1 for _, ok in ordered[i:j] if ok)
        i = j
    return round((rank_sum - pos * (pos + 1) / 2) / (pos * neg), 4)


def reversed_report(counts: dict[str, list[int]]) -> dict[str, Any]:
    """Predicted triples that are a gold triple with head and tail swapped, per relation."""
    total = sum(c[1] for c in counts.values())
    rev = sum(c[0] for c in counts.values())
    return {"count": rev, "predicted": total, "share": round(rev / total, 4) if total else 0.0,
            "per_relation": {r: {"reversed": c[0], "predicted": c[1],
                                 "share": round(c[0] / c[1], 4) if c[1] else 0.0}
                             for r, c in sorted(counts.items())}}


# --- schema stability -------------------------------------------------------------------

# Entity types of public NER sets (CoNLL, OntoNotes, WNUT-17, CrossNER, MultiCoNER): the
# distractors added to a schema, taken in this order, skipping the schema's own labels.
# Near neighbours of common types come first (hard negatives: organization next to
# corporation, group; city and country next to location; artist next to person).
DISTRACTORS = (
    "organization", "city", "country", "artist", "company", "event", "facility", "brand",
    "band", "politician", "athlete", "building", "nationality", "software", "song", "book",
    "movie", "album", "algorithm", "field", "task", "university", "conference", "misc",
)


def distractors(schema: list[str], n: int) -> list[str]:
    """The first ``n`` of :data:`DISTRACTORS` that are not in ``schema`` (case and
    ``-``/``_``/space insensitive)."""
    def k(x: str) -> str:
        return "".join(ch for ch in x.lower() if ch.isalnum())

    taken = {k(s) for s in schema}
    out = [d for d in DISTRACTORS if k(d) not in taken][:n]
    if len(out) < n:
        raise ValueError(f"only {len(out)} distractor labels left for this schema (asked for {n})")
    return out


def stability(docs_gold: list[list[tuple[str, str]]], base: list[list[tuple]], distracted: list[list[tuple]],
              added: list[str]) -> dict[str, Any]:
    """Schema stability: of the gold entities (type, text) that the base schema's run
    predicted with their gold type, the share that the run with ``added`` distractor labels
    still predicts with that type and with no added label. Arguments are per document:
    gold (type, text) tuples and the two runs' predicted (type, text) tuples."""
    extra = {norm(a) for a in added}
    counted = stable = flipped = lost = 0
    for gold, before, after in zip(docs_gold, base, distracted):
        b = {_key(t) for t in before}
        a_types: dict[str, set[str]] = defaultdict(set)
        for t in after:
            ty, text = _key(t)
            a_types[text].add(ty)
        for t in {_key(t) for t in gold}:
            if t not in b:
                continue
            counted += 1
            ty, text = t
            now = a_types.get(text, set())
            if ty in now and not now & extra:
                stable += 1
            elif now & extra:
                flipped += 1
            else:
                lost += 1
    return {"distractors": added, "entities": counted, "stable": stable,
            "to_distractor": flipped, "lost_or_retyped": lost,
            "stability": round(stable / counted, 4) if counted else None}
