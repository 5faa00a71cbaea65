"""Prompt formats: how an instruction (+ input) becomes a model family's prompt, and which
format a model points at. The one owner of model families: nothing else names one.

A format is a file ``prompts/formats/NAME.json`` (KnowLM's template-file layout:
``prompt_input`` / ``prompt_no_input`` with ``{instruction}`` and ``{input}``; a prompt may
end with ``{eos_token}``). The same file declares its family and the evidence that points at it:

- ``family``: the family's name (``inspect-model`` prints it);
- ``names``: fragments of a model's name that point at it (``Ziya-LLaMA-13B`` → ``ziya``);
- ``tokens``: special tokens that, all present in a tokenizer, point at it;
- ``vocabulary``: ``{"model_type", "vocab_size", "about"}``, a vocabulary the family was
  fine-tuned on; ``"shared": true``: it only fits the family (a name must say which).

A new family is one new file (in ``$IE_SERVICE_PROMPTS/formats`` for your own); the lists
``serve --help`` shows and the checks of ``--prompt-format`` read the folder. ``chat`` is
no file: it uses the tokenizer's own chat template.

``auto`` on a model folder takes the first evidence that speaks and keeps its words as the
reason: 1. ``ie_service.json`` beside the weights (:mod:`~ie_service.models.sidecar`); 2. the
tokenizer: a family's tokens, then a chat template (→ ``chat``); 3. ``generation_config.json``
naming a format; 4. ``config.json``: a family's vocabulary (a name decides among the families
it fits); 5. names: the served name, the folder, ``config.json`` ``_name_or_path``,
``quantize_config.json`` ``model_name_or_path``, the README's title; 6. else ``alpaca``
(KnowLM's). Without a folder (a hub id): the name, else a chat template, else ``alpaca``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..paths import prompts_dir
from .folder import (NotAModelFolder, has_chat_template, read_config, read_json, readme_title, special_tokens,
                     text_config)
from .sidecar import SIDECAR

CHAT = "chat"
AUTO = "auto"
DEFAULT_FORMAT = "alpaca"
NO_EVIDENCE = "no evidence in the folder: KnowLM's Alpaca format (the default)"
EOS_PLACEHOLDER = "{eos_token}"  # a format file may end the prompt with the tokenizer's EOS
DEFAULT_EOS = "</s>"  # LLaMA's, when no tokenizer is known


class ChatTokenizer(Protocol):
    chat_template: str | None

    def apply_chat_template(self, conversation: list[dict[str, str]], **kwargs: Any) -> Any: ...


class UnknownPromptFormat(ValueError):
    """No format file of that name."""


# --- rendering --------------------------------------------------------------------------------

@dataclass(frozen=True)
class FileFormat:
    """A KnowLM-style template file."""

    name: str
    prompt_input: str
    prompt_no_input: str

    def render(self, instruction: str, input: str = "") -> str:
        if input:
            return self.prompt_input.format(instruction=instruction, input=input)
        return self.prompt_no_input.format(instruction=instruction)


@dataclass(frozen=True)
class ChatFormat:
    """The tokenizer's chat template, one user turn, generation prompt appended."""

    tokenizer: ChatTokenizer
    name: str = CHAT

    def render(self, instruction: str, input: str = "") -> str:
        content = f"{instruction}\n{input}" if input else instruction
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
        )


PromptFormat = FileFormat | ChatFormat


def formats_dir() -> Path:
    return prompts_dir() / "formats"


def available_formats(folder: Path | None = None) -> list[str]:
    folder = folder or formats_dir()
    return sorted(p.stem for p in folder.glob("*.json")) + [CHAT]


def format_choices() -> str:
    """The ``--prompt-format`` values, for help texts."""
    return " | ".join([*available_formats(), AUTO, "path/to/format.json"])


