"""Sentencepiece tokenization done by the sentencepiece model itself, as a vLLM tokenizer mode.

OpenLLaMA, Ziya and LLaMA-1 folders ship ``tokenizer.model``. With transformers 5 the "slow"
tokenizer class *is* the converted fast one, and the converter drops sentencepiece's normalizer
(``nmt_nfkc``: whitespace runs collapsed, full-width folded, ...), so ``'a    b'``,
``'x\\n\\ny'`` or ``ＡＢＣ１２３`` get other ids than the model was trained on. This module gives
vLLM a tokenizer backed by :class:`sentencepiece.SentencePieceProcessor` (registered as
``tokenizer_mode="sentencepiece"`` through vLLM's ``TokenizerRegistry``), so prompts, incremental
detokenization, stop strings and xgrammar's token table (it reads ``sp_model``) all use it.

It imports vllm: loaded by :mod:`ie_service.engine.vllm_engine`, and by
:func:`ie_service.engine.engine_args.tokenizer_kwargs` only for a folder that needs the mode
(:mod:`ie_service.models.tokenizer_choice` decides, without vllm). vLLM may start its
engine core in a spawned process, where registrations made here are gone; the engine passes
:func:`keep_hf_config` as ``hf_overrides``, so unpickling the model config in that process
imports this module, whose import registers the mode again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sentencepiece as spm
from vllm.renderers.registry import RENDERER_REGISTRY
from vllm.tokenizers import TokenizerRegistry

from ..models.tokenizer_choice import MODE, MODEL_FILE

log = logging.getLogger(__name__)

def register() -> None:
    """Make ``tokenizer_mode="sentencepiece"`` known to vLLM in this process (idempotent): the
    tokenizer, and vLLM's plain renderer for the mode (prompts arrive as token ids)."""
    if TokenizerRegistry.tokenizers.get(MODE) != (__name__, "SentencePieceTokenizer"):
        TokenizerRegistry.register(MODE, __name__, "SentencePieceTokenizer")
    if MODE not in RENDERER_REGISTRY.renderers:
        RENDERER_REGISTRY.register(MODE, "vllm.renderers.hf", "HfRenderer")


def keep_hf_config(config: Any) -> Any:
    """``hf_overrides`` that changes nothing: it exists so that vLLM's spawned processes import
    this module (and so register the mode) when they unpickle the model config."""
    return config


register()


