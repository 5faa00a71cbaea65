"""``ie-service`` command line: serve, and the tools around the service."""

from __future__ import annotations

import argparse
import logging
import sys

from .engine_config import EngineConfig


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags that build an :class:`EngineConfig` (shared by serve, eval, kg)."""
    g = parser.add_argument_group("engine")
    g.add_argument("--model", default=None,
                   help="model folder (HF layout, safetensors). Default: the embedded "
                        "SmolLM2-135M-Instruct, converted once into ~/.cache/ie-service")
    g.add_argument("--tokenizer", default=None, help="tokenizer folder if not the model's")
    g.add_argument("--served-model-name", default=None, help="name reported by /v1/models")
    g.add_argument("--tensor-parallel-size", "-tp", type=int, default=1,
                   help="shard the model over N devices (or N CPU workers)")
    g.add_argument("--dtype", default="auto", help="auto | bfloat16 | float16 | float32")
    g.add_argument("--max-model-len", type=int, default=2048, help="context length in tokens")
    g.add_argument("--max-num-batched-tokens", type=int, default=None)
    g.add_argument("--max-num-seqs", type=int, default=None, help="max concurrent sequences")
    g.add_argument("--gpu-memory-utilization", type=float, default=None,
                   help="fraction of device memory for weights+KV cache "
                        "(on the CPU backend: of host memory, per worker; default 0.9 on a GPU, "
                        "about 3 GiB per worker on the CPU)")
    g.add_argument("--no-enforce-eager", dest="enforce_eager", action="store_false",
                   help="allow CUDA graphs / compilation (slower start, faster decode on GPU)")
    g.add_argument("--prompt-format", default="auto",
                   help="alpaca (KnowLM/ZhiXi) | ziya | raw | chat | auto | path/to/format.json")


def engine_config_from(args: argparse.Namespace) -> EngineConfig:
    return EngineConfig(
        model=args.model,
        tokenizer=args.tokenizer,
        served_model_name=args.served_model_name,
        dtype=args.dtype,
        tensor_parallel_size=args.tensor_parallel_size,
        max_model_len=args.max_model_len,
        max_num_batched_tokens=args.max_num_batched_tokens,
        max_num_seqs=args.max_num_seqs,
        gpu_memory_utilization=args.gpu_memory_utilization,
        enforce_eager=args.enforce_eager,
        prompt_format=args.prompt_format,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .api.app import create_app
    from .engine import Engine

    config = engine_config_from(args)
    app = create_app(lambda: Engine.start(config))
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def cmd_prepare_model(args: argparse.Namespace) -> int:
    from .embedded import ensure_embedded_model

    print(ensure_embedded_model())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ie-service",
        description="Instruction-driven information extraction (NER / RE / EE) served by vLLM.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="start the HTTP service",
                           description="Start the engine and serve /generate, /extract/*, "
                                       "/health on HTTP.")
    add_engine_arguments(serve)
    serve.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 in containers)")
    serve.add_argument("--port", type=int, default=8090)
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(func=cmd_serve)

    prep = sub.add_parser("prepare-model",
                          help="convert the embedded SmolLM2 GGUF into the cache, print its path")
    prep.set_defaults(func=cmd_prepare_model)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