def load_file_format(name: str, folder: Path | None = None, eos_token: str | None = None) -> FileFormat:
    folder = folder or formats_dir()
    path = Path(name) if name.endswith(".json") else folder / f"{name}.json"
    if not path.is_file():
        raise UnknownPromptFormat(
            f"unknown prompt format {name!r}; choose one of {available_formats(folder)} "
            "or give a path to a .json template file"
        )
    data = json.loads(path.read_text(encoding="utf-8"))
    eos = eos_token or DEFAULT_EOS
    return FileFormat(path.stem, data["prompt_input"].replace(EOS_PLACEHOLDER, eos),
                      data["prompt_no_input"].replace(EOS_PLACEHOLDER, eos))


def check_format_name(name: str | None) -> None:
    """Refuse (ValueError) a format name no file or renderer has, before any work is done."""
    if name and name != AUTO and not name.endswith(".json") and name not in available_formats():
        raise UnknownPromptFormat(f"unknown prompt format {name!r}; choose one of {available_formats()}")


def resolve_format(name: str, model_path: str, tokenizer: ChatTokenizer | None) -> PromptFormat:
    """Turn a format name (or ``auto``: :func:`guess_format`) into a renderer."""
    if name == AUTO:
        name = guess_format(model_path, tokenizer)
    if name == CHAT:
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise UnknownPromptFormat("prompt format 'chat' needs a tokenizer with a chat template")
        return ChatFormat(tokenizer)
    return load_file_format(name, eos_token=getattr(tokenizer, "eos_token", None))


def choose_format(requested: str, model: str, tokenizer: ChatTokenizer | None,
                  found: tuple[str, str] | None) -> tuple[PromptFormat, str]:
    """The renderer a model is served with (and its training prompts rendered in), and why:
    ``requested`` unless it is ``auto``; else ``found``, what the folder says
    (:func:`folder_format`), with the default instead of ``chat`` when the loaded tokenizer
    has no chat template; without a folder, :func:`guess_format` from ``model``'s name."""
    if requested != AUTO:
        name, reason = requested, "--prompt-format"
    elif found is None:
        name, reason = AUTO, "guessed from the tokenizer and the name (not a local folder)"
    elif found[0] == CHAT and not getattr(tokenizer, "chat_template", None):
        name, reason = DEFAULT_FORMAT, "the folder pointed at 'chat' but the loaded tokenizer has no chat template"
    else:
        name, reason = found
    return resolve_format(name, model, tokenizer), reason


# --- families and their evidence ----------------------------------------------------------------

@dataclass(frozen=True)
class Vocabulary:
    """A vocabulary a family was fine-tuned on: a ``model_type`` with ``vocab_size`` rows."""

    model_type: str
    vocab_size: int
    about: str = ""
    shared: bool = False  # it fits the family, but only a name picks it

    def fits(self, text: dict[str, Any]) -> bool:
        return text.get("model_type") == self.model_type and text.get("vocab_size") == self.vocab_size


@dataclass(frozen=True)
class Family:
    """A format file's family and the evidence that points at it."""

    format: str
    label: str
    names: tuple[str, ...] = ()
    tokens: tuple[str, ...] = ()
    vocabulary: Vocabulary | None = None

    @classmethod
    def read(cls, path: Path) -> "Family":
        """A format file's declarations; a file without them is a family of its own name."""
        data = read_json(path) or {}
        vocab = data.get("vocabulary")
        vocabulary = (Vocabulary(vocab["model_type"], vocab["vocab_size"], str(vocab.get("about", "")),
                                 bool(vocab.get("shared")))
                      if isinstance(vocab, dict) and {"model_type", "vocab_size"} <= vocab.keys() else None)
        return cls(path.stem, str(data.get("family") or path.stem), _strings(data.get("names")),
                   _strings(data.get("tokens")), vocabulary)


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str) and v) if isinstance(value, list) else ()


def families(folder: Path | None = None) -> list[Family]:
    """Every format file's family, by name, the default's last (its names are the most generic)."""
    found = [Family.read(p) for p in sorted((folder or formats_dir()).glob("*.json"))]
    return sorted(found, key=lambda f: f.format == DEFAULT_FORMAT)


