"""What several commands share: usage errors, the engine flags (generated from
:class:`EngineConfig`), and the service a client command talks to."""

from __future__ import annotations

import argparse
import types
import typing
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError
from pydantic.fields import FieldInfo

from ..engine import EngineConfig


class UsageError(Exception):
    """Arguments that do not fit together: the command's parser reports it (exit 2)."""


# wording for the command line where a field has none, or a better one for a flag
HELP = {
    "model": "model folder (HF layout, safetensors). Default: the embedded SmolLM2-135M-Instruct "
             "with the shipped IE adapter merged in, made once in ~/.cache/ie-service; "
             "'embedded:base' serves the raw base without the adapter",
    "tokenizer": "tokenizer folder if not the model's",
    "served_model_name": "name reported by /v1/models",
    "tensor_parallel_size": "shard the model over N devices (or N CPU workers)",
    "dtype": "auto | bfloat16 | float16 | float32",
    "max_model_len": "context length in tokens",
    "max_num_seqs": "max concurrent sequences",
    "enforce_eager": "allow CUDA graphs / compilation (slower start, faster decode on GPU)",
    "seed": "the engine's random seed",
    "prompt_format": "alpaca (KnowLM/ZhiXi) | ziya | oneke | firefly | raw | chat | auto | path/to/format.json "
                     "(auto: ie_service.json beside the weights, the tokenizer, generation_config, config.json, "
                     "then the name; `ie-service inspect-model DIR` shows the choice and why)",
}
ALIASES = {"tensor_parallel_size": ["-tp"], "data_parallel_size": ["-dp"]}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _scalar(annotation: Any) -> Any:
    """``int | None`` → int; other annotations as they are."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return annotation


def _add_flag(group: argparse._ArgumentGroup, name: str, field: FieldInfo) -> None:
    kind, help = _scalar(field.annotation), HELP.get(name) or field.description
    if kind is bool:
        if field.default:
            group.add_argument(_flag("no_" + name), dest=name, action="store_false", help=help)
        else:
            group.add_argument(_flag(name), dest=name, action="store_true", help=help)
        return
    extra: dict[str, Any] = {}
    if typing.get_origin(kind) is Literal:
        extra["choices"] = list(typing.get_args(kind))
    elif kind in (int, float, str):
        extra["type"] = kind
    group.add_argument(_flag(name), *ALIASES.get(name, []), dest=name, default=field.default,
                       help=help, **extra)


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`EngineConfig` field (``serve``, and ``eval`` / ``kg build`` that
    start a server): ``--max-model-len N``; a bool that defaults to true is ``--no-...``."""
    group = parser.add_argument_group("engine")
    for name, field in EngineConfig.model_fields.items():
        _add_flag(group, name, field)


def engine_config_from(args: argparse.Namespace) -> EngineConfig:
    try:
        return EngineConfig(**{name: getattr(args, name) for name in EngineConfig.model_fields})
    except ValidationError as exc:
        problems = "; ".join(f"{_flag(str(e['loc'][0]))}: {e['msg']}" for e in exc.errors())
        raise UsageError(problems) from exc


def engine_cli_args(config: EngineConfig) -> list[str]:
    """The ``serve`` flags that reproduce ``config`` (to start a server for eval / kg)."""
    out = []
    for name, field in EngineConfig.model_fields.items():
        value = getattr(config, name)
        if isinstance(value, bool):
            if value != field.default:
                out.append(_flag(name if value else "no_" + name))
        elif value is not None:
            out += [_flag(name), str(value)]
    return out


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """Where a client command finds the service: ``--url``, or a server started here."""
    parser.add_argument("--url", default=None, help="a running service; default: start one here")
    parser.add_argument("--api-key", default=None)
    add_engine_arguments(parser)


def service_url(args: argparse.Namespace, log_path: Path) -> AbstractContextManager[str]:
    """Context yielding ``--url``, or the URL of a server started here with the engine flags."""
    from ..local_server import local_server

    if args.url:
        return nullcontext(args.url)
    return local_server(engine_cli_args(engine_config_from(args)), log_path=log_path)


def read_json(path: str) -> Any:
    from ..user_errors import read_json_file  # issue 12 #6: one-line error with the line number, exit 2

    return read_json_file(path)
