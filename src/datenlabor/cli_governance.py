"""CLI: AI register, impact assessment, fairness audits, marketplace (``governance``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from datenlabor.errors import BadInput

if TYPE_CHECKING:
    from datenlabor.pool.pool import Pool


def _out(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def _values(pairs: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"expected FIELD=VALUE, got {pair!r}", column="--set")
        out[key.strip()] = value
    return out


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise BadInput(f"cannot read: {exc.strerror}", file=str(path)) from exc


def register(app: typer.Typer, open_pool: Callable[[], Pool]) -> None:
    gov = typer.Typer(help="AI governance: register, assessment, fairness, marketplace",
                      no_args_is_help=True)  # fmt: skip
    reg = typer.Typer(help="The AI register", no_args_is_help=True)
    market = typer.Typer(help="Marketplace of AI use cases", no_args_is_help=True)
    app.add_typer(gov, name="governance")
    gov.add_typer(reg, name="register")
    gov.add_typer(market, name="marketplace")

    def ctx() -> tuple[Any, Any]:
        from datenlabor.access.principal import local_admin
        from datenlabor.service.gate import Gate

        gate = Gate(open_pool())
        return gate, local_admin(gate.pool.settings.user)

    # -- register -------------------------------------------------------------------------
    @reg.command("export")
    def reg_export(
        fmt: Annotated[str, typer.Option("--format", "-f", help="json or csv")] = "json",
        no_refresh: Annotated[bool, typer.Option("--no-refresh", help="Export as stored")] = False,
    ) -> None:
        """Print all entries; entries of the platform's AI services are created and their
        technical fields refreshed first (model version, training data, metrics)."""
        from datenlabor.governance import register as r

        gate, p = ctx()
        sys.stdout.write(r.export(gate.pool.store, p, fmt, auto=not no_refresh))
        if fmt == "json":
            sys.stdout.write("\n")

    @reg.command("add")
    def reg_add(
        name: Annotated[str, typer.Option(help="Name of the AI application")],
        description: Annotated[str, typer.Option(help="Plain-language short description")],
        status: Annotated[str, typer.Option(help="development, in_use or out_of_use")] = "development",
        org: Annotated[str | None, typer.Option(help="Owning organisation (slug)")] = None,
        model: Annotated[str | None, typer.Option(help="Platform AI service it describes")] = None,
        slug: Annotated[str | None, typer.Option(help="Slug (default: from the name)")] = None,
        public: Annotated[bool, typer.Option(help="Publish the entry")] = False,
        set_: Annotated[list[str] | None, typer.Option("--set", help="FIELD=VALUE")] = None,
    ) -> None:
        """Create a register entry."""
        from datenlabor.governance import register as r

        gate, p = ctx()
        values = {"name": name, "short_description": description, "status": status,
                  **_values(set_)}  # fmt: skip
        view = r.create(gate.pool.store, p, values, slug=slug, organisation=org,
                        model_name=model, public=public)  # fmt: skip
        _out(r.entry_dict(view))

    @reg.command("edit")
    def reg_edit(
        slug: str,
        set_: Annotated[list[str] | None, typer.Option("--set", help="FIELD=VALUE (empty clears)")] = None,
        public: Annotated[bool | None, typer.Option("--public/--not-public")] = None,
        note: Annotated[str, typer.Option(help="Why the change")] = "",
    ) -> None:
        """Change fields of an entry (a new version)."""
        from datenlabor.governance import register as r

        gate, p = ctx()
        view, changed = r.edit(gate.pool.store, p, slug, _values(set_), public=public, note=note)
        _out({"changed": changed, **r.entry_dict(view)})

    @reg.command("show")
    def reg_show(slug: str) -> None:
        from datenlabor.governance import entries
        from datenlabor.governance import register as r

        gate, p = ctx()
        _out(r.entry_dict(entries.get(gate.pool.store, p, slug, "register")))

    @reg.command("history")
    def reg_history(
        slug: str,
        diff: Annotated[str | None, typer.Option(help="A:B – fields changed between versions")] = None,
    ) -> None:
        """The versions of an entry, or the difference between two of them."""
        from datenlabor.governance import entries

        gate, p = ctx()
        if diff:
            a, _, b = diff.partition(":")
            if not (a.isdigit() and b.isdigit()):
                raise BadInput("--diff takes two version numbers, e.g. 1:3", column="--diff")
            _out(entries.diff(gate.pool.store, p, slug, int(a), int(b), "register"))
            return
        _out([{k: v for k, v in h.items() if k != "data"} for h in
              entries.history(gate.pool.store, p, slug, "register")])  # fmt: skip

    @reg.command("refresh")
    def reg_refresh() -> None:
        """Create missing entries of the platform's AI services and refresh technical fields."""
        from datenlabor.governance import register as r

        gate, _p = ctx()
        created = r.ensure_model_entries(gate.pool.store)
        _out({"created": created, "refreshed": r.refresh(gate.pool.store)})

    @reg.command("annex-viii")
    def reg_annex(slug: str) -> None:
        """EU AI Act deployer registration data (Annex VIII section C) of an entry."""
        from datenlabor.governance import register as r

        gate, p = ctx()
        _out(r.annex_viii(gate.pool.store, p, slug))

    # -- assessment and activation --------------------------------------------------------
    @gov.command("assess")
    def assess(
        slug: str,
        answers: Annotated[Path, typer.Option(help="YAML or JSON file: question id -> answer")],
        questionnaire: Annotated[str | None, typer.Option(help="name@version")] = None,
    ) -> None:
        """Score an impact assessment of a register entry and store it."""
        import yaml

        from datenlabor.governance import assessment

        gate, p = ctx()
        try:
            given = yaml.safe_load(_read(answers))
        except yaml.YAMLError as exc:
            raise BadInput(f"not valid YAML/JSON: {exc}", file=str(answers)) from exc
        if not isinstance(given, dict):
            raise BadInput("expected a mapping of question id to answer", file=str(answers))
        _out(assessment.assess(gate, p, slug, given, ref=questionnaire))

    @gov.command("activation")
    def activation(model: str) -> None:
        """Whether an AI service may be activated; exit code 5 with the reasons if not."""
        from datenlabor.governance.activation import activation_blockers, measure_status

        gate, _p = ctx()
        blockers = activation_blockers(gate, model)
        _out({"model": model, "allowed": not blockers, "blockers": blockers,
              **measure_status(gate, model)})  # fmt: skip
        if blockers:
            raise typer.Exit(5)

    # -- fairness -------------------------------------------------------------------------
    @gov.command("fairness")
    def fairness(
        slug: Annotated[str | None, typer.Argument(
            help="Pool dataset with predictions, or 'rerun' (scheduled audits), or 'report'")] = None,
        audit_id: Annotated[int | None, typer.Argument(help="Audit number (with 'report')")] = None,
        prediction: Annotated[str | None, typer.Option(help="Prediction column")] = None,
        group: Annotated[list[str] | None, typer.Option(help="Group column (repeatable)")] = None,
        label: Annotated[str | None, typer.Option(help="True outcome column")] = None,
        positive: Annotated[str | None, typer.Option(help="Value meaning 'selected'")] = None,
        version: Annotated[int | None, typer.Option(help="Dataset version")] = None,
        decisions: Annotated[str | None, typer.Option(help="Audit the decision log of this AI service instead")] = None,
        entry: Annotated[str | None, typer.Option(help="Register entry to attach the audit to")] = None,
        min_ratio: Annotated[float, typer.Option(help="Four-fifths threshold")] = 0.8,
        max_error_difference: Annotated[float | None, typer.Option(help="Max FPR/FNR difference")] = None,
        min_group_size: Annotated[int, typer.Option(help="Smaller groups: warning only")] = 30,
        n_boot: Annotated[int, typer.Option(help="Bootstrap replicates")] = 500,
        schedule: Annotated[bool, typer.Option(help="Repeat with `fairness rerun`")] = True,
        pdf: Annotated[Path | None, typer.Option(help="With 'report': write a PDF")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    ) -> None:
        """Audit predictions per group: selection and error rates, ratios, four-fifths rule.

        `fairness rerun` repeats every scheduled audit on the newest data and alerts when a
        threshold is crossed (for cron or a systemd timer, see docs/governance.md);
        `fairness report ID [--pdf FILE]` shows a stored audit or prints it as PDF."""
        from datenlabor.governance import audits

        if slug == "rerun":
            rerun()
            return
        if slug == "report":
            if audit_id is None:
                raise BadInput("name the audit: fairness report ID")
            report(audit_id, pdf)
            return
        from datenlabor.governance.fairness import Thresholds

        if slug is None and decisions is None:
            raise BadInput("name a dataset (SLUG) or --decisions MODEL")
        gate, p = ctx()
        t = Thresholds(min_ratio=min_ratio, max_error_difference=max_error_difference,
                       min_group_size=min_group_size, n_boot=n_boot)  # fmt: skip
        if decisions:
            result = audits.run_decisions(gate, p, decisions, groups=group or audits.DECISION_GROUPS,
                                          thresholds=t)  # fmt: skip
        else:
            if not prediction or not group:
                raise BadInput("--prediction and at least one --group are needed")
            result, _v = audits.run_dataset(gate, p, str(slug), prediction=prediction, groups=group,
                                            label=label, positive=positive, version=version,
                                            thresholds=t)  # fmt: skip
        audit_id = audits.store(gate, p, result, entry=entry, schedule=schedule, thresholds=t)
        summary = _summary(result, audit_id)
        if as_json:
            _out(summary)
            return
        for name, a in summary["attributes"].items():
            typer.echo(f"{name}: lowest ratio {a['min_ratio']}, flagged {a['flagged']}")
            for g in a["groups"]:
                typer.echo(f"  {g['group']}: n={g['n']} selection rate {g['selection_rate']}")
        typer.echo(f"flagged: {str(summary['flagged']).lower()} (audit #{audit_id})")

    def rerun() -> None:
        from datenlabor.governance import audits

        gate, p = ctx()
        _out(audits.rerun(gate, p))

    def report(audit_id: int, pdf: Path | None) -> None:
        from datenlabor.governance import audits
        from datenlabor.governance import report as rep

        gate, p = ctx()
        data = audits.get(gate, p, audit_id)
        if pdf is None:
            _out(data)
            return
        body = rep.pdf(rep.standalone_html(data, "de"))
        partial = pdf.with_name(f".{pdf.name}.partial")
        partial.write_bytes(body)
        partial.replace(pdf)


    # -- marketplace ----------------------------------------------------------------------
    @market.command("list")
    def m_list(
        q: Annotated[str | None, typer.Option(help="Words to search")] = None,
        status: Annotated[str | None, typer.Option()] = None,
        level: Annotated[str | None, typer.Option()] = None,
        policy_area: Annotated[str | None, typer.Option()] = None,
        technique: Annotated[str | None, typer.Option()] = None,
        risk_class: Annotated[str | None, typer.Option()] = None,
    ) -> None:
        from datenlabor.governance import marketplace as m

        gate, p = ctx()
        _out(m.search(gate.pool.store, p, q, status=status, level=level,
                      policy_area=policy_area, technique=technique, risk_class=risk_class))  # fmt: skip

    @market.command("export")
    def m_export(fmt: Annotated[str, typer.Option("--format", "-f", help="json or csv")] = "json") -> None:
        from datenlabor.governance import marketplace as m

        gate, p = ctx()
        sys.stdout.write(m.export(gate.pool.store, p, fmt))

    @market.command("import")
    def m_import(
        path: Path,
        fmt: Annotated[str | None, typer.Option("--format", "-f", help="json or csv (default: suffix)")] = None,
        org: Annotated[str | None, typer.Option(help="Organisation of rows without one")] = None,
    ) -> None:
        """Create or update use cases from JSON/CSV (all rows or none)."""
        from datenlabor.governance import marketplace as m

        gate, p = ctx()
        kind = fmt or path.suffix.lower().lstrip(".")
        _out(m.import_(gate.pool.store, p, _read(path), kind, name=path.name, organisation=org))

    @market.command("from-register")
    def m_from_register(
        slug: str,
        level: Annotated[str, typer.Option(help="federal, land or municipal")],
    ) -> None:
        """A use case profile of a register entry (with live metrics)."""
        from datenlabor.governance import marketplace as m

        gate, p = ctx()
        view = m.from_register(gate.pool.store, p, slug, level=level)
        _out(m.profile(gate.pool.store, p, view.slug))


def _summary(result: dict[str, Any], audit_id: int) -> dict[str, Any]:
    """What the CLI prints: per attribute the groups' rates and the lowest ratio."""
    attrs = {}
    for name, a in result["attributes"].items():
        groups = []
        for g in a["groups"]:
            row = {"group": g["group"], "n": g["n"], "selection_rate": g["selection_rate"],
                   "selection_rate_ci": g.get("selection_rate_ci"),
                   "ratio_to_best": g["ratio_to_best"], "small": g["small"]}  # fmt: skip
            for m in ("fpr", "fnr", "override_rate"):
                if m in g:
                    row[m] = g[m]
            groups.append(row)
        attrs[name] = {"groups": groups, "min_ratio": a["min_ratio"], "flagged": a["flagged"],
                       "metrics": a["metrics"]}  # fmt: skip
    return {
        "audit": audit_id,
        "source": result["source"],
        "rows": result["rows"],
        "attributes": attrs,
        "min_ratio": result["min_ratio"],
        "flagged": result["flagged"],
        "reasons": result["reasons"],
        "warnings": result["warnings"],
        "thresholds": result["thresholds"],
    }

