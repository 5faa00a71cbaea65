"""What a model folder is, read from its files alone (no vllm, no torch): architecture,
tokenizer kind, stored dtype, quantization, chat template, the prompt format ``auto``
picks and why (:mod:`~ie_service.models.prompt_formats`), the answer shape it was trained
to write (:mod:`~ie_service.models.sidecar`), the dtype it will run in and the memory that
takes, and why the engine would refuse it.

Every engine start goes through :func:`inspect_for_start` once (``serve``'s ``preflight``
logs :meth:`ModelInspection.describe`); ``ie-service inspect-model DIR`` prints it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from .folder import (NotAModelFolder, TokenizerKind, has_chat_template, read_config, special_tokens, text_config,
                     tokenizer_kind)
from .footprint import ModelFootprint
from .prompt_formats import AUTO, evidence_format, family_name
from .quantization import QuantizationInfo, has_cpu_4bit_kernels, quantization_of, refusal
from .sidecar import DEFAULT_ANSWER_SHAPE, answer_shape_of

GiB = 1024**3


class CpuFacts(Protocol):
    """What the inspection needs to know of the CPU it plans for (``engine.host.HostShape``)."""

    cpu_flags: frozenset[str]

    @property
    def native_bf16(self) -> bool: ...


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

def inspect_model(path: str | Path, *, dtype: str = AUTO, on_cpu: bool = True, host: CpuFacts | None = None,
                  native_bf16: bool | None = None, served_name: str | None = None,
                  tensor_parallel_size: int = 1, cpu_4bit_kernels: bool | None = None) -> ModelInspection:
    """Inspect a model folder. ``host`` (or ``native_bf16``) says what the CPU can do: the
    caller reads it (:func:`ie_service.engine.host.read_host`); neither: no native bf16.
    ``cpu_4bit_kernels``: whether the CPU backend has vLLM's 4-bit GPTQ/AWQ kernels
    (default: from ``host``; without a host, assumed). Raises :class:`NotAModelFolder`
    (``BrokenModelFolder`` for a ``config.json`` that is not a model config; the weight files
    are checked by :func:`~ie_service.models.folder.check_weight_files`)."""
    folder = Path(path)
    if not folder.is_dir():
        raise NotAModelFolder(f"{folder}: not a folder")
    config = read_config(folder)
    text = text_config(config)
    if native_bf16 is None:
        native_bf16 = bool(host and host.native_bf16)
    tokens = special_tokens(folder)
    chat = has_chat_template(folder)
    quant = quantization_of(folder, config)
    stored = str(text.get("torch_dtype") or text.get("dtype") or config.get("torch_dtype") or "unknown")
    fmt, reason = evidence_format(folder, config, served_name=served_name, tokens=tokens, chat_template=chat)
    shape, shape_warning = answer_shape_of(folder)
    run, why, warnings = plan_dtype(dtype, stored, on_cpu=on_cpu, native_bf16=native_bf16,
                                    quantized=quant is not None)
    footprint = ModelFootprint.of(folder, run, tensor_parallel_size, quantized=quant is not None)
    kind = tokenizer_kind(folder)
    if kind == "none":
        warnings.append("no tokenizer files (tokenizer.json / tokenizer.model): pass --tokenizer")
    if shape_warning:
        warnings.append(shape_warning)
    if cpu_4bit_kernels is None:
        cpu_4bit_kernels = not on_cpu or host is None or has_cpu_4bit_kernels(host.cpu_flags)
    refused = None if quant is None else refusal(folder, quant, text, tensor_parallel_size=tensor_parallel_size,
                                                 on_cpu=on_cpu, cpu_4bit_kernels=cpu_4bit_kernels)
    archs = text.get("architectures") or config.get("architectures") or []
    return ModelInspection(
        path=str(folder), family=family_name(fmt, reason, text),
        architecture=archs[0] if archs else None, model_type=text.get("model_type"),
        vocab_size=text.get("vocab_size") if isinstance(text.get("vocab_size"), int) else None,
        tokenizer=kind, special_tokens=tokens, chat_template=chat, stored_dtype=stored, quantization=quant,
        prompt_format=fmt, prompt_format_reason=reason, answer_shape=shape, run_dtype=run, dtype_reason=why,
        weights_gib=round(footprint.weights_bytes / GiB, 4),
        kv_cache_mib_per_1k_tokens=round(footprint.kv_bytes_per_token * 1024 / 1024**2, 2),
        files=sorted(p.name for p in folder.iterdir() if p.is_file()),
        warnings=warnings, refusal=refused,
    )


def inspect_for_start(model: str, *, dtype: str, on_cpu: bool, host: CpuFacts | None,
                      served_name: str | None = None,
                      tensor_parallel_size: int = 1) -> tuple[ModelInspection | None, str]:
    """(the inspection an engine starts with, the dtype it runs in). A model that is not a
    local folder with a ``config.json`` (a hub id) has no inspection; its dtype is planned
    without the folder's facts. A ``config.json`` that is not a model config raises
    :class:`~ie_service.models.folder.BrokenModelFolder` (never a hub id)."""
    if not (Path(model) / "config.json").is_file():  # what inspect_model would refuse as NotAModelFolder
        native_bf16 = bool(on_cpu and host is not None and host.native_bf16)
        return None, plan_dtype(dtype, "unknown", on_cpu=on_cpu, native_bf16=native_bf16, quantized=False)[0]
    inspection = inspect_model(model, dtype=dtype, on_cpu=on_cpu, host=host, served_name=served_name,
                               tensor_parallel_size=tensor_parallel_size)
    return inspection, inspection.run_dtype
