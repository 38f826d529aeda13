"""CLI: statistical disclosure control (``datenlabor sdc protect`` / ``sdc audit``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from datenlabor.errors import BadInput

if TYPE_CHECKING:
    from datenlabor.disclosure.rules import Hierarchy
    from datenlabor.pool.pool import Pool

err = Console(stderr=True)


def _split(value: str, option: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise BadInput("give at least one column", column=option)
    return items


def _hierarchies(values: list[str] | None) -> dict[str, Hierarchy]:
    """``--hierarchy COL=ags|time|flat|FILE.csv`` (a code list with columns code,parent)."""
    from datenlabor.disclosure.hierarchy import read_code_list

    out: dict[str, Hierarchy] = {}
    for item in values or []:
        col, sep, kind = item.partition("=")
        if not sep or not col or not kind:
            raise BadInput(
                f"expected COLUMN=ags|time|flat|FILE.csv, got {item!r}", column="--hierarchy"
            )
        out[col] = kind if kind in ("ags", "time", "flat") else read_code_list(Path(kind))
    return out


def _write_csv(table: Any, output: Path) -> None:
    """CSV (UTF-8, ``,``); suppressed values are empty; written atomically."""
    import pyarrow.csv as pacsv

    partial = output.with_name(f".{output.name}.partial")
    try:
        pacsv.write_csv(table, partial, write_options=pacsv.WriteOptions(quoting_style="needed"))
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)


def register(app: typer.Typer, open_pool: Callable[[], Pool]) -> None:
    sdc = typer.Typer(
        help="Statistical disclosure control: protected tables and their audit",
        no_args_is_help=True,
    )
    app.add_typer(sdc, name="sdc")
    _register_rules(sdc, open_pool)

    @sdc.command("protect")
    def protect_cmd(
        slug: Annotated[str, typer.Argument(help="Dataset")],
        dims: Annotated[str, typer.Option("--dims", help="Dimension columns, comma-separated")],
        output: Annotated[Path, typer.Option("-o", "--output", help="CSV file to write")],
        measure: Annotated[
            list[str] | None, typer.Option("--measure", help="Magnitude column (repeatable)")
        ] = None,
        contributor: Annotated[
            str | None, typer.Option(help="Column identifying the contributor (dominance)")
        ] = None,
        method: Annotated[str, typer.Option(help="fast, optimal or cellkey")] = "fast",
        hierarchy: Annotated[
            list[str] | None,
            typer.Option(help="COLUMN=ags|time|flat|FILE.csv (code,parent); repeatable"),
        ] = None,
        version: Annotated[int | None, typer.Option(help="Version (default: current)")] = None,
        min_frequency: Annotated[int, typer.Option(help="Minimum frequency rule")] = 3,
        dominance: Annotated[str, typer.Option(help="(n,k)-dominance as N,K, or 'none'")] = "2,85",
        p_percent: Annotated[float | None, typer.Option(help="p% rule (off by default)")] = None,
        cost: Annotated[str, typer.Option(help="Minimise suppressed 'value' or 'cells'")] = "value",
        secret: Annotated[
            str | None,
            typer.Option(envvar="DATENLABOR_SDC_SECRET", help="Key of the cell-key method"),
        ] = None,
        report: Annotated[
            Path | None, typer.Option(help="Also write the JSON report to this file")
        ] = None,
    ) -> None:
        """Write the protected table of a dataset: every cell and total, status column."""
        from datenlabor.disclosure import Dim, Rules, protect

        names = _split(dims, "--dims")
        hier = _hierarchies(hierarchy)
        unknown = sorted(set(hier) - set(names))
        if unknown:
            raise BadInput(f"{unknown[0]!r} is not one of --dims", column="--hierarchy")
        rules = Rules(
            dims=[Dim(n, hier.get(n, "flat")) for n in names],
            measures=list(measure or []),
            contributor=contributor,
            min_frequency=min_frequency,
            dominance=_dominance(dominance),
            p_percent=p_percent,
            method=method,
            cost=cost,
        )
        pool = open_pool()
        relation = pool.dataset(slug).relation(version)
        con = pool.connect()
        try:
            prot = protect(con, f"SELECT * FROM {relation}", rules, secret=secret)
        finally:
            con.close()
        _write_csv(prot.table, output)
        if report is not None:
            report.write_text(json.dumps(prot.report, ensure_ascii=False, indent=2) + "\n")
        r = prot.report
        extra = (
            f"{r['cellkey']['perturbed_cells']:,} perturbed"
            if method == "cellkey"
            else f"{r['primary']:,} primary, {r['secondary']:,} secondary"
        )
        err.print(
            f"[green]✓[/] {output}: {r['cells']:,} cells, {extra} ({r['method']}, "
            f"{r['seconds']:.2f} s)",
            highlight=False,
        )

    @sdc.command("audit")
    def audit_cmd(
        file: Annotated[Path, typer.Argument(help="Published table (CSV)")],
        dims: Annotated[str, typer.Option("--dims", help="Dimension columns, comma-separated")],
        measure: Annotated[
            list[str] | None, typer.Option("--measure", help="Magnitude column (repeatable)")
        ] = None,
        hierarchy: Annotated[
            list[str] | None,
            typer.Option(help="COLUMN=ags|time|flat|FILE.csv; default: from the codes"),
        ] = None,
        min_frequency: Annotated[int, typer.Option(help="Minimum frequency rule")] = 3,
        as_json: Annotated[bool, typer.Option("--json", help="Print findings as JSON")] = False,
    ) -> None:
        """Attack a published table with linear programming; exit 1 if a cell is exposed."""
        from datenlabor.disclosure import audit_csv

        names = _split(dims, "--dims")
        findings = audit_csv(
            file,
            dims=names,
            measures=list(measure or []),
            hierarchies=_hierarchies(hierarchy),
            min_frequency=min_frequency,
        )
        if as_json:
            sys.stdout.write(json.dumps(findings, ensure_ascii=False, indent=2) + "\n")
        else:
            for f in findings:
                cell = ", ".join(f"{k}={v}" for k, v in f["cell"].items())
                interval = f.get("interval")
                span = f" interval [{interval[0]:g}, {interval[1]:g}]" if interval else ""
                err.print(f"✗ {cell}: {f['column']} {f['problem']}{span}", highlight=False)
            err.print(
                f"{len(findings)} finding(s)" if findings else "[green]✓[/] no cell exposed",
                highlight=False,
            )
        if findings:
            raise typer.Exit(1)


def _dominance(value: str) -> tuple[int, float] | None:
    if value.strip().lower() in ("none", "off", ""):
        return None
    n, _sep, k = value.partition(",")
    try:
        return int(n), float(k)
    except ValueError:
        raise BadInput(f"expected N,K (e.g. 2,85), got {value!r}", column="--dominance") from None


def _register_rules(sdc: typer.Typer, open_pool: Callable[[], Pool]) -> None:
    """``sdc rules show|set|clear``: the rules that make a dataset confidential in the service
    (docs/confidential.md); the CLI acts as the local administrator."""
    rules = typer.Typer(help="Rules that make a dataset confidential", no_args_is_help=True)
    sdc.add_typer(rules, name="rules")

    def gate_and_admin() -> tuple[Any, Any]:
        from datenlabor.access.principal import local_admin
        from datenlabor.service.gate import Gate

        g = Gate(open_pool())
        return g, local_admin(g.pool.settings.user)

    @rules.command("show")
    def rules_show(slug: str) -> None:
        """Print the dataset's rules as JSON (null: not confidential)."""
        g, admin = gate_and_admin()
        d, _view = g.dataset(admin, slug)
        sys.stdout.write(json.dumps(d.disclosure, ensure_ascii=False, indent=2) + "\n")

    @rules.command("set")
    def rules_set(
        slug: str,
        file: Annotated[Path, typer.Argument(help="Rules as JSON (see docs/disclosure.md)")],
    ) -> None:
        """Make a dataset confidential: check the rules, compute its protected table, store."""
        from datenlabor.service.confidential import set_rules

        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise BadInput(f"cannot read {file}: {exc.strerror}", file=str(file)) from exc
        except json.JSONDecodeError as exc:
            raise BadInput(
                f"not JSON: {exc.msg}", file=str(file), line=exc.lineno, column=str(exc.colno)
            ) from exc
        g, admin = gate_and_admin()
        set_rules(g, admin, slug, data, client="cli")
        err.print(f"[green]✓[/] {slug} is confidential; others read its protected table")

    @rules.command("clear")
    def rules_clear(slug: str) -> None:
        """Lift the rules: the dataset is read as before (visibility and grants)."""
        from datenlabor.service.confidential import set_rules

        g, admin = gate_and_admin()
        set_rules(g, admin, slug, None, client="cli")
        err.print(f"[green]✓[/] {slug} is no longer confidential")
