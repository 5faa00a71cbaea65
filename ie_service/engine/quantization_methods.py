"""``--quantization`` against vLLM's method names, read from its source without importing it."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserInputError


class UnknownQuantization(UserInputError, ValueError):
    """A ``--quantization`` vLLM has no method for."""


def quantization_methods() -> tuple[str, ...] | None:
    """vLLM's quantization method names, read from its source without importing vllm (the
    ``QuantizationMethods`` literal); None when vLLM is not installed or the list moved."""
    import ast
    from importlib.machinery import PathFinder

    spec = PathFinder.find_spec("vllm")  # on sys.path, whatever sys.modules holds; runs nothing
    if spec is None or spec.origin is None:
        return None
    source = Path(spec.origin).parent / "model_executor/layers/quantization/__init__.py"
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if (isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "QuantizationMethods" for t in node.targets)
                and isinstance(node.value, ast.Subscript)):
            names = [e.value for e in ast.walk(node.value.slice) if isinstance(e, ast.Constant)]
            return tuple(n for n in names if isinstance(n, str)) or None
    return None


def check_quantization(method: str | None) -> None:
    """Refuse a ``--quantization`` vLLM does not know, before it is imported."""
    if method is None:
        return
    known = quantization_methods()
    if known is not None and method not in known:
        raise UnknownQuantization(f"--quantization {method!r}: vLLM has no such method; choose one of "
                                  f"{', '.join(known)} (or leave it out: the folder's config says)")
