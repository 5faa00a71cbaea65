"""``ie-service serve`` (the HTTP service) and ``ie-service prepare-model``."""

from __future__ import annotations

import argparse

from . import arg_types
from .common import add_engine_arguments, engine_config_from


def cmd_serve(args: argparse.Namespace) -> int:
    import logging

    from ..api.settings import ServiceSettings

    # every flag is checked before anything starts (one-line error naming the flag, exit 2):
    # the engine's (dtype, prompt format, model folder), then memory and the parallel layout
    config = engine_config_from(args)
    # --log-level debug also shows the engine's per-request token ids
    level = logging.getLevelName(args.log_level.upper())
    if isinstance(level, int):
        logging.getLogger("ie_service").setLevel(level)
    settings = ServiceSettings(
        api_keys=(args.api_key or []) + ServiceSettings.keys_from_env(),
        max_request_bytes=args.max_request_bytes,
        max_outstanding=args.max_outstanding,
        request_timeout_s=args.request_timeout,
    )
    from ..engine.prestart import preflight

    plan = preflight(config, headless=args.headless)  # decided (and refused) before vllm is imported
    import uvicorn

    from ..api.app import create_app
    from ..api.guard import UVICORN_LIMITS
    from ..engine.vllm_engine import Engine, run_follower

    if not args.headless:
        app = create_app(lambda: Engine.start(plan), settings=settings)  # every restart: the same plan
        # our middleware writes one JSON access line per request; uvicorn's own is off.
        # UVICORN_LIMITS: the h11 parser, with a bound on the request line + headers (issue 31)
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False,
                    **UVICORN_LIMITS)
        return 0
    return run_follower(plan)  # a follower node: its engine workers only, no HTTP


def cmd_prepare_model(args: argparse.Namespace) -> int:
    from ..models.embedded import ensure_base_model, ensure_embedded_model

    print(ensure_base_model() if args.base else ensure_embedded_model())
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="start the HTTP service",
                           description="Start the engine and serve /generate, /extract/*, "
                                       "/health on HTTP.")
    add_engine_arguments(serve)
    serve.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 in containers)")
    serve.add_argument("--port", type=arg_types.port, default=8090, help="TCP port, 1-65535")
    serve.add_argument("--log-level", default="info",
                       choices=["critical", "error", "warning", "info", "debug", "trace"],
                       help="log level (debug: each request's prompt and output token ids)")
    serve.add_argument("--headless", action="store_true",
                       help="follower node of a multi-node engine (--nnodes N --node-rank R ≥ 1 "
                            "--master-addr LEADER): run only this node's engine workers, no HTTP")
    limits = serve.add_argument_group("limits and access")
    limits.add_argument("--api-key", action="append", default=None, type=arg_types.api_key,
                        help="require this key on every route (repeatable; also $IE_SERVICE_API_KEYS, "
                             "comma-separated); clients send 'Authorization: Bearer KEY' or 'X-API-Key'. "
                             "An empty key is refused")
    limits.add_argument("--max-request-bytes", type=arg_types.int_at_least(1024), default=2 * 1024 * 1024,
                        help="larger bodies: 413 (at least 1024)")
    limits.add_argument("--max-outstanding", type=arg_types.positive_int, default=256,
                        help="engine requests in flight + waiting; beyond this: 429 with Retry-After")
    limits.add_argument("--request-timeout", type=arg_types.positive_float, default=600.0,
                        help="seconds per engine request; beyond: 504 and the generation is aborted")
    serve.set_defaults(func=cmd_serve)

    prep = sub.add_parser("prepare-model",
                          help="convert the embedded SmolLM2 GGUF and merge the shipped IE adapter "
                               "into the cache, print the folder")
    prep.add_argument("--base", action="store_true", help="only the converted base (no adapter)")
    prep.set_defaults(func=cmd_prepare_model)
