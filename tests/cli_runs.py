"""A command run in this process (``ie_service.cli.main``) and the one ``error:`` line a refused
input must give (no traceback)."""

from __future__ import annotations


def run_cli(capsys, *args: str) -> tuple[int, str]:
    from ie_service.cli import main

    code = main(list(args))
    err = capsys.readouterr().err.strip()
    return code, err


def assert_one_line(err: str, *needles: str) -> None:
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("error: "), err
    for needle in needles:
        assert needle in err, err
