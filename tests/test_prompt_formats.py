import json

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
