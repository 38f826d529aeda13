"""CLI end to end (ingest, sdc protect, sdc audit) and the cell-key method."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from datenlabor.disclosure import TOTAL, Dim, Rules, audit_csv, protect
from datenlabor.disclosure.cellkey import ptable

CLI = [sys.executable, "-m", "datenlabor.cli"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture
def cases_csv(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    kreise = ["01001", "01002", "01053", "03101", "03102", "03151"]
    path = tmp_path / "faelle.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter=";")
        w.writerow(["kreis", "datum", "art", "betrag"])
        for _ in range(260):
            k = rng.choice(kreise, p=[0.4, 0.03, 0.2, 0.25, 0.02, 0.1])
            m = int(rng.integers(1, 7))
            w.writerow(
                [
                    k,
                    f"{int(rng.integers(1, 28)):02d}.{m:02d}.2024",
                    rng.choice(["A1", "A2", "B"], p=[0.6, 0.1, 0.3]),
                    f"{rng.lognormal(4, 1):.2f}".replace(".", ","),
                ]
            )
    return path


def test_cli_protect_then_audit(tmp_path: Path, cases_csv: Path) -> None:
    pool = str(tmp_path / "pool")
    r = _invoke("--pool", pool, "ingest", str(cases_csv), "--dataset", "faelle")
    assert r.exit_code == 0, r.output
    codes = tmp_path / "art.csv"
    codes.write_text("code,parent\nA,\nA1,A\nA2,A\nB,\n", encoding="utf-8")
    out = tmp_path / "geschuetzt.csv"
    r = _cli(
        "--pool",
        pool,
        "sdc",
        "protect",
        "faelle",
        "--dims",
        "kreis,datum,art",
        "--hierarchy",
        "kreis=ags",
        "--hierarchy",
        "datum=time",
        "--hierarchy",
        f"art={codes}",
        "-o",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    assert "cells" in r.stderr and "primary" in r.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert list(rows[0]) == ["kreis", "datum", "art", "n", "status"]
    grand = next(x for x in rows if x["kreis"] == x["datum"] == x["art"] == TOTAL)
    assert grand["n"] == "260" and grand["status"] == ""
    assert {x["status"] for x in rows} == {"", "primary", "secondary"}
    assert all((x["n"] == "") == (x["status"] != "") for x in rows)
    assert any(x["datum"] == "2024-Q1" for x in rows) and any(x["kreis"] == "010" for x in rows)
    # The attacker's audit from the CSV alone (hierarchies from the codes and the code list).
    r = _cli("sdc", "audit", str(out), "--dims", "kreis,datum,art", "--hierarchy", f"art={codes}")
    assert r.returncode == 0, r.stderr + r.stdout
    assert "no cell exposed" in r.stderr
    # A careless publication (secondary cells revealed) is caught.
    leaky = tmp_path / "leaky.csv"
    truth = {(x["kreis"], x["datum"], x["art"]): x for x in rows}
    con = duckdb.connect()
    src = f"SELECT * FROM read_csv('{cases_csv}', delim=';', decimal_separator=',', dateformat='%d.%m.%Y')"
    prot = protect(
        con,
        src,
        Rules(
            dims=[
                Dim("kreis", "ags"),
                Dim("datum", "time"),
                Dim("art", {"A1": "A", "A2": "A", "B": None}),
            ]
        ),
    )
    full = {tuple(r[d] for d in ("kreis", "datum", "art")): r for r in prot.table.to_pylist()}
    assert set(full) == set(truth)
    recs = dict(
        zip(
            map(tuple, zip(*[prot.cells.codes[i] for i in range(3)], strict=False)),
            prot.cells.records,
            strict=False,
        )
    )
    with leaky.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["kreis", "datum", "art", "n", "status"])
        for key, x in truth.items():
            n = recs[key] if x["status"] == "secondary" else x["n"]
            w.writerow([*key, n, x["status"]])
    r = _cli(
        "sdc",
        "audit",
        str(leaky),
        "--dims",
        "kreis,datum,art",
        "--hierarchy",
        f"art={codes}",
        "--json",
    )
    assert r.returncode == 1
    assert '"problem": "exact"' in r.stdout


def _invoke(*args: str):  # type: ignore[no-untyped-def]
    """In process (fast); errors come back as the exception ``main()`` would print."""
    from typer.testing import CliRunner

    from datenlabor.cli import app

    return CliRunner().invoke(app, list(args))


def test_cli_magnitude_and_errors(tmp_path: Path, cases_csv: Path) -> None:
    from datenlabor.errors import BadInput, NotFound

    pool = str(tmp_path / "pool")
    assert _invoke("--pool", pool, "ingest", str(cases_csv), "--dataset", "faelle").exit_code == 0
    out = tmp_path / "betrag.csv"
    r = _invoke(
        "--pool",
        pool,
        "sdc",
        "protect",
        "faelle",
        "--dims",
        "kreis,art",
        "--hierarchy",
        "kreis=ags",
        "--measure",
        "betrag",
        "--version",
        "1",
        "-o",
        str(out),
    )
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert list(rows[0]) == ["kreis", "art", "n", "betrag", "status"]
    assert any(x["status"] == "primary" for x in rows)
    assert audit_csv(out, dims=["kreis", "art"], measures=["betrag"]) == []
    r = _invoke("--pool", pool, "sdc", "protect", "faelle", "--dims", "kreis,nix", "-o", str(out))
    assert isinstance(r.exception, BadInput) and r.exception.column == "nix"
    r = _invoke(
        "--pool",
        pool,
        "sdc",
        "protect",
        "faelle",
        "--dims",
        "kreis",
        "--hierarchy",
        "kreis=gemeinde.csv",
        "-o",
        str(out),
    )
    assert isinstance(r.exception, BadInput) and "gemeinde.csv" in str(r.exception)
    r = _invoke(
        "--pool",
        pool,
        "sdc",
        "protect",
        "faelle",
        "--dims",
        "kreis",
        "--method",
        "cellkey",
        "-o",
        str(out),
    )
    assert isinstance(r.exception, BadInput) and "secret" in str(r.exception)
    r = _invoke(
        "--pool",
        pool,
        "sdc",
        "protect",
        "faelle",
        "--dims",
        "kreis",
        "--version",
        "9",
        "-o",
        str(out),
    )
    assert isinstance(r.exception, NotFound)
    # The cell-key method with a secret: counts perturbed, consistent between runs.
    ck1, ck2 = tmp_path / "ck1.csv", tmp_path / "ck2.csv"
    for target in (ck1, ck2):
        r = _invoke(
            "--pool",
            pool,
            "sdc",
            "protect",
            "faelle",
            "--dims",
            "kreis,art",
            "--method",
            "cellkey",
            "--secret",
            "s3cret",
            "-o",
            str(target),
        )
        assert r.exit_code == 0, r.output
    assert ck1.read_text() == ck2.read_text()
    assert "perturbed" in ck1.read_text()


def test_audit_rejects_wrong_hierarchy(tmp_path: Path) -> None:
    from datenlabor.errors import BadInput

    bad = tmp_path / "t.csv"
    # A is the total of A1 and A2; read as flat, Insgesamt would have to be A + A1 + A2 + B.
    bad.write_text("art,n,status\nInsgesamt,10,\nA,6,\nA1,4,\nA2,2,\nB,4,\n", encoding="utf-8")
    with pytest.raises(BadInput, match="differs from the sum") as exc:
        audit_csv(bad, dims=["art"])
    assert exc.value.file == str(bad) and exc.value.column == "n"
    assert (
        audit_csv(bad, dims=["art"], hierarchies={"art": {"A1": "A", "A2": "A", "B": None}}) == []
    )


def test_ptable_moments() -> None:
    table = ptable(2, 1.5)
    for n, (d, p) in table.items():
        assert p.sum() == pytest.approx(1.0)
        assert (n + d >= 0).all()
        if n:
            assert p @ d == pytest.approx(0.0, abs=1e-9)
            assert p @ (d * d) == pytest.approx(1.5)
        if n in (1, 2):
            assert 0 not in d


def _cellkey(table: pa.Table, secret: str, sql: str = "SELECT * FROM t"):  # type: ignore[no-untyped-def]
    con = duckdb.connect()
    con.register("t", table)
    return protect(
        con, sql, Rules(dims=[Dim("kreis", "ags"), Dim("art")], method="cellkey"), secret=secret
    )


def test_cellkey_is_consistent_and_hides_small_counts() -> None:
    rng = np.random.default_rng(5)
    n = 3000
    t = pa.table(
        {
            "id": [f"p{i}" for i in range(n)],
            "kreis": rng.choice(["01001", "01002", "03101", "03102", "09162"], n),
            "art": rng.choice(
                ["a", "b", "c", "d", "e", "f"], n, p=[0.5, 0.3, 0.15, 0.03, 0.015, 0.005]
            ),
        }
    )
    one = _cellkey(t, "geheim")
    again = _cellkey(t.take(rng.permutation(n)), "geheim")  # same records, other order
    key = lambda p: {(r["kreis"], r["art"]): r["n"] for r in p.table.to_pylist()}  # noqa: E731
    assert key(one) == key(again)
    # The same set of records in another query gives the same count.
    sub = _cellkey(t, "geheim", "SELECT * FROM t WHERE kreis = '01001'")
    assert key(sub)[("01001", "a")] == key(one)[("01001", "a")]
    true = dict(
        zip(
            zip(one.cells.codes[0], one.cells.codes[1], strict=False),
            one.cells.records,
            strict=False,
        )
    )
    published = key(one)
    assert all(v >= 0 for v in published.values())
    assert all(abs(published[k] - true[k]) <= 2 for k in true)
    smalls = [k for k, v in true.items() if v in (1, 2)]
    assert smalls and all(published[k] != true[k] for k in smalls)
    assert {r["status"] for r in one.table.to_pylist()} <= {"perturbed", ""}
    # Another secret gives other keys: some counts differ.
    other = key(_cellkey(t, "anders"))
    assert other != published
    deviations = np.array([published[k] - true[k] for k in true])
    assert abs(deviations.mean()) < 0.5
