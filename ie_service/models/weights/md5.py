"""MD5 manifests of model folders, in ``md5sum`` format (``md5sum -c`` reads them)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tqdm import tqdm

MANIFEST = "md5sums.txt"
BLOCK = 8 * 1024 * 1024


def file_md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            h.update(block)
    return h.hexdigest()


def folder_md5(folder: str | Path) -> dict[str, str]:
    """``{relative path: md5}`` of every file in the folder (the manifest excluded)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder (md5 manifests are of model folders)")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    return {str(p.relative_to(folder)): file_md5(p) for p in tqdm(files, desc="md5", unit="file")}


def write_manifest(sums: dict[str, str], path: str | Path) -> None:
    Path(path).write_text("".join(f"{digest}  {name}\n" for name, digest in sums.items()))


def read_manifest(path: str | Path) -> dict[str, str]:
    out = {}
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not an md5sum manifest (not UTF-8 text)") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        digest, _, name = line.partition("  ")
        if len(digest) != 32 or not name:
            raise ValueError(f"{path}:{n}: not an md5sum line: {line!r}")
        out[name.lstrip("*")] = digest.lower()
    return out


def check(folder: str | Path, expected: dict[str, str]) -> list[str]:
    """Problems found (empty list = all files present with the expected checksums)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder")
    if not expected:
        raise ValueError("the manifest lists no files")
    problems = []
    for name, digest in tqdm(sorted(expected.items()), desc="md5 check", unit="file"):
        path = folder / name
        if not path.is_file():
            problems.append(f"missing: {name}")
        elif file_md5(path) != digest:
            problems.append(f"checksum mismatch: {name}")
    return problems
