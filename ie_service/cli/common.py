"""What several commands share: usage errors, the engine flags (generated from
:class:`EngineConfig`), and the service a client command talks to."""

from __future__ import annotations

import argparse
import os
import sys
import time
import types
import typing
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError
from pydantic.fields import FieldInfo

from ..engine import EngineConfig
from ..errors import BadInputFile, RuntimeFailure, UserInputError, one_line
from . import arg_types


class UsageError(UserInputError):
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
    "max_num_batched_tokens": "tokens one engine step may schedule (vLLM's default when unset)",
    "long_prefill_token_threshold": "prompt tokens one request may prefill in one engine step while others "
                                    "wait (vLLM's; unset: no cap)",
}
ALIASES = {"tensor_parallel_size": ["-tp"], "data_parallel_size": ["-dp"]}
METAVARS = {"lora": "NAME=PATH"}


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
    if typing.get_origin(kind) is list:  # repeatable: --lora A=... --lora B=...
        group.add_argument(_flag(name), dest=name, action="append", default=None, help=help,
                           metavar=METAVARS.get(name, name.upper()))
        return
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


ENGINE_GROUP_CLIENT = "engine options (used only when no --url is given: a local engine is started)"


def add_engine_arguments(parser: argparse.ArgumentParser, title: str = "engine options") -> None:
    """One flag per :class:`EngineConfig` field (``serve``, and ``eval`` / ``kg build`` that
    start a server): ``--max-model-len N``; a bool that defaults to true is ``--no-...``.
    They go in a group of their own, printed after the command's own options."""
    group = parser.add_argument_group(title)
    for name, field in EngineConfig.model_fields.items():
        _add_flag(group, name, field)


LISTS = {name for name, f in EngineConfig.model_fields.items() if typing.get_origin(_scalar(f.annotation)) is list}


def engine_config_from(args: argparse.Namespace) -> EngineConfig:
    """The engine flags as an :class:`EngineConfig`, checked (:func:`check_engine_config`)
    before any engine starts: a bad value is a :class:`UsageError` naming the flag."""
    try:
        values = {name: getattr(args, name) for name in EngineConfig.model_fields}
        config = EngineConfig(**{k: v for k, v in values.items() if v is not None or k not in LISTS})
    except ValidationError as exc:
        problems = "; ".join(f"{_flag(str(e['loc'][0]))}: {e['msg']}" for e in exc.errors())
        raise UsageError(problems) from exc
    check_engine_config(config)
    return config


DTYPES = ("auto", "bfloat16", "float16", "float32", "half", "float")
EMBEDDED_NAMES = ("embedded", "embedded:base")


def _looks_like_path(value: str) -> bool:
    return value.startswith(("/", ".", "~")) or Path(value).exists()


def _check_model_folder(flag: str, value: str | None, needs: str) -> None:
    """A path-like ``--model`` / ``--tokenizer`` must be a folder holding ``needs``; other
    names (a hub id) are left to the engine."""
    if value is None or value in EMBEDDED_NAMES or not _looks_like_path(value):
        return
    path = Path(value).expanduser()
    if not path.exists():
        raise UsageError(f"{flag} {value}: no such folder")
    if not path.is_dir():
        raise UsageError(f"{flag} {value}: is a file, expected a model folder (HF layout)")
    if not (path / needs).is_file():
        raise UsageError(f"{flag} {value}: no {needs} in this folder (expected an HF model folder)")


def check_engine_config(config: EngineConfig) -> None:
    """What the engine would only find out after it started: an unknown dtype, prompt
    format or quantization method, a model path that is not a model folder."""
    from ..engine.quantization_methods import check_quantization
    from ..models.prompt_formats import AUTO, CHAT, UnknownPromptFormat, available_formats, load_file_format

    if config.dtype not in DTYPES:
        raise UsageError(f"--dtype {config.dtype!r}: choose one of {', '.join(DTYPES)}")
    if config.prompt_format not in (AUTO, CHAT):
        try:
            load_file_format(config.prompt_format)
        except UnknownPromptFormat:
            raise UsageError(f"--prompt-format {config.prompt_format!r}: choose one of "
                             f"{', '.join([AUTO, *available_formats()])} or a .json template file") from None
        except (OSError, ValueError, KeyError) as exc:
            raise UsageError(f"--prompt-format {config.prompt_format}: not a template file "
                             f"(JSON with prompt_input and prompt_no_input): {exc}") from None
    check_quantization(config.quantization)
    _check_model_folder("--model", config.model, "config.json")
    _check_model_folder("--tokenizer", config.tokenizer, "tokenizer_config.json")


