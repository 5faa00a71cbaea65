"""schemathesis against the OpenAPI spec (scripted engine): no input gives a 5xx."""

import json

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from fakes import ScriptedEngine
from ie_service.api.app import create_app


def _reply(prompt: str, schema) -> str:
    # answer the requested labels (constrained) or free text, as a model would
    if schema:
        return json.dumps({k: [] for k in schema.get("properties", {})})
    return "(a, b)"


ENGINE = ScriptedEngine(_reply)
ENGINE.max_model_len = 100_000
APP = create_app(lambda: ENGINE)
_lifespan = TestClient(APP)
_lifespan.__enter__()  # runs the lifespan: app.state.engine / extractor exist for schemathesis

schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    case.call_and_validate(checks=[not_a_server_error])
