"""``GET /``: the playground, one page with its script and style served from package data
(no CDN), under a strict Content-Security-Policy. It loads without an API key (the guard
lets exactly these three paths through) and sends the key the user types on its API calls."""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

router = APIRouter(include_in_schema=False)

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
ASSETS = {"/": ("playground.html", "text/html; charset=utf-8"),
          "/playground.js": ("playground.js", "text/javascript; charset=utf-8"),
          "/playground.css": ("playground.css", "text/css; charset=utf-8")}


@cache
def asset(name: str) -> bytes:
    return (resources.files("ie_service.api") / "static" / name).read_bytes()


def _serve(path: str) -> Response:
    name, media_type = ASSETS[path]
    return Response(asset(name), media_type=media_type, headers={
        "content-security-policy": CSP, "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer", "cache-control": "no-cache"})


@router.get("/")
async def page() -> Response:
    return _serve("/")


@router.get("/playground.js")
async def script() -> Response:
    return _serve("/playground.js")


@router.get("/playground.css")
async def style() -> Response:
    return _serve("/playground.css")
