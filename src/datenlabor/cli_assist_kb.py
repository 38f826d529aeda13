"""CLI: knowledge base and answer drafts (``assist kb add|list``, ``assist ask``).

Whoever runs commands on the pool directory acts as its administrator (``local_admin``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from datenlabor.pool.pool import Pool

err = Console(stderr=True)


def _json(data: Any) -> None:
    def default(value: Any) -> Any:
        if isinstance(value, datetime | date):
            return value.isoformat()
        return str(value)

    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=default) + "\n")


def register(assist: typer.Typer, open_pool: Callable[[], Pool]) -> None:
    """Add ``kb add``, ``kb list`` and ``ask`` to the ``assist`` group."""
    kb_app = typer.Typer(help="Knowledge bases for answer drafts", no_args_is_help=True)
    assist.add_typer(kb_app, name="kb")

    def ctx() -> tuple[Any, Any]:
        from datenlabor.access.principal import local_admin
        from datenlabor.service.gate import Gate

        gate = Gate(open_pool())
        return gate, local_admin(gate.pool.settings.user)

    @kb_app.command("add")
    def add(
        files: Annotated[list[Path], typer.Argument(help="PDF, DOCX, HTML, Markdown or text")],
        kb: Annotated[str, typer.Option("--kb", help="Knowledge base name")] = "default",
        visibility: Annotated[
            str, typer.Option(help="public, internal (default) or restricted")
        ] = "internal",
        org: Annotated[
            str | None, typer.Option("--org", help="Publishing organisation (slug)")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    ) -> None:
        """Add documents to a knowledge base (a changed document replaces its old version)."""
        from datenlabor.assist import kb as kbmod

        gate, p = ctx()
        added = kbmod.add_documents(
            gate, p, [(f.name, f) for f in files], kb=kb, visibility=visibility, org=org
        )
        if as_json:
            _json([a.__dict__ for a in added])
            return
        for a in added:
            where = f"{a.dataset} version {a.version}" if a.version else a.dataset
            err.print(f"[green]✓[/] {a.document}: {a.chunks} Abschnitte, {a.status} ({where})")

    @kb_app.command("list")
    def list_(
        kb: Annotated[str, typer.Option("--kb", help="Knowledge base name")] = "default",
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    ) -> None:
        """List the documents of a knowledge base."""
        from datenlabor.assist import kb as kbmod

        gate, p = ctx()
        docs = kbmod.list_documents(gate, p, kb)
        if as_json:
            _json(docs)
            return
        if not docs:
            err.print(f"Wissensbasis {kb!r} ist leer.")
        for d in docs:
            err.print(
                f"{d['document']}  {d['chunks']} Abschnitte  {d['visibility']}"
                f"{' / ' + d['org'] if d['org'] else ''}  sha256 {d['sha256'][:12]}"
            )

    @assist.command("ask")
    def ask(
        question: Annotated[str, typer.Argument(help="The request or question")],
        kb: Annotated[str, typer.Option("--kb", help="Knowledge base name")] = "default",
        k: Annotated[int, typer.Option("--k", help="Passages to retrieve")] = 5,
        extractive: Annotated[
            bool, typer.Option("--extractive", help="Do not use a configured LLM")
        ] = False,
        full: Annotated[
            bool, typer.Option("--full", help="With --json: sentences, retrieval, model")
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    ) -> None:
        """Draft an answer from the knowledge base, with verified citations."""
        from datenlabor.assist.answer import draft_answer

        gate, p = ctx()
        draft = draft_answer(gate, p, question, kb=kb, k=k, llm=False if extractive else None)
        if as_json:
            data: dict[str, Any] = {
                "answer": draft.text,
                "citations": [
                    {"source": c["source"], "passage": c["passage"], "n": c["n"]}
                    for c in draft.citations
                ],
                "unsupported": draft.unsupported,
                "mode": draft.mode,
                "warnings": draft.warnings,
            }
            if full:
                data = {**draft.to_dict(), **data}
            _json(data)
            return
        sys.stdout.write(draft.text + "\n")
        if draft.citations:
            sys.stdout.write("\nQuellen:\n")
            for c in draft.citations:
                sys.stdout.write(f"  [{c['n']}] {c['source']}\n")
        for w in draft.warnings:
            err.print(f"! {w}", highlight=False, markup=False)