def engine_cli_args(config: EngineConfig) -> list[str]:
    """The ``serve`` flags that reproduce ``config`` (to start a server for eval / kg)."""
    out = []
    for name, field in EngineConfig.model_fields.items():
        value = getattr(config, name)
        if isinstance(value, bool):
            if value != field.default:
                out.append(_flag(name if value else "no_" + name))
        elif isinstance(value, list):
            for item in value:
                out += [_flag(name), str(item)]
        elif value is not None:
            out += [_flag(name), str(value)]
    return out


URL_ENV = "IE_SERVICE_URL"
START_NOTE = ("no --url (or $IE_SERVICE_URL): starting a local engine for this command, "
              "about 60-90 s on a small CPU; give --url http://HOST:8090 to use a running service")


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """Where a client command finds the service: ``--url`` (default ``$IE_SERVICE_URL``), or
    a server started here with the engine options (their own group, printed last)."""
    parser.add_argument("--url", type=arg_types.http_url, default=os.environ.get(URL_ENV) or None,
                        help=f"a running service, e.g. http://127.0.0.1:8090 (default: ${URL_ENV}; "
                             "without either, a local engine is started for this command: 60-90 s)")
    parser.add_argument("--api-key", type=arg_types.api_key, default=None,
                        help="the service's API key (serve --api-key), if it has one")
    parser.add_argument("--verbose", action="store_true",
                        help="log every HTTP request and library INFO lines (off: only progress and results)")
    add_engine_arguments(parser, ENGINE_GROUP_CLIENT)


def check_reachable(url: str, api_key: str | None = None) -> None:
    """:class:`RuntimeFailure` (exit 1) when nothing answers HTTP at ``url``: one line up
    front, not one failure per document."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        httpx.get(f"{url}/health", headers=headers, timeout=10)
    except httpx.TransportError as exc:
        raise RuntimeFailure(f"cannot reach {url}: {type(exc).__name__}: {exc}") from None


def check_engine_flags_unused(args: argparse.Namespace) -> None:
    """With ``--url`` (or ``$IE_SERVICE_URL``) no engine is started here, so an engine flag
    given beside it would be ignored: a :class:`UsageError` naming it instead."""
    if not args.url:
        return
    given = [_flag(name) for name, field in EngineConfig.model_fields.items()
             if getattr(args, name, None) != (None if name in LISTS else field.default)]
    if given:
        raise UsageError(f"{', '.join(given)}: engine options start an engine here, but --url (or "
                         f"${URL_ENV}) names a running service whose own settings apply; give one or the other")


def service_url(args: argparse.Namespace, log_path: Path) -> AbstractContextManager[str]:
    """Context yielding ``--url`` (checked to answer), or the URL of a server started here
    with the engine flags (checked before it starts)."""
    check_engine_flags_unused(args)
    if args.url:
        check_reachable(args.url, args.api_key)
        return nullcontext(args.url)
    return _started_here(engine_cli_args(engine_config_from(args)), log_path)


@contextmanager
def _started_here(extra_args: list[str], log_path: Path) -> Iterator[str]:
    """A local server, said so on stderr with how long it took; one that does not come up is
    a :class:`RuntimeFailure` (exit 1)."""
    from ..local_server import local_server

    print(f"note: {START_NOTE} (log: {log_path})", file=sys.stderr, flush=True)
    started = time.monotonic()
    with ExitStack() as stack:
        try:
            url = stack.enter_context(local_server(extra_args, log_path=log_path))
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeFailure(f"the service started here did not come up: {exc}") from None
        print(f"note: local engine ready in {time.monotonic() - started:.0f} s at {url}", file=sys.stderr, flush=True)
        yield url


def read_json(path: str) -> Any:
    """The JSON value in a file: a one-line error with the line number (exit 2) when it is
    not JSON, or nested too deeply to parse."""
    import json

    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise BadInputFile(path, exc.strerror or one_line(exc)) from None
    except UnicodeDecodeError as exc:
        line = exc.object.count(b"\n", 0, exc.start) + 1
        raise BadInputFile(path, f"not UTF-8 (byte {exc.start})", line=line) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInputFile(path, f"not JSON: {exc.msg} (column {exc.colno})", line=exc.lineno) from None
    except RecursionError:
        raise BadInputFile(path, "not JSON: nested too deeply") from None
