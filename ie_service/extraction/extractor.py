"""Run one extraction: chunk text, split schema, render prompts, ask the engine, parse,
ground, merge. Everything model-facing goes through :class:`TextEngine`."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

# issue 12 #1: caps per request; issue 20: checked before chunking, prompts all-or-none
from ..admission import all_or_none, check_label_count, expect_prompts, prompt_slot, reserve_prompts
from ..engine import PromptTooLong, TextEngine
from .chunking import Chunk, chunk_text, min_chunks
from .confidence import OutputScores, ScoredGrounder, filter_records
from .grounded_grammar import grounded_chunks, grounded_grammar
from .records import ExtractionStats
from .schema import SchemaError
from .tasks import TASKS, Task
from .templates import Template, TemplateRegistry
from .wire import ExtractOptions

CJK_SHARE = 0.2
PROMPT_MARGIN = 8  # tokens of slack for tokenizer merges at the prompt/text boundary


def detect_language(text: str) -> str:
    """``zh`` when CJK ideographs make up a real share of the letters, else ``en``."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "en"
    cjk = sum(1 for c in letters if "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf")
    return "zh" if cjk / len(letters) >= CJK_SHARE else "en"


@dataclass
class Outcome:
    """A finished extraction, before it is put on the wire."""

    language: str
    template: str = ""  # name@version
    records: list[BaseModel] = field(default_factory=list)
    raw_output: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stats: ExtractionStats = field(default_factory=ExtractionStats)


