"""Confidential datasets: their disclosure-control rules and the protected table others see.

A dataset becomes confidential when a steward gives it rules (dimensions with hierarchies,
measures, contributor, thresholds, method; :class:`datenlabor.disclosure.Rules`). From then
on everyone without microdata access (see :mod:`datenlabor.access.policy`) reads, through
every route, the same *protected table* of each version: all cells and totals, suppressed
or perturbed as the rules say. It is computed once per version and set of rules and kept
next to the pool's tables (``<pool>/disclosure/<slug>/<key>.parquet`` with a JSON report),
so the answer is identical for everyone and every route — a second, differently cut table
would let a caller recover suppressed cells by difference.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from datenlabor.access.principal import Principal
from datenlabor.errors import BadInput, NotFound
from datenlabor.pool import delta
from datenlabor.pool.locks import dataset_lock
from datenlabor.pool.secret import pool_key
from datenlabor.store.models import Dataset, Version

if TYPE_CHECKING:
    from datenlabor.disclosure import Rules
    from datenlabor.service.gate import Gate

FOLDER = "disclosure"


@dataclass(frozen=True)
class ProtectedVersion:
    """The protected table of one dataset version: its file, schema and report."""

    path: Path
    schema: pa.Schema
    report: dict[str, Any]


def rules_of(d: Dataset) -> Rules | None:
    from datenlabor.disclosure import Rules

    return Rules.from_json(d.disclosure) if d.disclosure is not None else None


def set_rules(
    gate: Gate,
    p: Principal,
    slug: str,
    rules: dict[str, Any] | None,
    *,
    client: str | None = None,
) -> dict[str, Any] | None:
    """Make a dataset confidential with ``rules`` (JSON form), change them, or (None) lift
    them. The protected table of the current version is computed before the rules take
    effect, so rules that do not fit the data are refused and change nothing."""
    from datenlabor.disclosure import Rules

    d = gate.managed(p, slug)  # 401/404/403: tells no more than the caller knows
    stored: dict[str, Any] | None = None
    if rules is not None:
        parsed = Rules.from_json(rules)
        _check_columns(parsed, d.versions[-1])
        narrowing = [
            str(g.id) for g in d.grants if not g.microdata and (g.hidden_columns or g.row_filter)
        ]
        if narrowing:
            raise BadInput(
                f"grant {', '.join(narrowing)} of {slug!r} hides columns or rows; on a "
                "confidential dataset a grantee without microdata access sees the whole "
                "protected table, so remove the narrowing or make it a microdata grant first",
                column="grants",
            )
        stored = parsed.to_json()
        protected(gate, d, d.versions[-1], stored)  # raises if the rules do not fit
    with gate.pool.store.session() as s, s.begin():
        row = s.get(Dataset, d.id)
        if row is None:
            raise NotFound(f"no dataset {slug!r}")
        row.disclosure = stored
    gate.forget(slug)
    gate.audit.log(
        p,
        "disclosure",
        datasets={slug: d.versions[-1].number},
        publishers={slug: d.publisher.slug if d.publisher else None},
        detail={"rules": stored},
        client=client,
    )
    return stored


def _check_columns(rules: Rules, v: Version) -> None:
    columns = [f["name"] for f in v.table_schema.get("fields", [])]
    named = [("dims", dim.name) for dim in rules.dims]
    named += [("measures", m) for m in rules.measures]
    if rules.contributor:
        named.append(("contributor", rules.contributor))
    for field, col in named:
        if col not in columns:
            raise BadInput(
                f"{field}: no column {col!r} in version {v.number}; columns: {', '.join(columns)}",
                column=field,
            )


def protected(
    gate: Gate, d: Dataset, v: Version, rules: dict[str, Any] | None = None
) -> ProtectedVersion:
    """The protected table of version ``v`` under the dataset's rules (or ``rules``),
    computed on first use and kept for good (a version and its rules never change)."""
    from datenlabor.disclosure import Rules, protect

    rules_json = rules if rules is not None else d.disclosure
    if rules_json is None:
        raise BadInput(f"dataset {d.slug!r} has no disclosure-control rules")
    key = hashlib.sha256(
        json.dumps([v.delta_version, rules_json], sort_keys=True).encode()
    ).hexdigest()[:20]
    folder = gate.pool.root / FOLDER / d.slug
    path = folder / f"v{v.number}-{key}.parquet"
    report_path = path.with_suffix(".json")
    done = _read(path, report_path)
    if done is not None:
        return done
    root = gate.pool.root
    with dataset_lock(root / "locks", f"disclosure-{d.slug}", timeout_s=gate.pool.settings.lock_timeout_s):
        done = _read(path, report_path)  # another process may have finished meanwhile
        if done is not None:
            return done
        files, schema = delta.snapshot_files(root / d.table_path, v.delta_version)
        parsed = Rules.from_json(rules_json)
        with gate.connection() as con:
            con.register("__microdata", pads.dataset(files, schema=schema, format="parquet"))
            secret = pool_key(root, "cellkey").decode()
            result = protect(con, "SELECT * FROM __microdata", parsed, secret=secret)
        folder.mkdir(parents=True, exist_ok=True)
        report = dict(
            result.report,
            version=v.number,
            dataset=d.slug,
            dims=parsed.dim_names,
            measures=list(parsed.measures),
            contributor=parsed.contributor,
            # what the count column n counts: records (distinct contributors would not add
            # up across totals; see datenlabor.disclosure.output)
            n_counts="records",
            finest={
                name: sorted(set(pm) - set(pm.values()))
                for name, pm in zip(parsed.dim_names, result.cells.parents, strict=True)
            },
        )
        tmp = folder / f".{uuid.uuid4().hex}.tmp"
        try:
            pq.write_table(result.table, tmp, compression="zstd")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        _write_json(report_path, report)
        return ProtectedVersion(path, result.table.schema, report)


def _read(path: Path, report_path: Path) -> ProtectedVersion | None:
    # The report is written after the table: both present means complete, and a complete
    # protected table never changes, so it is kept in memory once read.
    if not (path.exists() and report_path.exists()):
        return None
    return _load(path, report_path)


@functools.lru_cache(maxsize=256)
def _load(path: Path, report_path: Path) -> ProtectedVersion:
    return ProtectedVersion(
        path, pq.read_schema(path), json.loads(report_path.read_text(encoding="utf-8"))
    )


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, default=str), encoding="utf-8")
    os.replace(tmp, path)


# What responses say about the protection applied (the full report also lists every finest
# code per dimension, which the SQL rewrite needs and a response does not).
_PUBLIC_KEYS = ("method", "rules", "cells", "primary", "secondary", "n_counts")


def public_report(report: dict[str, Any]) -> dict[str, Any]:
    return {k: report[k] for k in _PUBLIC_KEYS if k in report}


def protected_fields(rules: dict[str, Any]) -> list[dict[str, str]]:
    """The Table Schema fields of a protected table under ``rules`` (JSON form)."""
    from datenlabor.disclosure import Rules

    r = Rules.from_json(rules)
    fields = [{"name": dim.name, "type": "string"} for dim in r.dims]
    fields.append({"name": "n", "type": "integer"})
    fields += [{"name": m, "type": "number"} for m in r.measures]
    fields.append({"name": "status", "type": "string"})
    return fields
