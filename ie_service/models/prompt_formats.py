"""Prompt formats per model family: how an instruction (+ input) becomes the model's prompt.

File formats live in ``ie_service/prompts/formats/NAME.json`` (KnowLM's template-file layout:
``prompt_input`` / ``prompt_no_input`` with ``{instruction}`` and ``{input}``). The format
``chat`` uses the tokenizer's own chat template instead of a file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..paths import prompts_dir

CHAT = "chat"
AUTO = "auto"


class ChatTokenizer(Protocol):
    chat_template: str | None

    def apply_chat_template(self, conversation: list[dict[str, str]], **kwargs: Any) -> Any: ...


class UnknownPromptFormat(ValueError):
    """No format file of that name."""


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


def available_formats(folder: Path | None = None) -> list[str]:
    folder = folder or prompts_dir() / "formats"
    return sorted(p.stem for p in folder.glob("*.json")) + [CHAT]


EOS_PLACEHOLDER = "{eos_token}"  # a format file may end the prompt with the tokenizer's EOS
DEFAULT_EOS = "</s>"  # LLaMA's, when no tokenizer is known
DEFAULT_FORMAT = "alpaca"
# name fragments that identify a family's own format (the last step of ``auto``)
NAME_HINTS = (("ziya", "ziya"), ("oneke", "oneke"), ("firefly", "firefly"), ("zhixi", "alpaca"),
              ("knowlm", "alpaca"), ("alpaca", "alpaca"))


def load_file_format(name: str, folder: Path | None = None, eos_token: str | None = None) -> FileFormat:
    folder = folder or prompts_dir() / "formats"
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


def format_from_name(name: str) -> str | None:
    """The family format a name points at (``Ziya-LLaMA-13B`` → ziya), or None."""
    lowered = name.lower()
    for key, fmt in NAME_HINTS:
        if key in lowered:
            return fmt
    return None


def guess_format(model_path: str, tokenizer: ChatTokenizer | None) -> str:
    """Without a folder to inspect (a hub id, training scripts): the family the name points
    at, else a chat template if the tokenizer has one, else Alpaca/KnowLM. (Folders go
    through :func:`~ie_service.models.inspection.choose_prompt_format`, which reads the
    evidence the folder holds.)"""
    named = format_from_name(model_path)
    if named:
        return named
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return CHAT
    return DEFAULT_FORMAT


def resolve_format(name: str, model_path: str, tokenizer: ChatTokenizer | None) -> PromptFormat:
    """Turn a configured name (or ``auto``) into a renderer."""
    if name == AUTO:
        name = guess_format(model_path, tokenizer)
    if name == CHAT:
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise UnknownPromptFormat("prompt format 'chat' needs a tokenizer with a chat template")
        return ChatFormat(tokenizer)
    return load_file_format(name, eos_token=getattr(tokenizer, "eos_token", None))