class Extractor:
    def __init__(self, engine: TextEngine, templates: TemplateRegistry) -> None:
        self.engine = engine
        self.templates = templates

    def _prompt(self, template: Template, task: Task, group: list, text: str,
                examples: list[dict]) -> str:
        return render_prompt(self.engine.render, template, task, group, text, examples)

    def _measure(self, text: str, template: Template, task: Task, groups: list[list],
                 examples: list[dict], max_tokens: int) -> tuple[int, int]:
        """(token budget for text per prompt, tokens of the text); runs in a worker thread."""
        overhead = max(self.engine.count_tokens(self._prompt(template, task, g, "", examples))
                       for g in groups)
        budget = self.engine.max_model_len - max_tokens - overhead - PROMPT_MARGIN
        if budget < 16:
            raise PromptTooLong(
                f"the prompt without text takes {overhead} tokens and max_tokens is {max_tokens}: "
                f"no room for text in a context of {self.engine.max_model_len}; lower max_tokens, "
                "labels_per_prompt or the number of examples")
        return budget, self.engine.count_tokens(text)

    async def _chunks(self, text: str, template: Template, task: Task, groups: list[list],
                      examples: list[dict], max_tokens: int) -> list[Chunk]:
        """Tokenizing and chunking run off the event loop (linear in the text, see
        chunking.py); the prompt cap is checked from the token count before chunking."""
        budget, tokens = await asyncio.to_thread(self._measure, text, template, task, groups,
                                                 examples, max_tokens)
        expect_prompts((min_chunks(tokens, budget) - 1) * len(groups))  # 413 before any chunking
        if tokens <= budget:
            return [Chunk(text, 0)]
        return await asyncio.to_thread(chunk_text, text, budget, self.engine.count_tokens)

    async def extract(self, task_name: str, text: str, raw_schema: Any, options: ExtractOptions) -> Outcome:
        """``raw_schema``: the task's schema as the client sent it; ``options``: language,
        template, constraints, adapter, sampling, ... (a task's request model is one)."""
        task = TASKS[task_name]
        labels = task.labels(raw_schema)
        check_label_count(len(labels))  # 422 naming the limit
        language = options.language if options.language != "auto" else detect_language(text)
        template = self.templates.pick(task_name, language, options.template, options.constrained)
        size = options.labels_per_prompt or task.labels_per_prompt
        groups = [labels[i:i + size] for i in range(0, len(labels), size)]
        examples = [e.model_dump() for e in options.examples]
        params = options.parameters
        if not text.strip():  # a blank text of a batch: no prompt (a single one is a 422)
            return Outcome(language=language, template=template.ref,
                           warnings=["text is empty or only whitespace: skipped, nothing sent to the engine"])
        # before the first await: every text of a batch counts its one chunk x groups here, so a
        # batch over the cap is refused before any sibling's prompt can reach the engine
        expect_prompts(len(groups))
        chunks = await self._chunks(text, template, task, groups, examples, params.max_tokens)
        shape = answer_shape(self.engine, options.adapter)  # {} for "full": plug-in tasks need not know shapes
        grounded = options.constrained and options.grounded and task.answer_grammar(groups[0], **shape) is not None
        if grounded:
            chunks = grounded_chunks(chunks)  # bounded grammar size (compile time)
        jobs = [(chunk, group) for chunk in chunks for group in groups]
        engine_seconds: list[float] = []

        async def ask(chunk: Chunk, group: list):
            prompt = self._prompt(template, task, group, chunk.text, examples)
            schema = task.json_schema(group, **shape) if options.constrained and not grounded else None
            grammar = grounded_grammar(task.answer_grammar(group, **shape), chunk.text) if grounded else None
            async with prompt_slot():  # a few at a time per request: others interleave
                started = time.perf_counter()
                try:  # logprobs: every record's confidence (confidence.py)
                    return await self.engine.generate(prompt, params, schema, grammar=grammar,
                                                      adapter=options.adapter, logprobs=True)
                finally:
                    engine_seconds.append(time.perf_counter() - started)

        # count engine prompts (not HTTP requests) against the outstanding limit: 413 over the
        # per-request cap, 429 when the engine queue has no room; claimed before any is sent.
        # All or none: the first failure aborts the siblings in the engine.
        async with reserve_prompts(len(jobs)):
            generations = await all_or_none(ask(c, g) for c, g in jobs)
        out = Outcome(language=language, template=template.ref,
                      stats=ExtractionStats(prompts=len(jobs), chunks=len(chunks),
                                            engine_seconds=round(sum(engine_seconds), 4)))
        if len(jobs) == 1:
            return self._assemble(out, task, text, jobs, generations, options)
        # parsing and grounding many outputs is CPU work: off the event loop (/health < 100 ms)
        return await asyncio.to_thread(self._assemble, out, task, text, jobs, generations, options)

    @staticmethod
    def _assemble(out: Outcome, task: Task, text: str, jobs: list[tuple[Chunk, list]],
                  generations: list, options: ExtractOptions) -> Outcome:
        """Parse, ground and merge the outputs of one text's prompts into ``out``."""
        params = options.parameters
        seen: set[tuple] = set()
        for (chunk, group), gen in zip(jobs, generations):
            out.raw_output.append(gen.text)
            out.stats.output_tokens += gen.num_output_tokens
            out.stats.prompt_tokens += gen.num_prompt_tokens
            out.stats.cached_prompt_tokens += gen.num_cached_tokens
            if gen.truncated:
                out.stats.truncated += 1
                out.warnings.append(
                    f"output cut at max_tokens={params.max_tokens} for chunk at offset "
                    f"{chunk.offset}, labels {[label.name for label in group]}: discarded")
                continue
            parsed = task.parse(gen.text, group)
            if not parsed.ok:
                out.stats.unparseable += 1
                out.warnings.append(f"could not parse the output for chunk at offset {chunk.offset}")
            out.warnings += parsed.warnings
            grounder = ScoredGrounder(text, chunk, OutputScores.of(gen))
            for record in task.build(parsed.records, group, grounder):
                key = task.key(record)
                if key not in seen:
                    seen.add(key)
                    out.records.append(record)
            out.stats.ungrounded += grounder.ungrounded
            if grounder.self_relations:
                out.stats.self_relations += grounder.self_relations
                out.warnings.append(f"dropped {grounder.self_relations} relation(s) whose head and tail "
                                    f"are the same span (chunk at offset {chunk.offset})")
        if options.drop_ungrounded:
            out.records = [g for g in map(task.grounded_only, out.records) if g is not None]
        out.records = filter_records(out.records, options.min_confidence)
        out.warnings = list(dict.fromkeys(out.warnings))
        return out


def answer_shape(engine: TextEngine, adapter: str | None = None) -> dict[str, str]:
    """``{"shape": "compact"}`` when the model answers in the compact shape, else ``{}``
    (tasks default to ``full``). With a run-time adapter the adapter's manifest decides (an
    adapter that declares nothing was trained on the full shape)."""
    if adapter is not None:
        shape = engine.adapter_shapes.get(adapter, "full")
    else:
        shape = engine.answer_shape
    return {"shape": shape} if shape != "full" else {}


def render_prompt(render: Callable[[str, str], str], template: Template, task: Task,
                  group: list, text: str, examples: list[dict] = ()) -> str:
    """The exact prompt the model sees for one chunk and label group. Serving and the
    adapter's training data (``ie_service.training``) both call this, so they cannot drift."""
    instruction, input = template.render(
        text, task.prompt_schema(group), task.labels_text(group), _examples_for(group, list(examples)))
    return render(instruction, input)


def _examples_for(group: list, examples: list[dict]) -> list[dict]:
    """Examples whose answer is keyed by label show only this prompt's labels."""
    names = {label.name for label in group}
    return [{**e, "output": {k: v for k, v in e["output"].items() if k in names}}
            if isinstance(e["output"], dict) else e for e in examples]


__all__ = ["Extractor", "Outcome", "SchemaError", "answer_shape", "detect_language", "render_prompt"]
