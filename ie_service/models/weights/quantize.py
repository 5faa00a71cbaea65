"""A merged full-precision model → a GPTQ or AWQ 4-bit folder vLLM serves, with GPTQModel
(the optional extra ``quantize``), calibrated on the texts the caller passes in (``weights
quantize`` renders the service's own IE prompts: :mod:`ie_service.training.calibration`).
GPTQ is written with ``desc_act=False`` (vLLM 0.32 refuses act-order with groups) and
symmetric zeros, in the ``gptq`` checkpoint format.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..folder import text_config
from ..quantization import GROUP_SIZES, fitting_group, group_misfits
from ..sidecar import SIDECAR
from .shards import TOKENIZER_FILES, WeightsError, atomic_output, copy_side_files

MISSING = ("weights quantize needs GPTQModel, which is not installed: pip install 'ie-service[quantize]' "
           "(gptqmodel pins numpy==2.2.6; install it in its own environment if that clashes)")


def check_quantizable(src: str | Path, *, method: str = "gptq", group_size: int | None = None) -> int:
    """What :func:`quantize` refuses before any work (WeightsError): an unknown method, a folder
    that is no model or is quantized already, a group size vLLM could not load, GPTQModel
    missing. Returns the group size: ``group_size``, or when None the largest common size that
    divides every layer's input (128 for most LLaMA shapes)."""
    src = Path(src)
    if method not in ("gptq", "awq"):
        raise WeightsError(f"--method must be gptq or awq, not {method!r}")
    if not (src / "config.json").is_file():
        raise WeightsError(f"{src} is not a model folder (no config.json)")
    config = json.loads((src / "config.json").read_text())
    if "quantization_config" in config:
        raise WeightsError(f"{src} is already quantized; quantize a full-precision (merged) folder")
    text = text_config(config)
    fits = fitting_group(text)
    if group_size is None:
        group_size = fits or -1
        sizes = ", ".join(map(str, GROUP_SIZES))
        print(f"group size {group_size} (the largest of {sizes} that divides every layer's input"
              f"{'' if fits else ': none does, so per channel'})", file=sys.stderr)
    if misfits := group_misfits(text, group_size):
        raise WeightsError(f"--group-size {group_size} does not divide {', '.join(misfits)} of {src}: vLLM could "
                           f"not load the result" + (f"; use --group-size {fits}" if fits else "; use --group-size -1"))
    _gptqmodel()
    return group_size


def _gptqmodel() -> Any:
    """The ``gptqmodel`` module (WeightsError naming the extra when it is not installed)."""
    # GPTQModel 7.6 gives its model loader 2 CPU workers but the CPU pool (cores + 1) // 2:
    # on a 2-core host that refuses to start ("requests 2 workers but parent 'cpu' only has 1")
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", "2")
    try:
        import gptqmodel
    except ImportError:
        raise WeightsError(MISSING) from None
    return gptqmodel


def quantize(src: str | Path, out: str | Path, prompts: Sequence[str], *, method: str = "gptq", bits: int = 4,
             group_size: int | None = None, force: bool = False) -> Path:
    """Quantize ``src`` into ``out`` (appears only when complete), calibrated on ``prompts``;
    refuses first what :func:`check_quantizable` refuses."""
    src, out = Path(src), Path(out)
    group_size = check_quantizable(src, method=method, group_size=group_size)
    if not prompts:
        raise WeightsError("no calibration prompts")
    gptq = _gptqmodel()
    if method == "gptq":
        config = gptq.GPTQConfig(bits=bits, group_size=group_size, desc_act=False, sym=True)
    else:
        config = gptq.AWQConfig(bits=bits, group_size=group_size)
    with atomic_output(out, force) as tmp:
        model = gptq.GPTQModel.load(str(src), config, device="cpu")
        model.quantize(list(prompts), batch_size=1)
        model.save(str(tmp))
        del model
        # the source's own tokenizer files, not the converted ones the library saves
        # (a sentencepiece folder must keep tokenizer.model and no tokenizer.json it never had),
        # and its prompt-format note (a recovered ZhiXi stays Alpaca without a flag)
        for name in TOKENIZER_FILES:
            (tmp / name).unlink(missing_ok=True)
        copy_side_files([src], tmp, (*TOKENIZER_FILES, SIDECAR))
    return out
