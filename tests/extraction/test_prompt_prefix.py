"""Everything a prompt shares with other prompts (the format, the instruction, the schema, the
few-shot examples) comes before the text, for every built-in template in every prompt format:
vLLM's prefix cache reuses a prompt's leading KV blocks only, so a shared part after the text
would be computed again for every text (issue 28)."""

from __future__ import annotations

import pytest

from ie_service.models.prompt_formats import CHAT, ChatFormat, available_formats, load_file_format
from ie_service.extraction.extractor import render_prompt
from ie_service.extraction.tasks import TASKS
from ie_service.extraction.templates import TemplateRegistry

SCHEMAS = {"ner": {"person": "a human being", "location": ""},
           "re": [{"relation": "founded by", "head_type": "organization", "tail_type": "person"}],
           "ee": {"收购": ["收购方", "被收购方"]}}
TEXTS = ("Alice met Bob in Paris.", "Zed went to Oslo with Kim and 王五.")
EXAMPLES = {"ner": [{"input": "Ann is here.", "output": {"person": ["Ann"]}}],
            "re": [{"input": "Acme was founded by Ann.", "output": "(Acme, founded by, Ann)"}],
            "ee": [{"input": "甲收购乙。", "output": "(收购, 收购)"}]}
TEMPLATES = [t for t in TemplateRegistry.default().templates.values() if t.task in SCHEMAS]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from ie_service.models.embedded import ensure_embedded_model

    return AutoTokenizer.from_pretrained(ensure_embedded_model())


@pytest.fixture(scope="module", params=available_formats())
def fmt(request, tokenizer):
    return ChatFormat(tokenizer) if request.param == CHAT else load_file_format(request.param)


def split_at_text(prompt: str, text: str) -> tuple[str, str]:
    assert prompt.count(text) == 1, prompt
    before, after = prompt.split(text)
    return before, after


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.name)
@pytest.mark.parametrize("shots", [False, True], ids=["zero-shot", "few-shot"])
def test_shared_part_comes_before_the_text(template, shots, fmt, tokenizer):
    task = TASKS[template.task]
    group = task.labels(SCHEMAS[template.task])
    examples = EXAMPLES[template.task] if shots else []
    prompts = [render_prompt(fmt.render, template, task, group, text, examples) for text in TEXTS]
    (before_a, after_a), (before_b, after_b) = (split_at_text(p, t) for p, t in zip(prompts, TEXTS))
    assert before_a == before_b and after_a == after_b
    shared = before_a
    # the instruction, every label and the examples are in the shared part, none after the text
    for needle in [template.instruction[:40].split("{")[0], *(label.name for label in group)]:
        assert needle in shared, needle
        assert needle not in after_a, needle
    if shots:
        assert EXAMPLES[template.task][0]["input"] in shared
    # token level: the prompts' ids agree over the shared part's tokens (a merge across the
    # boundary with the text may take at most the last one)
    ids_a, ids_b = (tokenizer.encode(p, add_special_tokens=True) for p in prompts)
    common = next((i for i, (x, y) in enumerate(zip(ids_a, ids_b)) if x != y), min(len(ids_a), len(ids_b)))
    assert common >= len(tokenizer.encode(shared, add_special_tokens=True)) - 1
    assert common >= 0.6 * min(len(ids_a), len(ids_b))  # most of the prompt is shared
