"""Convert usaddress's hand-labelled addresses (``training/labeled.xml`` of the usaddress 0.5.16
sdist on PyPI, MIT) into doccano JSONL: ``addresses.doccano.jsonl`` here.

One address a line: the tokens joined by spaces are the text; runs of tokens with the same tag
are one span (a trailing ``,`` or ``;`` of the run left out); only the six most frequent
tags are kept as labels (one NER prompt holds six), other tokens are text without a label.
400 addresses, a fixed random sample. Run: ``python convert.py PATH/TO/labeled.xml``.
"""

from __future__ import annotations

import json
import random
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

KEEP = ("AddressNumber", "StreetName", "StreetNamePostType", "PlaceName", "StateName", "ZipCode")
COUNT, SEED = 400, 0


def convert(address: ET.Element) -> dict:
    text, spans, run = "", [], None  # run: [start, end, tag] of the span being built
    for token in address:
        word = (token.text or "").strip()
        if not word:
            continue
        if text:
            text += " "
        start = len(text)
        text += word
        if run and run[2] == token.tag:
            run[1] = len(text)
        else:
            if run:
                spans.append(run)
            run = [start, len(text), token.tag]
    if run:
        spans.append(run)
    label = []
    for start, end, tag in spans:
        while end > start and text[end - 1] in ",;":
            end -= 1
        if tag in KEEP and end > start:
            label.append([start, end, tag])
    return {"text": text, "label": label}


def main(path: str) -> None:
    addresses = list(ET.parse(path).getroot())
    rows = [convert(a) for a in random.Random(SEED).sample(addresses, COUNT)]
    out = Path(__file__).with_name("addresses.doccano.jsonl")
    out.write_text("".join(json.dumps(r) + "\n" for r in rows if r["label"]), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])
