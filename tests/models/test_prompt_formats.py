import json
import os

import pytest

from ie_service.models.prompt_formats import (
    ChatFormat,
    UnknownPromptFormat,
    available_formats,
    guess_format,
    load_file_format,
    resolve_format,
)


class FakeChatTokenizer:
    chat_template = "{{ messages }}"

    def apply_chat_template(self, conversation, tokenize, add_generation_prompt):
        assert tokenize is False and add_generation_prompt is True
        return "<|user|>" + conversation[0]["content"] + "<|assistant|>"


def test_alpaca_with_and_without_input():
    fmt = load_file_format("alpaca")
    with_input = fmt.render("Find the people.", "Obama met Merkel.")
    assert "### Instruction:\nFind the people.\n\n### Input:\nObama met Merkel.\n\n### Response:\n" in with_input
    without = fmt.render("Say hi.")
    assert "### Input" not in without and without.endswith("### Response:\n")


def test_ziya_format_is_human_bot():
    fmt = load_file_format("ziya")
    assert fmt.render("你好") == "<human>:你好\n<bot>:"
    assert fmt.render("抽取", "文本") == "<human>:抽取\n文本\n<bot>:"


def test_raw_format_passes_text_through_with_braces():
    fmt = load_file_format("raw")
    assert fmt.render('{"a": 1}') == '{"a": 1}'


def test_chat_format_uses_tokenizer_template():
    fmt = resolve_format("chat", "m", FakeChatTokenizer())
    assert isinstance(fmt, ChatFormat)
    assert fmt.render("Q", "T") == "<|user|>Q\nT<|assistant|>"


@pytest.mark.parametrize(
    "path,has_template,expected",
    [
        ("/models/Ziya-LLaMA-13B", False, "ziya"),
        ("/models/zhixi-13b-lora-merged", True, "alpaca"),
        ("/models/OneKE", True, "oneke"),  # issue 19: OneKE has its own wrap
        ("/data/firefly-llama2-13b-chat", False, "firefly"),
        ("/models/smollm2", True, "chat"),
        ("/models/llama-7b", False, "alpaca"),
    ],
)
def test_guess_format(path, has_template, expected):
    tok = FakeChatTokenizer() if has_template else None
    assert guess_format(path, tok) == expected


def test_unknown_format_names_the_choices():
    with pytest.raises(UnknownPromptFormat, match="alpaca"):
        load_file_format("nope")
    assert {"alpaca", "ziya", "raw", "chat"} <= set(available_formats())


def test_user_format_file(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"prompt_input": "I:{instruction}|{input}", "prompt_no_input": "I:{instruction}"}))
    assert load_file_format(str(path)).render("a", "b") == "I:a|b"


def test_chat_without_template_is_refused():
    with pytest.raises(UnknownPromptFormat):
        resolve_format("chat", "m", None)



def test_oneke_is_its_own_inference_wrap():
    """DeepKE's OneKE.md: '[INST] ' + '<<SYS>>\\nYou are a helpful assistant. 你是一个乐于助人的助手。\\n<</SYS>>\\n\\n'
    + instruction + '[/INST]'."""
    system = "<<SYS>>\nYou are a helpful assistant. 你是一个乐于助人的助手。\n<</SYS>>\n\n"
    instruction = '{"instruction": "x", "schema": ["person"], "input": "Obama"}'
    assert load_file_format("oneke").render(instruction) == "[INST] " + system + instruction + "[/INST]"


def test_firefly_ends_the_user_text_with_the_tokenizers_eos():
    """Firefly's single_chat.py: [bos] + text + [eos]; BOS comes from the tokenizer."""
    class Tok:
        eos_token = "<|im_end|>"
        chat_template = None

    assert resolve_format("firefly", "m", Tok()).render("抽取") == "抽取<|im_end|>"
    assert load_file_format("firefly").render("a", "b") == "a\nb</s>"


