"""``ie-service eval``: score extraction on a gold set (any registered task)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import jsonl
from ..extraction.tasks import TASKS, TriggersOnly
from ..errors import EXIT_FAILURE, EXIT_USAGE
from . import arg_types
from .common import UsageError, add_client_arguments, read_json, service_url


def _stem(args: argparse.Namespace) -> str:
    stem = f"{Path(args.dataset).stem}-{args.task}-{'free' if args.free else 'constrained'}"
    if args.triggers_only:
        stem += "-triggers"
    if args.examples:
        stem += "-fewshot"
    if args.adapter:
        stem += f"-{args.adapter}"  # base and adapter predictions never share a resumable file
    return stem


def cmd_eval(args: argparse.Namespace) -> int:
    from ..evaluation import datasets, runner
    from ..evaluation.scoring import table

    task = TASKS[args.task]
    if args.triggers_only and not isinstance(task, TriggersOnly):
        able = " or ".join(name for name, t in TASKS.items() if isinstance(t, TriggersOnly))
        raise UsageError(f"--triggers-only needs --task {able}")
    all_docs = datasets.load(args.dataset, args.format)
    docs = all_docs[args.offset:]
    if args.limit is not None:
        docs = docs[: args.limit]
    if not docs:
        raise UsageError(f"no documents selected (--offset {args.offset} of {len(all_docs)})")
    schema = read_json(args.schema) if args.schema else task.gold_schema(all_docs)
    body = {"schema": schema, "constrained": not args.free, "language": args.language,
            "parameters": {"temperature": 0, "max_tokens": args.max_tokens}}
    if args.ungrounded:
        body["grounded"] = False
    if args.adapter:
        body["adapter"] = args.adapter
    if args.template:
        body["template"] = args.template
    if args.labels_per_prompt:
        body["labels_per_prompt"] = args.labels_per_prompt
    if args.examples:
        body["examples"] = read_json(args.examples)
    if args.triggers_only:
        body["schema"], examples = task.triggers_only(schema, body.get("examples", []))
        if examples:
            body["examples"] = examples
    stem = _stem(args)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    predictions = Path(args.predictions or out_dir / f"{stem}.predictions.jsonl")
    predictions.parent.mkdir(parents=True, exist_ok=True)
    runner.read_predictions(predictions)  # a bad predictions file is an error before any service starts
    if args.stability_distractors and args.task != "ner":
        raise UsageError("--stability-distractors needs --task ner")
    with service_url(args, out_dir / f"{stem}.server.log") as url:
        report = runner.evaluate(url.rstrip("/"), args.task, docs, body, predictions,
                                 concurrency=args.concurrency, api_key=args.api_key)
        if args.stability_distractors:
            report["stability"] = _stability(url.rstrip("/"), args, docs, body, predictions,
                                             out_dir / f"{stem}-distract{args.stability_distractors}")
    report["dataset"] = args.dataset
    if args.triggers_only:
        report["scores"] = {k: v for k, v in report["scores"].items() if k in task.trigger_score_kinds}
        report["trust"] = {k: v for k, v in report["trust"].items() if k in task.trigger_score_kinds}
    report_path = Path(args.report or out_dir / f"{stem}.report.json")
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, ensure_ascii=False, indent=2))
    for kind, scores in report["scores"].items():
        print(table(scores, f"{args.dataset} {args.task} {kind}"))
        if kind in report["trust"]:
            print(trust_lines(report["trust"][kind], scores["micro"]))
    if "stability" in report:
        st = report["stability"]
        print(f"schema stability with {len(st['distractors'])} distractor labels {st['distractors']}: "
              f"{st['stability']} ({st['stable']} of {st['entities']} correctly typed entities keep their "
              f"type; {st['to_distractor']} go to a distractor, {st['lost_or_retyped']} lost or retyped)")
    totals = report["totals"]
    print(json.dumps(totals))
    print(f"report: {report_path}  predictions: {predictions}")
    if totals["cut_lines"]:
        print(jsonl.cut_warning(predictions), file=sys.stderr)
    if totals["errors"]:
        why = ", ".join(f"{n}x {what}" for what, n in totals["failures"].items()) or "earlier runs"
        print(f"error: {totals['errors']} of {len(docs)} documents have no prediction ({why}); "
              "they were not saved and the scores leave them out: rerun the same command to retry "
              "them", file=sys.stderr)
        # the service refused every request as bad input (a schema it rejects): exit 2
        statuses = set(totals["failures"])
        bad_request = bool(statuses) and statuses <= {"HTTP 400", "HTTP 413", "HTTP 422"}
        return EXIT_USAGE if bad_request and not totals["docs_this_run"] else EXIT_FAILURE
    return 0


def _stability(url: str, args: argparse.Namespace, docs: list, body: dict, predictions: Path,
               stem: Path) -> dict:
    """The same documents again with distractor labels added to the schema; how many
    correctly typed entities keep their type (``evaluation.trust.stability``)."""
    from ..evaluation import runner, trust

    schema = body["schema"]
    labels = list(schema) if isinstance(schema, (list, dict)) else []
    try:
        added = trust.distractors([str(x) for x in labels], args.stability_distractors)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    grown = schema + added if isinstance(schema, list) else {**schema, **{a: "" for a in added}}
    other = Path(f"{stem}.predictions.jsonl")
    runner.evaluate(url, args.task, docs, {**body, "schema": grown}, other,
                    concurrency=args.concurrency, api_key=args.api_key)
    base, distracted = (runner.predicted_by_doc(p, "entities") for p in (predictions, other))
    both = [d for d in docs if d.id in base and d.id in distracted]
    task = TASKS[args.task]
    result = trust.stability([task.gold_tuples(d)["entities"] for d in both],
                             [base[d.id] for d in both], [distracted[d.id] for d in both], added)
    return {**result, "docs": len(both), "predictions": str(other)}


def trust_lines(trust: dict, micro: dict) -> str:
    """The confidence's summary under a score table: AUROC, F1 by threshold, the best one."""
    best = trust["thresholds"]["best"]
    auroc = "n/a" if trust["auroc"] is None else f"{trust['auroc']:.3f}"
    rows = [f"confidence: AUROC {auroc} ({trust['correct']} correct of {trust['scored']} scored"
            f"{', ' + str(trust['unscored']) + ' without a confidence' if trust['unscored'] else ''}); "
            f"F1 {micro['f1']:.3f} at the default (keep all), {best['f1']:.3f} at the best threshold "
            f"{best['threshold']:.1f} (P {best['precision']:.3f} R {best['recall']:.3f})",
            "threshold " + " ".join(f"{t:>5}" for t in trust["thresholds"]["table"]),
            "F1        " + " ".join(f"{r['f1']:5.3f}" for r in trust["thresholds"]["table"].values())]
    if "reversed" in trust:
        rev = trust["reversed"]
        worst = sorted(rev["per_relation"].items(), key=lambda kv: -kv[1]["reversed"])[:5]
        rows.append(f"reversed: {rev['count']} of {rev['predicted']} predicted triples ({rev['share']:.1%}) are a "
                    "gold triple with head and tail swapped" +
                    (": " + ", ".join(f"{r} {v['reversed']}/{v['predicted']}" for r, v in worst if v["reversed"])
                     if rev["count"] else ""))
    return "\n".join(rows)


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("eval", help="score extraction on a gold set (P/R/F1, parse failures)",
                        description="Run /extract/{task} over a data set through a service (--url) "
                                    "or a server started here, and score strict P/R/F1 per type. "
                                    "Resumable: predictions are appended to a JSONL file. Exit 1 while "
                                    "any document has no prediction (rerun to retry them).")
    ev.add_argument("--dataset", required=True,
                    help="wnut17 | crossner-ai | crossner-music | fewfc (test sets shipped in the "
                         "package), or a path to a file of one of those formats")
    ev.add_argument("--format", choices=["bio", "crossner", "fewfc", "jsonl"], default=None,
                    help="file format (default: by name, or sniffed)")
    ev.add_argument("--task", required=True, choices=list(TASKS), help="what to extract and score")
    ev.add_argument("--limit", type=arg_types.positive_int, default=None,
                    help="first N documents (after --offset)")
    ev.add_argument("--offset", type=arg_types.non_negative_int, default=0,
                    help="skip the first N documents")
    add_client_arguments(ev)
    ev.add_argument("--free", action="store_true", help="unconstrained decoding")
    ev.add_argument("--ungrounded", action="store_true",
                    help='free-string spans under the constraint ("grounded": false)')
    ev.add_argument("--language", default="auto", choices=["auto", "en", "zh"],
                    help="prompt language (auto: by the text)")
    ev.add_argument("--adapter", type=arg_types.non_empty, default=None,
                    help="a LoRA adapter the service serves (serve --lora NAME=PATH; here: --lora "
                         "NAME=PATH --adapter NAME); default: the served model")
    ev.add_argument("--template", default=None, help="template name, or name@version to pin one")
    ev.add_argument("--schema", default=None, help="JSON file with the schema (default: the data's labels)")
    ev.add_argument("--examples", default=None, help="JSON file: few-shot [{input, output}]")
    ev.add_argument("--labels-per-prompt", type=arg_types.positive_int, default=None,
                    help="split the schema into prompts of N labels (default: 6 for NER, 4 for RE/EE)")
    ev.add_argument("--triggers-only", action="store_true",
                    help="EE: ask for event types and triggers, no arguments, and score triggers only")
    ev.add_argument("--max-tokens", type=arg_types.positive_int, default=256,
                    help="answer length limit per prompt (a longer answer is discarded)")
    ev.add_argument("--stability-distractors", type=arg_types.positive_int, default=None, metavar="N",
                    help="NER: run the documents again with N distractor labels added to the schema and "
                         "report the share of correctly typed entities that keep their type")
    ev.add_argument("--concurrency", type=arg_types.positive_int, default=8, help="requests in flight")
    ev.add_argument("--out-dir", type=arg_types.output_dir, default="eval-runs",
                    help="folder for the report and predictions (made if missing)")
    ev.add_argument("--predictions", type=arg_types.resumable_output, default=None,
                    help="JSONL of predictions (resumes from it; failed documents are not saved, "
                         "so a rerun retries them)")
    ev.add_argument("--report", type=arg_types.output_file_new_dir, default=None,
                    help="JSON report path (default: OUT_DIR/NAME-TASK-MODE.report.json; its folder is made)")
    ev.set_defaults(func=cmd_eval)