def format_from_name(name: str, known: list[Family] | None = None) -> str | None:
    """The family format a name points at (``Ziya-LLaMA-13B`` → ziya), or None."""
    lowered = name.lower()
    for family in known if known is not None else families():
        if any(fragment.lower() in lowered for fragment in family.names):
            return family.format
    return None


def guess_format(model_path: str, tokenizer: ChatTokenizer | None) -> str:
    """Without a folder to inspect (a hub id): the family the name points at, else a chat
    template if the tokenizer has one, else Alpaca/KnowLM."""
    named = format_from_name(model_path)
    if named:
        return named
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return CHAT
    return DEFAULT_FORMAT


def folder_format(path: str | Path, served_name: str | None = None) -> tuple[str, str] | None:
    """(format, reason) from what a model folder says; None when ``path`` is no model folder."""
    folder = Path(path)
    try:
        config = read_config(folder)
    except NotAModelFolder:
        return None
    return evidence_format(folder, config, served_name=served_name)


def evidence_format(folder: Path, config: dict[str, Any], *, served_name: str | None = None,
                    tokens: list[str] | None = None, chat_template: bool | None = None) -> tuple[str, str]:
    """(format, reason) from a folder's evidence, first that speaks (see the module docstring)."""
    sidecar = read_json(folder / SIDECAR)
    if sidecar and isinstance(sidecar.get("prompt_format"), str):
        source = sidecar.get("source")
        return sidecar["prompt_format"], f"{SIDECAR} says so" + (f" (written by {source})" if source else "")
    known = families()
    tokens = special_tokens(folder) if tokens is None else tokens
    chat_template = has_chat_template(folder) if chat_template is None else chat_template
    for family in known:
        if family.tokens and all(t in tokens for t in family.tokens):
            return family.format, f"the tokenizer has {family.label}'s {' and '.join(family.tokens)} tokens"
    if chat_template:
        return CHAT, "the tokenizer has a chat template"
    generation = read_json(folder / "generation_config.json") or {}
    if isinstance(generation.get("prompt_format"), str):
        return generation["prompt_format"], "generation_config.json names it"
    named = _named_format(folder, config, served_name, known)
    text = text_config(config)
    fitting = [f for f in known if f.vocabulary is not None and f.vocabulary.fits(text)]
    if named is not None and named[0] in {f.format for f in fitting}:
        return named[0], f"{named[1]} (the {text['vocab_size']}-token vocabulary fits it too)"
    if owner := next((f for f in fitting if not f.vocabulary.shared), None):
        sharers = [f for f in fitting if f.vocabulary.shared]
        share = (f" ({', '.join(f.label for f in sharers)} share{'s' if len(sharers) == 1 else ''} it: a name saying "
                 f"{' or '.join(f.format for f in sharers)}, --prompt-format or {SIDECAR} decides otherwise)"
                 if sharers else "")
        return owner.format, f"config.json: {owner.vocabulary.about}{share}"
    if named is not None:
        return named
    return DEFAULT_FORMAT, NO_EVIDENCE


def _named_format(folder: Path, config: dict[str, Any], served_name: str | None,
                  known: list[Family]) -> tuple[str, str] | None:
    """The family a name points at: the served name, the folder, ``_name_or_path``, the
    quantizer's record or the README title (first that speaks)."""
    names = [("the served name", served_name), ("the folder name", str(folder)),
             ("config.json _name_or_path", config.get("_name_or_path")),
             ("quantize_config.json model_name_or_path", (read_json(folder / "quantize_config.json") or {}).get(
                 "model_name_or_path")),
             ("the README title", readme_title(folder))]
    for where, name in names:
        if isinstance(name, str) and name and (fmt := format_from_name(name, known)):
            return fmt, f"{where} {name!r} names the family"
    return None


def family_name(fmt: str, reason: str, text: dict[str, Any]) -> str:
    """The family a chosen format stands for, as ``inspect-model`` prints it."""
    if fmt == CHAT:
        return f"{text.get('model_type') or 'unknown'} chat model"
    if reason == NO_EVIDENCE:
        return f"{text.get('model_type') or 'unknown'} (no family evidence)"
    return next((f.label for f in families() if f.format == fmt), fmt)
