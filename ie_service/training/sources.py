"""The permissive training sets, read into gold documents, with their train / dev splits.

Each :class:`Source` names its task, language, license and files under a data folder (the
layout of ``shared/data/train``; pass it with ``--data-dir``). Every set keeps a dev split
out of training: the set's own dev file where it has one that we evaluate on (UNER Chinese,
PHEE), four FewRel relations held out entirely (zero-shot relation types), and a
deterministic 10% of everything else (by a hash of the sentence, so it never moves). A
sentence that is also in a named test set is never trained on (74 of FewFC train are).

Relation direction (issue 29): every RE source renders the relation's *subject* as the head,
read the way its name reads in English. FewRel's ``h`` is the Wikidata subject (a noun name
reads "the subject's <name> is the object": ``X mother Y`` = Y is X's mother; ``X follows
Y`` = X comes after Y); FewRel-PubMed's copy is already swapped to subject-first; KnowledgeNet
names its subject and object per property (``properties.json``, with types), renamed here to
verb phrases that read subject → object (``founded by``: the organization, then the founder).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..evaluation.datasets import bio_entities, load_bio, load_crossner, load_fewfc
from ..gold import GoldDoc, GoldEvent
from ..extraction.grounding import locate

DEV_SHARE = 0.10
# FewRel relation ids never trained on: scored as zero-shot relation types.
FEWREL_HELD_OUT = ("P26", "P641", "P206", "P410")  # spouse, sport, located next to water, military rank
PHEE_ROLES = ("Subject", "Treatment", "Effect", "Drug")  # Drug is nested under Treatment


@dataclass(frozen=True)
class Source:
    name: str
    task: str  # ner | re | ee
    language: str  # en | zh
    license: str
    files: tuple[str, ...]  # relative to the data folder
    read: Callable[[Path, "Source"], tuple[list[GoldDoc], list[GoldDoc]]]  # → (train, dev)
    descriptions: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    # RE: relation → (head type, tail type), for typed schemas ([{"relation", "head_type", "tail_type"}])
    types: dict[str, tuple[str, str]] = field(default_factory=dict, compare=False, hash=False)


def is_dev(text: str, share: float = DEV_SHARE) -> bool:
    """Deterministic split by the sentence's own hash: ``share`` of all texts (10%) are dev."""
    return int(hashlib.md5(text.encode("utf-8")).hexdigest()[:8], 16) % 1000 < share * 1000


def _hash_split(docs: list[GoldDoc]) -> tuple[list[GoldDoc], list[GoldDoc]]:
    return [d for d in docs if not is_dev(d.text)], [d for d in docs if is_dev(d.text)]


def _named(docs: list[GoldDoc], prefix: str) -> list[GoldDoc]:
    return [d.model_copy(update={"id": f"{prefix}-{i}"}) for i, d in enumerate(docs)]


def _spelled(span: str, text: str) -> str:
    """The text's own spelling of a span joined from tokens (``al - Qaeda`` → ``al-Qaeda``)."""
    where = locate(span, text)
    return text[where[0]:where[1]] if where else span


def read_uner(path: Path, join: str) -> list[GoldDoc]:
    """UNER ``.iob2``: ``# text = ...`` then ``id<TAB>token<TAB>tag<TAB>-<TAB>-``; the
    raw sentence is the text and entities are the tagged tokens joined with ``join``."""
    docs, tokens, tags, text = [], [], [], ""

    def flush() -> None:
        if tokens:
            text_ = text or join.join(tokens)
            entities = [(_spelled(t, text_), ty) for t, ty in bio_entities(tokens, tags, join)]
            docs.append(GoldDoc(id=str(len(docs)), text=text_, entities=entities))
        tokens.clear()
        tags.clear()

    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# text = "):
            text = line[len("# text = "):].strip()
        elif line.startswith("#"):
            continue
        elif not line.strip():
            flush()
            text = ""
        else:
            parts = line.split("\t")
            tokens.append(parts[1])
            tags.append(parts[2] if len(parts) > 2 else "O")
    flush()
    return docs


def _read_wnut(root: Path, src: Source) -> tuple[list[GoldDoc], list[GoldDoc]]:
    docs = [d for f in src.files for d in load_bio(root / f)]
    return _hash_split(_named(docs, src.name))


def _read_uner_en(root: Path, src: Source) -> tuple[list[GoldDoc], list[GoldDoc]]:
    docs = [d for f in src.files for d in read_uner(root / f, " ")]
    return _hash_split(_named(docs, src.name))


def _read_uner_zh(root: Path, src: Source) -> tuple[list[GoldDoc], list[GoldDoc]]:
    train, dev = (read_uner(root / f, "") for f in src.files)
    return _named(train, src.name), _named(dev, f"{src.name}-dev")


def _read_crossner(root: Path, src: Source) -> tuple[list[GoldDoc], list[GoldDoc]]:
    docs = [d for f in src.files for d in load_crossner(root / f)]
    return _hash_split(_named(docs, src.name))


