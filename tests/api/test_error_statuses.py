"""One table maps exceptions raised below the routes to statuses; routes do not translate."""

import pytest
from fastapi.testclient import TestClient

from fakes import ScriptedEngine
from ie_service.api.app import create_app
from ie_service.api.errors import STATUS


def raising(exc: Exception) -> ScriptedEngine:
    engine = ScriptedEngine()

    async def fail(*args, **kwargs):
        raise exc

    engine.generate = fail
    return engine


@pytest.mark.parametrize("exc_class", [cls for cls in STATUS if cls.__name__ != "ClientDisconnected"])
@pytest.mark.parametrize("path,body", [("/generate", {"instruction": "x"}),
                                       ("/extract/ner", {"text": "x", "schema": ["a"]})])
def test_each_listed_exception_gets_its_status(exc_class, path, body):
    engine = raising(exc_class("what went wrong"))
    with TestClient(create_app(lambda: engine)) as client:
        r = client.post(path, json=body)
    assert r.status_code == STATUS[exc_class], r.text
    assert r.json()["error"] == "what went wrong"
    if getattr(exc_class, "retry_after_s", None) is not None:
        assert r.headers["retry-after"] == str(exc_class.retry_after_s)
    if r.status_code == 503:  # every 503 says when to retry (a dead engine's first ones too)
        assert int(r.headers["retry-after"]) > 0


def test_unlisted_exception_is_500_without_details():
    engine = raising(KeyError("secret"))
    with TestClient(create_app(lambda: engine), raise_server_exceptions=False) as client:
        r = client.post("/generate", json={"instruction": "x"})
    assert r.status_code == 500 and r.json() == {"error": "internal error: KeyError"}
