"""Prompt formats per model family: how an instruction (+ input) becomes the model's prompt.

File formats live in ``prompts/formats/NAME.json`` (KnowLM's template-file layout:
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


def load_file_format(name: str, folder: Path | None = None) -> FileFormat:
    folder = folder or prompts_dir() / "formats"
    path = Path(name) if name.endswith(".json") else folder / f"{name}.json"
    if not path.is_file():
        raise UnknownPromptFormat(
            f"unknown prompt format {name!r}; choose one of {available_formats(folder)} "
            "or give a path to a .json template file"
        )
    data = json.loads(path.read_text(encoding="utf-8"))
    return FileFormat(path.stem, data["prompt_input"], data["prompt_no_input"])


def guess_format(model_path: str, tokenizer: ChatTokenizer | None) -> str:
    """Pick a format from the model: Ziya by name, a chat template if the tokenizer has
    one, else Alpaca/KnowLM (ZhiXi and OneKE are trained on it)."""
    lowered = model_path.lower()
    if "ziya" in lowered:
        return "ziya"
    if any(key in lowered for key in ("zhixi", "knowlm", "oneke", "alpaca")):
        return "alpaca"
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return CHAT
    return "alpaca"


def resolve_format(name: str, model_path: str, tokenizer: ChatTokenizer | None) -> PromptFormat:
    """Turn a configured name (or ``auto``) into a renderer."""
    if name == AUTO:
        name = guess_format(model_path, tokenizer)
    if name == CHAT:
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise UnknownPromptFormat("prompt format 'chat' needs a tokenizer with a chat template")
        return ChatFormat(tokenizer)
    return load_file_format(name)