def _tokenizer_config(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _chat_template(folder: Path, config: dict[str, Any]) -> str | None:
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    template = config.get("chat_template")
    return template if isinstance(template, str) else None


class SentencePieceTokenizer:
    """vLLM's ``TokenizerLike`` protocol on a ``SentencePieceProcessor``. Special tokens are the
    model's control pieces (``<s>``, ``</s>``) and ``<unk>``; BOS/EOS are added as
    ``tokenizer_config.json`` says (``add_bos_token`` default true, ``add_eos_token`` default
    false: LLaMA's convention)."""

    def __init__(self, folder: str | Path, *, truncation_side: str = "left") -> None:
        self.folder = Path(folder)
        self.sp_model = spm.SentencePieceProcessor(model_file=str(self.folder / MODEL_FILE))
        config = _tokenizer_config(self.folder)
        self.add_bos = bool(config.get("add_bos_token", True))
        self.add_eos = bool(config.get("add_eos_token", False))
        self.chat_template = _chat_template(self.folder, config)
        self.name_or_path = str(self.folder)
        self._truncation_side = truncation_side
        sp = self.sp_model
        n = sp.get_piece_size()
        self._pieces = [sp.id_to_piece(i) for i in range(n)]
        self._vocab = {piece: i for i, piece in enumerate(self._pieces)}
        self._special_ids = [i for i in range(n) if sp.is_control(i) or sp.is_unknown(i)]
        self._special = set(self._special_ids)
        self._max_chars = max((len(p) for p in self._pieces), default=1)

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | Path, *args: Any, trust_remote_code: bool = False,
                        revision: str | None = None, download_dir: str | None = None,
                        **kwargs: Any) -> "SentencePieceTokenizer":
        folder = Path(path_or_repo_id)
        if not (folder / MODEL_FILE).is_file():
            raise ValueError(f"tokenizer_mode={MODE!r} needs {folder / MODEL_FILE}")
        return cls(folder, truncation_side=kwargs.get("truncation_side", "left"))

    # ids of the special tokens -------------------------------------------------------------
    def _id_or_none(self, i: int) -> int | None:
        return i if i >= 0 else None

    @property
    def bos_token_id(self) -> int | None:
        return self._id_or_none(self.sp_model.bos_id())

    @property
    def eos_token_id(self) -> int | None:
        return self._id_or_none(self.sp_model.eos_id())

    @property
    def pad_token_id(self) -> int | None:
        return self._id_or_none(self.sp_model.pad_id())

    @property
    def unk_token_id(self) -> int | None:
        return self._id_or_none(self.sp_model.unk_id())

    @property
    def bos_token(self) -> str | None:
        return self._pieces[self.bos_token_id] if self.bos_token_id is not None else None

    @property
    def eos_token(self) -> str | None:
        return self._pieces[self.eos_token_id] if self.eos_token_id is not None else None

    @property
    def all_special_ids(self) -> list[int]:
        return list(self._special_ids)

    @property
    def all_special_tokens(self) -> list[str]:
        return [self._pieces[i] for i in self._special_ids]

    def num_special_tokens_to_add(self) -> int:
        return int(self.add_bos and self.bos_token_id is not None) + int(self.add_eos and self.eos_token_id is not None)

    # sizes ---------------------------------------------------------------------------------
    @property
    def is_fast(self) -> bool:
        return False

    @property
    def vocab_size(self) -> int:
        return len(self._pieces)

    @property
    def max_token_id(self) -> int:
        return len(self._pieces) - 1

    @property
    def max_chars_per_token(self) -> int:
        return self._max_chars

    @property
    def truncation_side(self) -> str:
        return self._truncation_side

    def __len__(self) -> int:
        return self.vocab_size

    def __hash__(self) -> int:
        return hash(id(self))

    def get_vocab(self) -> dict[str, int]:
        return dict(self._vocab)

    def get_added_vocab(self) -> dict[str, int]:
        return {}

    # encoding ------------------------------------------------------------------------------
    def encode(self, text: str, truncation: bool | None = None, max_length: int | None = None,
               add_special_tokens: bool = True) -> list[int]:
        ids = list(self.sp_model.encode(text))
        if add_special_tokens:
            if self.add_bos and self.bos_token_id is not None:
                ids.insert(0, self.bos_token_id)
            if self.add_eos and self.eos_token_id is not None:
                ids.append(self.eos_token_id)
        if truncation and max_length is not None and len(ids) > max_length:
            ids = ids[-max_length:] if self._truncation_side == "left" else ids[:max_length]
        return ids

    def __call__(self, text: str | list[str], text_pair: str | None = None, add_special_tokens: bool = True,
                 truncation: bool = False, max_length: int | None = None) -> Any:
        from transformers import BatchEncoding

        def one(t: str) -> list[int]:
            ids = self.encode(t, truncation=truncation, max_length=max_length,
                              add_special_tokens=add_special_tokens)
            if text_pair is not None:
                ids += self.encode(text_pair, add_special_tokens=False)
            return ids

        if isinstance(text, str):
            ids = one(text)
            return BatchEncoding({"input_ids": ids, "attention_mask": [1] * len(ids)})
        batch = [one(t) for t in text]
        return BatchEncoding({"input_ids": batch, "attention_mask": [[1] * len(b) for b in batch]})

    def apply_chat_template(self, messages: list[Any], tools: list[dict[str, Any]] | None = None,
                            **kwargs: Any) -> str | list[int]:
        """The folder's chat template rendered with jinja2 (HF's variables)."""
        if not self.chat_template:
            raise ValueError(f"{self.folder} has no chat template")
        import jinja2

        env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True,
                                 loader=jinja2.BaseLoader(), autoescape=False)

        def raise_exception(message: str) -> None:
            raise ValueError(message)

        env.globals["raise_exception"] = raise_exception
        text = env.from_string(self.chat_template).render(
            messages=messages, tools=tools, bos_token=self.bos_token or "", eos_token=self.eos_token or "",
            add_generation_prompt=kwargs.get("add_generation_prompt", False))
        if kwargs.get("tokenize", True):
            return self.encode(text, add_special_tokens=False)
        return text

    # decoding ------------------------------------------------------------------------------
    def convert_tokens_to_ids(self, tokens: str | list[str]) -> int | list[int]:
        unk = self.unk_token_id if self.unk_token_id is not None else 0
        if isinstance(tokens, str):
            return self._vocab.get(tokens, unk)
        return [self._vocab.get(t, unk) for t in tokens]

    def convert_ids_to_tokens(self, ids: Sequence[int], skip_special_tokens: bool = False) -> list[str]:
        n = len(self._pieces)
        return [self._pieces[i] if 0 <= i < n else "" for i in ids
                if not (skip_special_tokens and i in self._special)]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return self.sp_model.decode_pieces(list(tokens))

    def decode(self, ids: Sequence[int] | int, skip_special_tokens: bool = False) -> str:
        if isinstance(ids, int):
            ids = [ids]
        n = len(self._pieces)
        ids = [int(i) for i in ids if 0 <= int(i) < n]
        if skip_special_tokens:
            return self.sp_model.decode([i for i in ids if i not in self._special])
        # sentencepiece renders control pieces as nothing; show them as HF does
        out: list[str] = []
        run: list[int] = []
        for i in ids:
            if i in self._special:
                if run:
                    out.append(self.sp_model.decode(run))
                    run = []
                out.append(self._pieces[i])
            else:
                run.append(i)
        if run:
            out.append(self.sp_model.decode(run))
        return "".join(out)
