"""Sentencepiece folders (OpenLLaMA / Ziya / LLaMA-1 style) are tokenized by the
sentencepiece model itself: fast checks of the tokenizer and the probe, and one served
folder through the real engine."""

from __future__ import annotations

import re

import httpx
import pytest
import sentencepiece as spm

from conftest import LOGS
from sp_folder import sp_llama_folder


# the strings the issue found mis-tokenized, plus code indentation and emoji
ISSUE_STRINGS = ["a    b", "x\n\ny", "ＡＢＣ１２３", "，（）", "def f(x):\n    if x:\n        return x\n",
                 "emoji 🙂🚀 ok", "Barack Obama met Angela Merkel in Berlin."]


@pytest.fixture(scope="module")
def sp_folder(tmp_path_factory):
    return sp_llama_folder(tmp_path_factory.mktemp("openllama-like"))


@pytest.fixture(scope="module")
def sp(sp_folder):
    return spm.SentencePieceProcessor(model_file=str(sp_folder / "tokenizer.model"))


def test_probe_detects_the_converted_fast_tokenizer(sp_folder):
    from ie_service.models.tokenizer_choice import choose_tokenizer, disagreements

    differ = disagreements(sp_folder)
    assert "a    b" in differ and "ＡＢＣ１２３" in differ
    auto = choose_tokenizer(sp_folder, "auto")
    assert auto.mode == "sentencepiece" and "probe" in auto.reason
    assert choose_tokenizer(sp_folder, "fast").mode == "fast"


def test_folder_without_tokenizer_model_stays_fast(tmp_path):
    from ie_service.models.tokenizer_choice import TokenizerModeError, choose_tokenizer

    assert choose_tokenizer(tmp_path, "auto").mode == "fast"
    with pytest.raises(TokenizerModeError, match="tokenizer.model"):
        choose_tokenizer(tmp_path, "sentencepiece")


def test_engine_kwargs_pick_the_registered_mode(sp_folder, tmp_path):
    from ie_service.engine.config import EngineConfig
    from ie_service.engine.start_plan import engine_kwargs

    def kwargs(folder, **config):
        return engine_kwargs(EngineConfig(model=str(folder), **config), str(folder), on_cpu=False, environ={})

    assert kwargs(sp_folder)["tokenizer_mode"] == "sentencepiece"
    assert "tokenizer_mode" not in kwargs(sp_folder, tokenizer_mode="fast")
    assert "tokenizer_mode" not in kwargs(tmp_path)


def test_encoder_equals_sentencepiece_with_bos(sp_folder, sp):
    from vllm.tokenizers import get_tokenizer

    tok = get_tokenizer(str(sp_folder), tokenizer_mode="sentencepiece")  # through vLLM's registry
    assert type(tok).__name__ == "SentencePieceTokenizer"
    for text in ISSUE_STRINGS:
        assert tok.encode(text) == [1, *sp.encode(text)], text  # BOS 1 prepended, no EOS
        assert tok.encode(text, add_special_tokens=False) == sp.encode(text)
        assert tok.decode(sp.encode(text)) == sp.decode(sp.encode(text))
    assert tok.decode([1, *sp.encode("hi"), 2], skip_special_tokens=True) == sp.decode(sp.encode("hi"))


def test_incremental_detokenization_matches_sentencepiece(sp_folder, sp):
    """vLLM's own incremental detokenizer (the one stop strings are checked on) on our
    tokenizer yields what sentencepiece decodes, byte-fallback emoji included."""
    from vllm.tokenizers.detokenizer_utils import detokenize_incrementally

    from ie_service.engine.sp_tokenizer import SentencePieceTokenizer

    tok = SentencePieceTokenizer(sp_folder)
    prompt = tok.encode("Answer:")
    out = sp.encode("Obama 🙂 met ＡＢＣ in 北京")
    ids, tokens, prefix, read, text = list(prompt), None, 0, 0, ""
    for i in out:
        ids.append(i)
        new, piece, prefix, read = detokenize_incrementally(tok, ids, tokens, prefix, read,
                                                            skip_special_tokens=True)
        tokens = new if tokens is None else tokens + new
        text += piece
    assert text.strip() == sp.decode(out)


def test_xgrammar_reads_the_sentencepiece_vocab(sp_folder):
    import xgrammar as xgr

    from ie_service.engine.sp_tokenizer import SentencePieceTokenizer

    info = xgr.TokenizerInfo.from_huggingface(SentencePieceTokenizer(sp_folder))
    assert info.vocab_type == xgr.VocabType.BYTE_FALLBACK and info.add_prefix_space
    assert info.stop_token_ids == [2]


IDS_LINE = re.compile(r"prompt_token_ids=\[([\d, ]*)\] output_token_ids=\[([\d, ]*)\]")


def _ids(group: str) -> list[int]:
    """The ids of one logged ``[1, 2, ...]`` list (its inside)."""
    return [int(x) for x in group.split(",") if x.strip()]


@pytest.mark.engine  # the engine lane: it balances the side lane (tests/lanes.py)
def test_served_sentencepiece_folder(sp_folder, sp, tmp_path):
    """``serve --model`` only: the ids the engine sent are sentencepiece's (with BOS), the
    text is what sentencepiece decodes from the output ids, constrained NER answers."""
    from ie_service.models.prompt_formats import resolve_format
    from ie_service.local_server import local_server

    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / "server-sentencepiece.log"
    text = " ".join(ISSUE_STRINGS)
    with local_server(["--model", str(sp_folder), "--log-level", "debug", "--max-model-len", "1024"],
                      log_path=log) as url:
        r = httpx.post(f"{url}/generate", timeout=300, json={
            "instruction": "List the names.", "input": text,
            "parameters": {"temperature": 0, "max_tokens": 24}})
        assert r.status_code == 200, r.text
        body = r.json()
        ner = httpx.post(f"{url}/extract/ner", timeout=300,
                         json={"text": "Alice met Bob in Paris.", "schema": ["person"]})
        assert ner.status_code == 200, ner.text
    logged = log.read_text()
    assert "tokenizer: sentencepiece (auto: tokenizer.model present" in logged
    # one line per generation: the /generate prompt's, the NER prompt's, and any "ping" probe
    # the supervisor sent while a slow prefill held the engine
    lines = {tuple(_ids(prompt)): _ids(out) for prompt, out in IDS_LINE.findall(logged)}
    rendered = resolve_format("auto", str(sp_folder), None).render("List the names.", text)
    expected = (1, *sp.encode(rendered))
    assert expected in lines, [list(p[:40]) for p in lines]
    output_ids = lines[expected]
    assert output_ids and len(output_ids) == body["num_output_tokens_cf"]
    assert body["generated_text"].strip() == sp.decode(output_ids).strip()
