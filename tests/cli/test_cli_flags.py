"""The command line without an engine: flags generated from EngineConfig, usage errors
reported by the command's parser (exit 2), one dispatch style."""

import pytest
from pydantic import Field

from ie_service.cli import build_parser, main
from ie_service.cli import common
from ie_service.engine.config import EngineConfig


def test_every_engine_config_field_is_a_flag():
    args = build_parser().parse_args(["serve"])
    assert common.engine_config_from(args) == EngineConfig()
    for name in EngineConfig.model_fields:
        assert hasattr(args, name)


def test_engine_flags_round_trip_through_serve_arguments(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    argv = ["serve", "--model", str(model), "-tp", "2", "--max-model-len", "4096", "--no-enforce-eager",
            "--gpu-memory-utilization", "0.5", "--prompt-format", "ziya"]
    config = common.engine_config_from(build_parser().parse_args(argv))
    assert (config.model, config.tensor_parallel_size, config.max_model_len, config.enforce_eager,
            config.gpu_memory_utilization, config.prompt_format) == (str(model), 2, 4096, False, 0.5, "ziya")
    again = build_parser().parse_args(["serve", *common.engine_cli_args(config)])
    assert common.engine_config_from(again) == config


def test_a_new_engine_field_gets_a_flag(monkeypatch, capsys):
    class Grown(EngineConfig):
        swap_gib: float | None = Field(None, gt=0, description="swap space per worker")
        trust_remote_code: bool = False

    monkeypatch.setattr(common, "EngineConfig", Grown)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    assert "--swap-gib SWAP_GIB" in capsys.readouterr().out
    args = build_parser().parse_args(["serve", "--swap-gib", "2.5", "--trust-remote-code"])
    config = common.engine_config_from(args)
    assert config.swap_gib == 2.5 and config.trust_remote_code is True
    flags = common.engine_cli_args(config)
    assert flags[flags.index("--swap-gib") + 1] == "2.5" and "--trust-remote-code" in flags


def run_cli(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    return exit_.value.code, capsys.readouterr().err


def test_triggers_only_needs_a_task_with_triggers(capsys):
    code, err = run_cli(["eval", "--dataset", "wnut17", "--task", "ner", "--triggers-only"], capsys)
    assert code == 2 and "ie-service eval: error: --triggers-only needs --task ee" in err


def test_kg_build_needs_a_schema(tmp_path, capsys):
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"id": "1", "text": "x"}\n')
    code, err = run_cli(["kg", "build", "--input", str(docs), "--out", str(tmp_path / "t.jsonl")], capsys)
    assert code == 2 and "kg build: error: give --schema FILE or --relations" in err


def test_bad_engine_value_is_a_usage_error_before_any_server(tmp_path, capsys):
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"id": "1", "text": "x"}\n')
    code, err = run_cli(["kg", "build", "--input", str(docs), "--out", str(tmp_path / "t.jsonl"),
                         "--relations", "r", "--max-model-len", "8"], capsys)
    assert code == 2 and "--max-model-len: Input should be greater than or equal to 64" in err


def test_weights_ops_dispatch_through_func(tmp_path, capsys):
    (tmp_path / "a.bin").write_bytes(b"abc")
    assert main(["weights", "md5", str(tmp_path)]) == 0
    assert main(["weights", "md5", str(tmp_path), "--expect", str(tmp_path / "md5sums.txt")]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["weights", "recover", "--base", str(tmp_path / "no"), "--diff", str(tmp_path / "no"),
                 "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
