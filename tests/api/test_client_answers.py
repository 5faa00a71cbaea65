"""``ie_service.client`` and ``ie-service extract`` through the real engine (the session server):
typed records for the README sentence, a batch, the async client, generate, and the command."""

from __future__ import annotations

import asyncio
import json

import pytest

from ie_service.cli import main
from ie_service.client import AsyncIEClient, IEClient, IEStatusError
from ie_service.extraction.records import Entity
from live_app import record_answer

pytestmark = pytest.mark.engine

README_SENTENCE = "Barack Obama met Angela Merkel in Berlin."


def test_client_answers_typed_records(server_url):
    with IEClient(server_url) as ie:
        assert ie.health().status == "ok"
        assert ie.models().data[0].max_model_len > 0
        result = ie.ner(README_SENTENCE, ["person", "location"], language="en")
        berlin = next(e for e in result.entities if e.text == "Berlin")
        assert isinstance(berlin, Entity) and (berlin.type, berlin.start, berlin.end) == ("location", 34, 40)
        assert result.template == "ner-en-schema@1" and result.stats.prompts == 1
        record_answer("client_ner", result.model_dump())
        texts = [README_SENTENCE, "Microsoft was founded by Bill Gates."]
        batch = ie.re(texts, ["founded by"], language="en")
        assert len(batch) == 2 and all(hasattr(r, "triples") for r in batch)
        record_answer("client_re_batch", [r.model_dump() for r in batch])
        assert ie.generate("What is the capital of France?", temperature=0, max_tokens=12).generated_text
        with pytest.raises(IEStatusError) as bad:
            ie.ner(README_SENTENCE, ["person"], template="no-such-template")
        assert bad.value.status == 422 and "unknown template" in bad.value.message
        record_answer("client_error", str(bad.value))


def test_async_client_runs_concurrently(server_url):
    async def run():
        async with AsyncIEClient(server_url) as ie:
            return await asyncio.gather(*(ie.ner(README_SENTENCE, ["location"], language="en") for _ in range(3)))

    results = asyncio.run(run())
    assert len(results) == 3 and len({json.dumps([e.model_dump() for e in r.entities]) for r in results}) == 1


def test_extract_command(server_url, capsys, tmp_path):
    assert main(["extract", "--task", "ner", "--schema", "person,location", "--language", "en",
                 "--url", server_url, README_SENTENCE]) == 0
    printed = capsys.readouterr().out
    record_answer("extract_cli", printed)
    records = [json.loads(line) for line in printed.splitlines()]
    assert all(0.0 <= r.pop("confidence") <= 1.0 for r in records)  # issue 29: on every record
    assert {"text": "Berlin", "start": 34, "end": 40, "grounded": True, "type": "location"} in records
    src = tmp_path / "texts.txt"
    src.write_text(f"{README_SENTENCE}\nMicrosoft was founded by Bill Gates.\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    argv = ["extract", "--task", "ner", "--schema", "person,location,organization", "-i", str(src), "-o", str(out),
            "--url", server_url]
    assert main(argv) == 0
    assert sorted(json.loads(line)["id"] for line in out.read_text().splitlines()) == ["1", "2"]
    record_answer("extract_cli_file", out.read_text())
    capsys.readouterr()
    assert main(argv) == 0  # resumed: nothing left to do
    assert json.loads(capsys.readouterr().err.strip().splitlines()[-1])["skipped"] == 2
