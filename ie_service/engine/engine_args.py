"""The arguments vLLM's engine is built with, assembled from what the start plan decided.

:func:`~ie_service.engine.start_plan.plan_start` decides everything first (the inspection and
the dtype, the KV block, the tokenizer, the parallel plan and CPU layout, the KV cache size,
the adapters) and refuses what cannot start; :func:`vllm_kwargs` only puts those values into
the shape :class:`AsyncEngineArgs` takes. No vllm import (but for the sentencepiece mode).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..models.quantization import QuantizationInfo
from ..models.tokenizer_choice import MODE as SENTENCEPIECE, TokenizerChoice
from .config import EngineConfig

# The engine core builds its scheduler by name (engine/fair_scheduler.py imports vLLM; this does not).
FAIR_SCHEDULER = "ie_service.engine.fair_scheduler.FairShareScheduler"
FAIR_SHARE_KEY = "ie_fair_share_prefill_tokens"  # in vLLM's additional_config

STRUCTURED_OUTPUTS = {"backend": "xgrammar", "disable_any_whitespace": True}


def tokenizer_kwargs(choice: TokenizerChoice) -> dict[str, Any]:
    """vLLM's tokenizer mode for the tokenizer chosen
    (:func:`~ie_service.models.tokenizer_choice.choose_tokenizer`): nothing for the fast
    tokenizer; the registered sentencepiece mode otherwise, with the ``hf_overrides`` that
    makes vLLM's spawned engine core register it too."""
    if choice.mode != SENTENCEPIECE:
        return {}
    from .sp_tokenizer import keep_hf_config  # imports vllm: only for the folders that need the mode

    return {"tokenizer_mode": SENTENCEPIECE, "hf_overrides": keep_hf_config}


def vllm_kwargs(config: EngineConfig, model_path: str, *, dtype: str, block_size: int | None,
                quantization: QuantizationInfo | None, lora: Mapping[str, Any], memory: Mapping[str, Any],
                tokenizer: TokenizerChoice) -> dict[str, Any]:
    """Everything :class:`AsyncEngineArgs` (or ``vllm.LLM``) is built with: ``config``'s flags
    and the values decided for them: the ``dtype`` the engine runs in, the KV ``block_size``
    (None: vLLM's default), the folder's ``quantization``, the ``lora`` and ``memory``
    arguments and the ``tokenizer`` chosen."""
    kwargs: dict[str, Any] = {
        "model": model_path,
        "tokenizer": config.tokenizer,
        "served_model_name": config.served_model_name,
        "dtype": dtype,
        "tensor_parallel_size": config.tensor_parallel_size,
        "data_parallel_size": config.data_parallel_size,
        "max_model_len": config.max_model_len,
        "enforce_eager": config.enforce_eager,
        "seed": config.seed,
        # every step reports its stats: StepStats (health's step clock, per-replica load) and
        # vLLM's own periodic log line while it works
        "disable_log_stats": False,
        # Compact JSON under constraints: LLaMA models otherwise loop on whitespace.
        "structured_outputs_config": dict(STRUCTURED_OUTPUTS),
        # issue 20 (fair share): each prompt carries its request's size as priority, so a
        # small request is scheduled before a big one's waiting prompts
        "scheduling_policy": "priority",
        # issue 31 (fair share): while such a request is in, the bigger ones' prefill waits
        "scheduler_cls": FAIR_SCHEDULER,
        "additional_config": {FAIR_SHARE_KEY: config.fair_share_prefill_tokens},
    }
    if config.nnodes > 1:
        kwargs.update(nnodes=config.nnodes, node_rank=config.node_rank, master_addr=config.master_addr,
                      master_port=config.master_port, distributed_executor_backend="mp")
    if config.max_num_batched_tokens:
        kwargs["max_num_batched_tokens"] = config.max_num_batched_tokens
    if config.max_num_seqs:
        kwargs["max_num_seqs"] = config.max_num_seqs
    if config.long_prefill_token_threshold:
        kwargs["long_prefill_token_threshold"] = config.long_prefill_token_threshold
    if block_size is not None:
        kwargs["block_size"] = block_size
    if config.quantization:
        kwargs["quantization"] = config.quantization
    elif quantization is not None and quantization.pass_flag:
        kwargs["quantization"] = quantization.method  # vLLM reads quantize_config.json only when told
    kwargs.update(lora)  # serve --lora: run-time adapters
    kwargs.update(memory)
    kwargs.update(tokenizer_kwargs(tokenizer))  # last: the sentencepiece mode imports vllm
    return kwargs