def _read_fewfc(root: Path, src: Source) -> tuple[list[GoldDoc], list[GoldDoc]]:
    return _hash_split(_named(load_fewfc(root / src.files[0]), src.name))


def _phee_mentions(role: dict, context: str) -> list[str]:
    """Each mention's fragments joined by a space, kept only if that string is in the text."""
    out = []
    for frags in role.get("text", []):
        value = " ".join(frags).strip()
        if value and value in context and value not in out:
            out.append(value)
    return out


def read_phee(path: Path) -> list[GoldDoc]:
    """PHEE JSONL → events with a trigger and the roles of :data:`PHEE_ROLES`."""
    docs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        context, events = row["context"], []
        for ann in row.get("annotations", []):
            for ev in ann.get("events", []):
                trig = _phee_mentions(ev.get("Trigger", {}), context)
                args = []
                for role in PHEE_ROLES:
                    holder = (ev.get("Treatment") or {}).get(role) if role == "Drug" else ev.get(role)
                    for value in _phee_mentions(holder or {}, context):
                        args.append((role, value))
                events.append(GoldEvent(type=ev["event_type"], trigger=trig[0] if trig else None,
                                        arguments=args))
        docs.append(GoldDoc(id=str(row.get("id", len(docs))), text=context, events=events))
    return docs


def _read_phee(root: Path, src: Source) -> tuple[list[GoldDoc], list[GoldDoc]]:
    train, dev = (read_phee(root / f) for f in src.files)
    return _named(train, src.name), _named(dev, f"{src.name}-dev")


def read_fewrel(path: Path, names: dict[str, list[str]]) -> dict[str, list[GoldDoc]]:
    """FewRel JSON → relation id → one-triple documents (head/tail from token indices)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    out: dict[str, list[GoldDoc]] = {}
    for pid, rows in data.items():
        rel = names[pid][0]
        docs = out.setdefault(pid, [])
        for row in rows:
            toks = row["tokens"]
            head = " ".join(toks[i] for i in row["h"][2][0])
            tail = " ".join(toks[i] for i in row["t"][2][0])
            docs.append(GoldDoc(id=f"fewrel-{pid}-{len(docs)}", text=" ".join(toks),
                                relations=[(head, rel, tail)]))
    return out


def fewrel_names(root: Path) -> dict[str, list[str]]:
    return json.loads((root / "fewrel/pid2name.json").read_text(encoding="utf-8"))


def fewrel_splits(root: Path) -> dict[str, list[GoldDoc]]:
    """``train``, ``dev`` (10% of the 12 trained relations) and ``zeroshot`` (the 4 held out)."""
    by_rel = read_fewrel(root / "fewrel/val_wiki.json", fewrel_names(root))
    out: dict[str, list[GoldDoc]] = {"train": [], "dev": [], "zeroshot": []}
    for pid, docs in by_rel.items():
        if pid in FEWREL_HELD_OUT:
            out["zeroshot"] += docs
        else:
            out["dev"] += [d for d in docs if is_dev(d.text)]
            out["train"] += [d for d in docs if not is_dev(d.text)]
    return out


def _read_fewrel(root: Path, src: Source) -> tuple[list[GoldDoc], list[GoldDoc]]:
    splits = fewrel_splits(root)
    return splits["train"], splits["dev"]


def read_fewrel_pubmed(path: Path) -> list[GoldDoc]:
    """FewRel 2.0 PubMed (the copy swapped to subject-first): ``{"causative_agent_of": [rows]}``
    → one-triple documents, the relation named in words (``causative agent of``)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    docs = []
    for rel, rows in data.items():
        name = rel.replace("_", " ")
        for row in rows:
            toks = row["tokens"]
            head = " ".join(toks[i] for i in row["h"][2][0])
            tail = " ".join(toks[i] for i in row["t"][2][0])
            docs.append(GoldDoc(id=f"fewrel-pubmed-{len(docs)}", text=" ".join(toks), relations=[(head, name, tail)]))
    return docs


def _read_fewrel_pubmed(root: Path, src: Source) -> tuple[list[GoldDoc], list[GoldDoc]]:
    return _hash_split(read_fewrel_pubmed(root / src.files[0]))


# KnowledgeNet property → (relation as it reads subject → object, head type, tail type).
# SPOUSE is left out: "spouse" is one of FewRel's zero-shot relations (FEWREL_HELD_OUT).
KNOWLEDGENET = {
    "DATE_OF_BIRTH": ("born on", "person", "date"),
    "DATE_OF_DEATH": ("died on", "person", "date"),
    "PLACE_OF_BIRTH": ("born in", "person", "location"),
    "PLACE_OF_RESIDENCE": ("lives in", "person", "location"),
    "NATIONALITY": ("citizen of", "person", "country"),
    "EMPLOYEE_OR_MEMBER_OF": ("works for", "person", "organization"),
    "EDUCATED_AT": ("educated at", "person", "educational institution"),
    "POLITICAL_AFFILIATION": ("member of party", "person", "political party"),
    "CHILD_OF": ("child of", "person", "person"),
    "DATE_FOUNDED": ("founded on", "organization", "date"),
    "HEADQUARTERS": ("headquartered in", "organization", "location"),
    "SUBSIDIARY_OF": ("subsidiary of", "organization", "organization"),
    "FOUNDED_BY": ("founded by", "organization", "founder"),
    "CEO": ("CEO", "organization", "person"),
}