def test_alpaca_file_is_knowlms_template_character_for_character():
    """KnowLM finetune/lora/templates/alpaca.json prompt_no_input."""
    assert load_file_format("alpaca").prompt_no_input == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the "
        "request.\n\n### Instruction:\n{instruction}\n\n### Response:\n")


def test_a_new_family_is_one_format_file(tmp_path, monkeypatch):
    """Issue 32: a model family's prompt format is one file in ``prompts/formats/``: the
    template and the evidence that points at it. Every list, check and choice reads it there:
    the flags' help and checks, the weight tools, the inspection (names, tokens, vocabulary),
    the engine's renderer and the training renderer."""
    import shutil
    import subprocess
    import sys

    from transformers import AutoTokenizer

    import tiny_models as tm
    from ie_service.cli.common import check_engine_config
    from ie_service.engine.config import EngineConfig
    from ie_service.engine.vllm_engine import Engine
    from ie_service.models.inspection import inspect_model
    from ie_service.models.prompt_formats import check_format_name, choose_format, folder_format, format_choices
    from ie_service.models.weights.lora import merged_format
    from ie_service.paths import prompts_dir
    from ie_service.training.files import renderer
    from fakes import FakeAsyncLLM

    prompts = tmp_path / "prompts"
    shutil.copytree(prompts_dir(), prompts)
    (prompts / "formats" / "acme.json").write_text(json.dumps({
        "description": "a family made up for this test", "family": "Acme-LM", "names": ["acme"],
        "tokens": ["<acme_user>"],
        "vocabulary": {"model_type": "llama", "vocab_size": 49280, "about": "a LLaMA with Acme's 49280 tokens"},
        "prompt_input": "<acme>{instruction}|{input}</acme>", "prompt_no_input": "<acme>{instruction}</acme>"}))
    monkeypatch.setenv("IE_SERVICE_PROMPTS", str(prompts))

    assert "acme" in available_formats() and "acme |" in format_choices()
    check_format_name("acme")  # weights recover / apply-delta / merge-lora --prompt-format
    check_engine_config(EngineConfig(prompt_format="acme"))  # serve / eval / kg --prompt-format
    shown = subprocess.run([sys.executable, "-m", "ie_service.cli", "serve", "--help"], capture_output=True,
                           text=True, env={**os.environ, "COLUMNS": "300"}, check=True).stdout
    assert "--prompt-format" in shown and "acme | alpaca | " in shown

    assert guess_format("hub/Acme-LM-7B", None) == "acme"  # no folder: the name
    named = tm.build_llama(tmp_path / "acme-7b-merged")
    by_tokens = tm.build_llama(tmp_path / "m1", extra_tokens=("<acme_user>",))
    by_vocabulary = tm.build_llama(tmp_path / "m2", vocab_size=49280)
    for folder, why in ((named, "names the family"), (by_tokens, "Acme-LM's <acme_user>"),
                        (by_vocabulary, "Acme's 49280 tokens")):
        seen = inspect_model(folder, native_bf16=True)
        assert (seen.prompt_format, seen.family) == ("acme", "Acme-LM") and why in seen.prompt_format_reason
    assert merged_format(by_tokens, tmp_path / "acme-lora", by_tokens)[0] == "acme"  # weights merge-lora

    tokenizer = AutoTokenizer.from_pretrained(named)
    fmt, _ = choose_format("auto", str(named), tokenizer, folder_format(named))
    assert fmt.render("x", "y") == "<acme>x|y</acme>"
    engine = Engine(FakeAsyncLLM(tokenizer), EngineConfig(model=str(named)), str(named), "m",
                    inspection=inspect_model(named, native_bf16=True))
    assert engine.render("x") == "<acme>x</acme>" and engine.prompt_format.name == "acme"
    assert renderer(str(by_vocabulary), "auto")("x") == "<acme>x</acme>"  # train data, quantize calibration
