"""CLI: AI assistance — train and evaluate triage, triage a text, the inbox, review queue.

Whoever runs commands on the pool directory acts as its administrator (``local_admin``);
decisions are recorded under ``--user`` / ``DATENLABOR_USER``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from datenlabor.errors import BadInput

if TYPE_CHECKING:
    from datenlabor.pool.pool import Pool

err = Console(stderr=True)


def _json(data: Any) -> None:
    def default(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        return str(value)

    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=default) + "\n")


def register(app: typer.Typer, open_pool: Callable[[], Pool]) -> None:
    assist = typer.Typer(
        help="AI assistance: triage of requests, review queue, decision log", no_args_is_help=True
    )
    app.add_typer(assist, name="assist")

    def ctx() -> tuple[Any, Any]:
        from datenlabor.access.principal import local_admin
        from datenlabor.service.gate import Gate

        gate = Gate(open_pool())
        return gate, local_admin(gate.pool.settings.user)

    @assist.command("train")
    def train(
        dataset: Annotated[str, typer.Argument(help="Pool dataset with decided requests")],
        text: Annotated[str, typer.Option("--text", help="Column with the request text")],
        label: Annotated[str, typer.Option("--label", help="Column with the category")],
        version: Annotated[
            int | None, typer.Option(help="Dataset version (default: latest)")
        ] = None,
        holdout: Annotated[float, typer.Option(help="Share held out for the metrics")] = 0.2,
        seed: Annotated[int, typer.Option(help="Seed of the held-out split")] = 0,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    ) -> None:
        """Train the triage model on a pinned dataset version and make it the active one."""
        from datenlabor.assist.triage import train as do_train

        gate, p = ctx()
        with err.status("Training …"):
            info = do_train(
                gate,
                p,
                dataset,
                text=text,
                label=label,
                version=version,
                holdout=holdout,
                seed=seed,
            )
        if as_json:
            _json(info.to_dict())
            return
        held = info.metrics.get("holdout") or {}
        err.print(
            f"[green]✓[/] {info.ref} trained on {info.dataset} version {info.dataset_version} "
            f"({info.metrics['train_rows']} rows)"
            + (
                f"; held out: accuracy {held['accuracy']:.3f}, macro-F1 {held['macro_f1']:.3f}, "
                f"ECE {held['ece']:.3f}"
                if held
                else ""
            ),
            highlight=False,
        )

    @assist.command("evaluate")
    def evaluate(
        dataset: Annotated[str, typer.Argument(help="Held-out pool dataset")],
        text: Annotated[str, typer.Option("--text", help="Column with the request text")],
        label: Annotated[str, typer.Option("--label", help="Column with the true category")],
        version: Annotated[
            int | None, typer.Option(help="Dataset version (default: latest)")
        ] = None,
        group: Annotated[
            list[str] | None, typer.Option("--group", help="Column for per-group error rates")
        ] = None,
        model_version: Annotated[
            int | None, typer.Option("--model-version", help="Model version (default: active)")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    ) -> None:
        """Accuracy, macro-F1, calibration, per-class and per-group error rates."""
        from datenlabor.assist.triage import evaluate as do_evaluate

        gate, p = ctx()
        report = do_evaluate(
            gate, p, dataset, text=text, label=label, version=version,
            groups=group or [], model_version=model_version,
        )  # fmt: skip
        if as_json:
            _json(report)
            return
        err.print(
            f"{report['model']} on {dataset} v{report['evaluated_on']['version']} "
            f"({report['n']} rows): accuracy {report['accuracy']:.3f}, macro-F1 "
            f"{report['macro_f1']:.3f}, ECE {report['ece']:.3f}",
            highlight=False,
        )
        table = Table("class", "n", "precision", "recall", "error rate")
        for name, c in report["per_class"].items():
            table.add_row(name, str(c["n"]), f"{c['precision']:.3f}", f"{c['recall']:.3f}",
                          "–" if c["error_rate"] is None else f"{c['error_rate']:.3f}")  # fmt: skip
        Console().print(table)
        for col, per in report["per_group"].items():
            err.print(
                f"{col}: "
                + ", ".join(f"{k} {v['error_rate']:.3f} (n={v['n']})" for k, v in per.items())
            )

    @assist.command("triage")
    def triage(
        text: Annotated[str | None, typer.Option("--text", help="The request text")] = None,
        file: Annotated[
            Path | None, typer.Option("--file", help="Read the text from a file")
        ] = None,
        llm: Annotated[
            bool | None,
            typer.Option("--llm/--no-llm", help="Ask the LLM endpoint (default: setting)"),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    ) -> None:
        """Triage one text with the active model (nothing is stored)."""
        from datenlabor.assist.triage import Triager

        if (text is None) == (file is None):
            raise BadInput("give the request with --text or --file (one of them)")
        if file is not None:
            if not file.is_file():
                raise BadInput("file not found", file=str(file))
            text = file.read_text(encoding="utf-8-sig")
        gate, _p = ctx()
        [result] = Triager.for_pool(gate.pool).triage([text or ""], use_llm=llm)
        if as_json:
            _json(result.to_dict())
            return
        label = result.label or "— (an eine Person / to a person)"
        err.print(f"{label}  confidence {result.confidence:.2f}  urgency {result.urgency}  "
                  f"language {result.language}", highlight=False)  # fmt: skip
        err.print("evidence: " + ", ".join(e["term"] for e in result.evidence), highlight=False)
        if result.documents_missing:
            err.print("missing: " + ", ".join(d["de"] for d in result.documents_missing))

    @assist.command("models")
    def models(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
        """Model versions with training data and held-out figures."""
        from datenlabor.assist import registry

        gate, _p = ctx()
        rows = registry.models(gate.pool)
        if as_json:
            _json([m.to_dict() for m in rows])
            return
        table = Table("model", "active", "trained on", "accuracy", "created")
        for m in rows:
            acc = (m.metrics.get("holdout") or {}).get("accuracy")
            table.add_row(m.ref, "✓" if m.active else "", f"{m.dataset} v{m.dataset_version}",
                          "–" if acc is None else f"{acc:.3f}", m.created_at.strftime("%Y-%m-%d %H:%M"))  # fmt: skip
        Console().print(table)

    @assist.command("activate")
    def activate(version: Annotated[int, typer.Argument(help="Triage model version")]) -> None:
        """Use another trained version (e.g. roll back)."""
        from datenlabor.assist import registry

        gate, p = ctx()
        info = registry.activate(gate.pool, "triage", version)
        gate.audit.log(p, "assist-train", detail={"activated": info.ref})
        err.print(f"[green]✓[/] {info.ref} is active")

    inbox_app = typer.Typer(help="Incoming requests", no_args_is_help=True)
    assist.add_typer(inbox_app, name="inbox")

    @inbox_app.command("add")
    def inbox_add(
        files: Annotated[list[Path], typer.Argument(help=".eml, .csv or .ndjson files")],
        org: Annotated[
            str | None, typer.Option(help="Receiving organisation (first delivery)")
        ] = None,
        no_triage: Annotated[bool, typer.Option("--no-triage", help="Store only")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    ) -> None:
        """Add requests to the inbox (one new dataset version) and triage them."""
        from datenlabor.assist import inbox

        gate, p = ctx()
        requests = inbox.read_files(files)
        added = inbox.add(gate, p, requests, org=org, triage=not no_triage)
        if as_json:
            _json(added.__dict__)
            return
        err.print(f"[green]✓[/] {len(added.ids)} requests → {added.dataset} version {added.version}; "
                  f"{len(added.suggestions)} suggestions open for review", highlight=False)  # fmt: skip
        if added.note:
            err.print(f"[yellow]![/] {added.note}")

    @assist.command("queue")
    def queue(
        status: Annotated[
            str, typer.Option(help="open, accepted, edited, rejected or all")
        ] = "open",
        limit: Annotated[int, typer.Option(help="Requests shown")] = 50,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    ) -> None:
        """The review queue: requests whose suggestions wait for a person."""
        from datenlabor.assist import review

        gate, p = ctx()
        items = review.queue(gate, p, status=status, limit=limit)
        if as_json:
            _json(items)
            return
        table = Table("request", "suggestion", "kind", "suggested", "confidence", "status")
        for item in items:
            for s in item["suggestions"]:
                sug = s["suggestion"].get("label") if s["kind"] == "triage" else "(Antwortentwurf)"
                table.add_row(item["request_id"], str(s["id"]), s["kind"], sug or "→ Person",
                              f"{s['confidence']:.2f}" if s["confidence"] is not None else "–", s["status"])  # fmt: skip
        Console().print(table)

    @assist.command("decide")
    def decide(
        suggestion: Annotated[int, typer.Argument(help="Suggestion id")],
        decision: Annotated[str, typer.Argument(help="accepted, edited or rejected")],
        label: Annotated[str | None, typer.Option(help="Final category (edited)")] = None,
        urgency: Annotated[str | None, typer.Option(help="Final urgency")] = None,
        text: Annotated[str | None, typer.Option(help="Final answer text (answer drafts)")] = None,
        reason: Annotated[str | None, typer.Option(help="Why (rejected)")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    ) -> None:
        """Record a person's decision on a suggestion."""
        from datenlabor.assist import review

        gate, p = ctx()
        final = {"label": label, "urgency": urgency, "text": text, "reason": reason}
        done = review.decide(gate, p, suggestion, decision, final=final)
        if as_json:
            _json(done.decision)
            return
        err.print(f"[green]✓[/] suggestion {suggestion}: {decision} by {p.label()}")

    @assist.command("decisions")
    def decisions(
        since: Annotated[str | None, typer.Option(help="ISO date or time (UTC)")] = None,
        as_json: Annotated[
            bool, typer.Option("--json/--lines", help="JSON rows (default) or one line each")
        ] = True,
    ) -> None:
        """The decision log (JSON rows for evaluation and fairness audits)."""
        from datenlabor.assist import review
        from datenlabor.assist.inbox import parse_when

        gate, p = ctx()
        start = parse_when(since) if since else None
        rows = review.decisions(gate, p, since=start)
        if as_json:
            _json(rows)
            return
        for r in rows:
            err.print(f"{r['decided_at']:%Y-%m-%d %H:%M} {r['request_id']} {r['decision']} "
                      f"{r['suggested']} → {r['final_label']} ({r['reviewer']})")  # fmt: skip

    from datenlabor import cli_assist_kb  # knowledge base and answers (assist kb, assist ask)

    cli_assist_kb.register(assist, open_pool)