def read_knowledgenet(path: Path) -> list[GoldDoc]:
    """KnowledgeNet passages → documents with (subject, relation, object) triples. Passages
    with a pronoun argument, or a fact whose ends are the same string, are left out (the fact
    would be a false negative without it);
    ``extra["annotated"]`` lists the relations the passage is exhaustively annotated for:
    the only ones a schema may add as distractors (any other may hold unannotated)."""
    docs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if any(f.get("pronoun_argument") or f["subject"]["text"].lower() == f["object"]["text"].lower()
               for f in row["facts"]):
            continue  # a same-string head and tail ("Arles" based in "Arles") is no expressible triple
        text = row["passageText"]
        relations = list(dict.fromkeys(
            (f["subject"]["text"], KNOWLEDGENET[f["property"]][0], f["object"]["text"])
            for f in row["facts"] if f["property"] in KNOWLEDGENET))
        annotated = [KNOWLEDGENET[p][0] for p in row["exhaustivelyAnnotatedProperties"] if p in KNOWLEDGENET]
        if annotated:
            docs.append(GoldDoc(id=f"knowledgenet-{row['documentId']}-{len(docs)}", text=text,
                                relations=relations, extra={"annotated": annotated}))
    return docs


def _read_knowledgenet(root: Path, src: Source) -> tuple[list[GoldDoc], list[GoldDoc]]:
    return _hash_split(read_knowledgenet(root / src.files[0]))


SOURCES: tuple[Source, ...] = (
    Source("wnut17", "ner", "en", "CC BY 4.0",
           ("wnut17/wnut17train.conll", "wnut17/emerging.dev.conll"), _read_wnut),
    Source("uner-en", "ner", "en", "CC BY-SA 4.0",
           ("uner/en_ewt-ud-dev.iob2", "uner/en_ewt-ud-test.iob2"), _read_uner_en),
    Source("uner-zh", "ner", "zh", "CC BY-SA 4.0",
           ("uner/zh_gsdsimp-ud-train.iob2", "uner/zh_gsdsimp-ud-dev.iob2"), _read_uner_zh),
    Source("crossner", "ner", "en", "MIT",
           ("crossner/ai-train.json", "crossner/music-train.json"), _read_crossner),
    Source("fewrel", "re", "en", "MIT", ("fewrel/val_wiki.json", "fewrel/pid2name.json"), _read_fewrel),
    Source("fewrel-pubmed", "re", "en", "MIT", ("fewrel_pubmed/val_pubmed.directed.json",), _read_fewrel_pubmed),
    Source("knowledgenet", "re", "en", "CC BY-SA 4.0", ("knowledgenet/train.jsonl",), _read_knowledgenet,
           types={name: (head, tail) for name, head, tail in KNOWLEDGENET.values()}),
    Source("phee", "ee", "en", "MIT", ("phee/train.json", "phee/dev.json"), _read_phee),
    Source("fewfc", "ee", "zh", "CC BY-SA 4.0", ("fewfc/train_base.json",), _read_fewfc),
)


def relation_descriptions(root: Path) -> dict[str, str]:
    """FewRel relation name → the first clause of its Wikidata description."""
    return {name: desc.split(";")[0].split(". ")[0].strip()
            for name, desc in fewrel_names(root).values()}


def _norm(text: str) -> str:
    return " ".join(text.split())


def test_texts() -> set[str]:
    """Sentences of the named test sets (``evaluation.datasets.NAMED``), whitespace-normalised;
    empty when the test data is not there."""
    from ..evaluation import datasets

    out: set[str] = set()
    for name in datasets.NAMED:
        try:
            out |= {_norm(d.text) for d in datasets.load(name)}
        except FileNotFoundError:
            continue
    return out


def without_test_sentences(docs: list[GoldDoc], tests: set[str]) -> tuple[list[GoldDoc], int]:
    """``docs`` minus any sentence that is also in a test set (FewFC train and test share 74)."""
    kept = [d for d in docs if _norm(d.text) not in tests]
    return kept, len(docs) - len(kept)


def training_splits(root: Path, sources: list[Source]) -> dict[str, tuple[list[GoldDoc], list[GoldDoc], int]]:
    """Source name → (train docs without test-set sentences, dev docs, sentences left out)."""
    tests = test_texts()
    out = {}
    for s in sources:
        train, dev = s.read(root, s)
        train, dropped = without_test_sentences(train, tests)
        out[s.name] = (train, dev, dropped)
    return out


def by_name(names: list[str] | None = None) -> list[Source]:
    known = {s.name: s for s in SOURCES}
    unknown = sorted(set(names or []) - set(known))
    if unknown:
        raise ValueError(f"unknown training source(s) {unknown}; known: {sorted(known)}")
    return [known[n] for n in names] if names else list(SOURCES)
