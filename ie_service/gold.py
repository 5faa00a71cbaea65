"""Gold records: what a test or training set says a text holds.

One type for every source (the loaders of ``evaluation.datasets``, the training sets of
``training.sources``, a user's annotations in ``training.user_data``), and what tasks map to
evaluation tuples and training answers. It imports nothing of the project, so both the tasks
and the evaluation can stand on it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class GoldEvent(BaseModel):
    type: str
    trigger: str | None = None
    arguments: list[tuple[str, str]] = Field(default_factory=list)  # (role, text)


class GoldDoc(BaseModel):
    id: str
    text: str
    entities: list[tuple[str, str]] = Field(default_factory=list)  # (text, type)
    relations: list[tuple[str, str, str]] = Field(default_factory=list)  # (head, relation, tail)
    events: list[GoldEvent] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)  # other JSONL fields (plug-in tasks' gold)
