"""Which tokenizer a model folder is served with: its fast ``tokenizer.json``, or its
sentencepiece model run by :mod:`ie_service.engine.sp_tokenizer` (vLLM tokenizer mode
``sentencepiece``). Decided before vllm is imported: ``auto`` compares the converted fast
tokenizer with the sentencepiece model on :data:`PROBES` (a few ms)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import sentencepiece as spm

from ..errors import UserInputError

MODE = "sentencepiece"
MODEL_FILE = "tokenizer.model"
CHOICES = ("auto", "fast", "sentencepiece")

# Where converted fast tokenizers and sentencepiece part ways (the strings and friends):
# whitespace runs, blank lines, tabs, full-width forms, CJK punctuation, code indentation,
# emoji (byte fallback), ligatures and combining accents (NFKC).
PROBES: tuple[str, ...] = (
    "a    b", "x\n\ny", "ＡＢＣ１２３", "，（）", "def f(x):\n    return x\n", "\tindented\ttab",
    "  leading and trailing  ", "emoji 🙂 and 🚀!", "ﬁnance ﬂow", "café cafe\u0301", "Ⅻ ① ㎏",
    "Barack Obama met Angela Merkel in Berlin.", "马云创办了阿里巴巴。", "line one\r\nline two",
)


class TokenizerModeError(UserInputError, ValueError):
    """``--tokenizer-mode sentencepiece`` on a folder without ``tokenizer.model``."""


@dataclass(frozen=True)
class TokenizerChoice:
    """The tokenizer mode the engine runs with, and why (for the start-up log)."""

    mode: str  # "sentencepiece" or "fast"
    reason: str

    @property
    def vllm_mode(self) -> str:
        return MODE if self.mode == MODE else "auto"


def disagreements(folder: str | Path, probes: Sequence[str] = PROBES) -> list[str]:
    """The probe strings on which the folder's fast (converted) tokenizer and its
    sentencepiece model give different ids (no special tokens)."""
    from transformers import AutoTokenizer

    folder = Path(folder)
    sp = spm.SentencePieceProcessor(model_file=str(folder / MODEL_FILE))
    fast = AutoTokenizer.from_pretrained(str(folder))
    return [p for p in probes if list(fast.encode(p, add_special_tokens=False)) != list(sp.encode(p))]


@lru_cache(maxsize=16)
def _choose(folder: str, requested: str, stamp: float) -> TokenizerChoice:
    path = Path(folder)
    has_model = (path / MODEL_FILE).is_file()
    if requested == "fast":
        return TokenizerChoice("fast", "--tokenizer-mode fast")
    if requested == MODE:
        if not has_model:
            raise TokenizerModeError(f"--tokenizer-mode sentencepiece needs {path / MODEL_FILE}, which is "
                                     f"missing (use --tokenizer-mode auto or fast)")
        return TokenizerChoice(MODE, "--tokenizer-mode sentencepiece")
    if not has_model:
        return TokenizerChoice("fast", f"auto: no {MODEL_FILE} in the folder")
    start = time.perf_counter()
    try:
        differ = disagreements(path)
    except Exception as exc:  # the fast tokenizer cannot even be built from this folder
        return TokenizerChoice(MODE, f"auto: {MODEL_FILE} present and no fast tokenizer loads "
                                     f"({type(exc).__name__})")
    ms = (time.perf_counter() - start) * 1000
    if differ:
        shown = ", ".join(repr(p) for p in differ[:3])
        return TokenizerChoice(MODE, f"auto: {MODEL_FILE} present and the fast tokenizer gives other "
                                     f"ids on {len(differ)}/{len(PROBES)} probe strings ({shown}); "
                                     f"checked in {ms:.0f} ms")
    return TokenizerChoice("fast", f"auto: {MODEL_FILE} present, fast tokenizer agrees with it on all "
                                   f"{len(PROBES)} probe strings ({ms:.0f} ms)")


def choose_tokenizer(folder: str | Path, requested: str = "auto") -> TokenizerChoice:
    """``auto``: sentencepiece when the folder has ``tokenizer.model`` and the fast tokenizer
    disagrees with it on :data:`PROBES`; ``fast`` / ``sentencepiece`` as asked."""
    if requested not in CHOICES:
        raise TokenizerModeError(f"--tokenizer-mode must be one of {', '.join(CHOICES)}, not {requested!r}")
    path = Path(folder)
    model = path / MODEL_FILE
    stamp = model.stat().st_mtime if model.is_file() else 0.0
    return _choose(str(path), requested, stamp)
