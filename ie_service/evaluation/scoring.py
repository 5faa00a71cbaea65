"""Strict precision / recall / F1, micro-averaged and per type.

Each document contributes sets: a prediction counts when its whole tuple matches a gold one
(text compared after collapsing whitespace). Duplicates within a document count once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from pydantic import BaseModel


class PRF(BaseModel):
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": round(self.precision, 4),
                "recall": round(self.recall, 4), "f1": round(self.f1, 4)}


def norm(text: str | None) -> str:
    return " ".join((text or "").split())


class Scorer:
    """Accumulates (gold, predicted) tuple sets; the tuple's first element is its type."""

    def __init__(self) -> None:
        self.micro = PRF()
        self.per_type: dict[str, PRF] = defaultdict(PRF)

    def add(self, gold: Iterable[tuple], pred: Iterable[tuple]) -> None:
        g = {tuple(norm(x) for x in t) for t in gold}
        p = {tuple(norm(x) for x in t) for t in pred}
        for tup in p & g:
            self.micro.tp += 1
            self.per_type[tup[0]].tp += 1
        for tup in p - g:
            self.micro.fp += 1
            self.per_type[tup[0]].fp += 1
        for tup in g - p:
            self.micro.fn += 1
            self.per_type[tup[0]].fn += 1

    def report(self) -> dict:
        return {"micro": self.micro.as_dict(),
                "per_type": {k: v.as_dict() for k, v in sorted(self.per_type.items())}}


def table(report: dict, title: str) -> str:
    rows = [f"{title}", f"{'type':24} {'P':>7} {'R':>7} {'F1':>7} {'tp':>6} {'fp':>6} {'fn':>6}"]
    for name, r in [*report["per_type"].items(), ("micro", report["micro"])]:
        rows.append(f"{name[:24]:24} {r['precision']:7.3f} {r['recall']:7.3f} {r['f1']:7.3f} "
                    f"{r['tp']:6d} {r['fp']:6d} {r['fn']:6d}")
    return "\n".join(rows)
