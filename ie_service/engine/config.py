"""Engine settings (no vllm import here, so the CLI and API can build them cheaply)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..models.prompt_formats import format_choices


class EngineConfig(BaseModel):
    """What the engine is started with. ``model=None`` means the embedded default."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str | None = Field(None, description="model folder; None = embedded SmolLM2-135M + IE adapter; 'embedded:base' = without the adapter")
    tokenizer: str | None = None
    tokenizer_mode: Literal["auto", "fast", "sentencepiece"] = Field(
        "auto", description="auto: the sentencepiece model itself when the folder has tokenizer.model "
                            "and the converted fast tokenizer gives other ids on a probe set (checked "
                            "at start); fast: the HF fast tokenizer; sentencepiece: tokenizer.model")
    served_model_name: str | None = None
    dtype: str = "auto"
    tensor_parallel_size: int = Field(1, ge=1)
    data_parallel_size: int = Field(
        1, ge=1, description="engine replicas inside this service (vLLM data parallel); vLLM "
                             "spreads requests over them. Each replica holds the whole model "
                             "(sharded by --tensor-parallel-size)")
    nnodes: int = Field(1, ge=1, description="nodes one tensor-parallel engine spans (vLLM's "
                                             "multiprocessing backend); node rank 0 serves HTTP, "
                                             "the others run with --headless")
    node_rank: int = Field(0, ge=0, description="this node's rank, 0..nnodes-1")
    master_addr: str = Field("127.0.0.1", description="address of node rank 0 for multi-node "
                                                      "tensor parallel (a loopback address: all "
                                                      "nodes run on this host)")
    master_port: int = Field(29501, ge=1, le=65535, description="port of node rank 0 for "
                                                               "multi-node tensor parallel")
    max_model_len: int = Field(2048, ge=64)
    max_num_batched_tokens: int | None = Field(None, ge=1)
    long_prefill_token_threshold: int | None = Field(None, ge=1)
    max_num_seqs: int | None = Field(None, ge=1)
    fair_share_prefill_tokens: int = Field(
        64, ge=0, le=1_000_000,
        description="while a more urgent (smaller) request is in the engine, bigger requests wait; "
                    "every 5th step they decode and one of their prompts prefills this many tokens, "
                    "and for a few steps after it their steps stay short. 0: vLLM's scheduling as it is")
    block_size: int | None = Field(
        None, ge=1, le=1024,
        description="KV cache block size in tokens. The prefix cache reuses whole blocks only, so a "
                    "prompt part shared by many requests (template, instruction, schema) is computed "
                    "once only when it spans at least one block. Default: 32 on the CPU backend (the "
                    "smallest its attention kernel takes; vLLM's own CPU default, 128, caches nothing "
                    "of a shorter shared prompt), vLLM's default on a GPU")
    gpu_memory_utilization: float | None = Field(
        None, gt=0.0, le=1.0,
        description="fraction of GPU memory for weights + KV cache (default 0.9). On the CPU "
                    "backend vLLM applies it to one NUMA node's memory: prefer --kv-cache-gib there",
    )
    kv_cache_gib: float | None = Field(
        None, gt=0.0, le=4096.0,
        description="KV cache size per worker in GiB (vLLM's kv_cache_memory_bytes). Default on "
                    "the CPU backend: 1 GiB (more if one max-model-len sequence needs it), lowered "
                    "to what fits on the NUMA node the worker runs on and under the cgroup memory "
                    "limit; start-up stops with an error naming this flag when it cannot fit. "
                    "Default on a GPU: sized by --gpu-memory-utilization",
    )
    enforce_eager: bool = True
    seed: int = 0
    quantization: str | None = Field(
        None, description="vLLM's quantization method (gptq, awq, ...), passed through. Default: "
                          "what the folder says (config.json quantization_config, or a "
                          "quantize_config.json / quant_config.json that vLLM reads only when told)")
    prompt_format: str = Field("auto", description=(
        f"{format_choices()} (auto: ie_service.json beside the weights, the tokenizer, generation_config, "
        "config.json, then the name; `ie-service inspect-model DIR` shows the choice and why)"))
    lora: list[str] = Field(default_factory=list, description=(
        "NAME=PATH: a LoRA adapter applied at run time beside the model (repeatable); a request "
        "picks it with \"adapter\": \"NAME\". Merged (weights merge-lora) is faster on a CPU"))

    @field_validator("lora")
    @classmethod
    def _adapters_exist(cls, value: list[str]) -> list[str]:
        from ..models.adapters import parse_lora

        parse_lora(value)  # one-line ValueError: a malformed, repeated or missing adapter
        return value
