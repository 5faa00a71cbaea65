"""A tiny OpenLLaMA-like folder: a sentencepiece model trained here (default normalizer
``nmt_nfkc``, byte fallback), random-weight 2-layer LLaMA, ``tokenizer.model`` and a
``tokenizer_config.json`` naming LlamaTokenizer, no ``tokenizer.json``."""

from __future__ import annotations

import io
import json
from pathlib import Path

# a few KB of mixed text: English, Chinese, code, full-width forms, JSON
CORPUS_LINES = [
    "Barack Obama met Angela Merkel in Berlin on Tuesday.",
    "The company Apple was founded by Steve Jobs in California.",
    "Extract the named entities from the text and answer in JSON.",
    "### Instruction:\nList the person names.\n### Input:\nAlice and Bob went to Paris.\n### Response:\n",
    '{"persons": ["Alice", "Bob"], "locations": ["Paris"], "organizations": []}',
    "马云创办了阿里巴巴，总部位于杭州。", "华为公司在深圳发布了新手机。", "张三和李四在北京见面。",
    "ＡＢＣ１２３ full width letters and digits", "（中文括号），逗号。句号！",
    "def extract(text):\n    entities = []\n    for word in text.split():\n        entities.append(word)\n    return entities",
    "Numbers like 2023, 3.14 and 1,000,000 appear in news about markets.",
    "Entity types: person, organization, location, time, event, product.",
]


def corpus() -> str:
    lines = []
    for i in range(12):
        for line in CORPUS_LINES:
            lines.append(line if i % 2 == 0 else line.lower())
    return "\n".join(lines)


def train_sp(vocab: int = 600) -> bytes:
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus().split("\n")), model_writer=model, vocab_size=vocab,
        model_type="bpe", byte_fallback=True, character_coverage=1.0,
        bos_id=1, eos_id=2, unk_id=0, pad_id=-1, hard_vocab_limit=False, minloglevel=2)
    return model.getvalue()


def sp_llama_folder(folder: Path, vocab: int = 600, seed: int = 0) -> Path:
    """Write the folder and return it."""
    import sentencepiece as spm
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.model").write_bytes(train_sp(vocab))
    n = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model")).get_piece_size()
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=n, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=1, num_key_value_heads=1, max_position_embeddings=2048,  # head_dim 64: vLLM CPU attention refuses 16
                      bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    LlamaForCausalLM(cfg).to(torch.bfloat16).save_pretrained(folder)
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False,
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "model_max_length": 2048,
    }))
    assert not (folder / "tokenizer.json").exists()
    return folder
