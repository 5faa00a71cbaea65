"""MkDocs hook (``mkdocs.yml``: ``hooks``): the reference pages are generated from the code at
build time, so they cannot drift from it.

* ``reference/cli.md``: every ``ie-service`` command's ``--help``, from the argparse parsers;
* ``reference/http.md`` and ``reference/openapi.json``: the app's OpenAPI document;
* ``results.md``: ``benchmarks/RESULTS.md``, every measured table.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


# ---- CLI


def _leaves(parser: argparse.ArgumentParser, prog: list[str]) -> list[tuple[list[str], argparse.ArgumentParser]]:
    """(command words, parser) of the parser and of every sub-command, depth first."""
    out = [(prog, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                out += _leaves(child, [*prog, name])
    return out


def cli_reference() -> str:
    from ie_service.cli import build_parser

    os.environ["COLUMNS"] = "100"  # argparse wraps --help to the terminal width
    lines = ["# Command line reference", "",
             "Generated from the argparse parsers at build time (`ie-service COMMAND --help` prints the same).",
             ""]
    for words, parser in _leaves(build_parser(), ["ie-service"]):
        lines += [f"## `{' '.join(words)}`", "", "```text", parser.format_help().rstrip(), "```", ""]
    return "\n".join(lines)


# ---- HTTP


def openapi() -> dict[str, Any]:
    from ie_service.api.app import create_app

    def no_engine():  # the document needs no engine; the app never starts here
        raise RuntimeError("not started")

    return create_app(no_engine).openapi()


def _type_of(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " \\| ".join(_type_of(s) for s in schema[key])
    if schema.get("type") == "array":
        return f"array of {_type_of(schema.get('items', {}))}"
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    return schema.get("type", "any")


def _cell(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def http_reference(doc: dict[str, Any]) -> str:
    lines = ["# HTTP reference", "",
             f"Generated from the app's OpenAPI document at build time ({doc['info']['title']} "
             f"{doc['info']['version']}; the raw document: [openapi.json](openapi.json), also served at "
             "`/openapi.json`). Every error is a 4xx/5xx with `{\"error\": \"...\"}`.", "",
             "| method | path | what |", "| --- | --- | --- |"]
    ops = [(path, method, op) for path, item in doc["paths"].items() for method, op in item.items()]
    for path, method, op in ops:
        lines.append(f"| {method.upper()} | [`{path}`](#{method}-{path.strip('/').replace('/', '-').replace('{', '').replace('}', '')}) | {_cell(op.get('summary'))} |")
    lines.append("")
    for path, method, op in ops:
        anchor = f"{method}-{path.strip('/').replace('/', '-').replace('{', '').replace('}', '')}"
        lines += [f"## {method.upper()} `{path}` {{ #{anchor} }}", ""]
        if op.get("description"):
            lines += [op["description"].strip(), ""]
        params = op.get("parameters", [])
        if params:
            lines += ["| parameter | in | type | required | description |", "| --- | --- | --- | --- | --- |"]
            lines += [f"| `{p['name']}` | {p['in']} | {_type_of(p.get('schema', {}))} | "
                      f"{'yes' if p.get('required') else 'no'} | {_cell(p.get('description'))} |" for p in params]
            lines.append("")
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if body:
            lines += [f"Request body: {_type_of(body)}", ""]
        lines += ["| status | body | meaning |", "| --- | --- | --- |"]
        for status, resp in op.get("responses", {}).items():
            schema = resp.get("content", {}).get("application/json", {}).get("schema")
            lines.append(f"| {status} | {_type_of(schema) if schema else ''} | {_cell(resp.get('description'))} |")
        lines.append("")
    lines += ["## Schemas", ""]
    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        lines += [f"### {name} {{ #{name.lower()} }}", ""]
        if schema.get("description"):
            lines += [_cell(schema["description"]), ""]
        props = schema.get("properties", {})
        if props:
            required = set(schema.get("required", []))
            lines += ["| field | type | required | description |", "| --- | --- | --- | --- |"]
            lines += [f"| `{field}` | {_type_of(p)} | {'yes' if field in required else 'no'} | "
                      f"{_cell(p.get('description'))} |" for field, p in props.items()]
            lines.append("")
        elif "enum" in schema:
            lines += [f"One of {_type_of(schema)}.", ""]
    return "\n".join(lines)


def results_page() -> str:
    return (ROOT / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8").replace("](../docs/", "](")


def on_files(files, config):  # noqa: ANN001 (MkDocs' hook signature)
    from mkdocs.structure.files import File

    doc = openapi()
    for path, content in (("reference/cli.md", cli_reference()), ("reference/http.md", http_reference(doc)),
                          ("reference/openapi.json", json.dumps(doc, indent=1, ensure_ascii=False)),
                          ("results.md", results_page())):
        files.append(File.generated(config, path, content=content))
    return files
