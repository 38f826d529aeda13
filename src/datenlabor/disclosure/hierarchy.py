"""Hierarchies of dimension codes: AGS key prefixes, time codes, code lists, flat.

Every hierarchy is a parent map ``code -> parent`` whose roots hang below the total
:data:`TOTAL` (``"Insgesamt"``). Time codes: ``"2024"`` (year) > ``"2024-Q1"`` (quarter) >
``"2024-01"`` (month). AGS/ARS codes: ``"09"`` Land > ``"091"`` Regierungsbezirk > ``"09162"``
Kreis > (ARS ``"091620000"`` Gemeindeverband) > ``"09162000"`` / ``"091620000000"`` Gemeinde.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from datenlabor.disclosure.rules import TOTAL, Hierarchy
from datenlabor.errors import BadInput

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
_YEAR = re.compile(r"^\d{4}$")
Step = Callable[[str], str | None]
_AGS_LENGTHS = {2: None, 3: 2, 5: 3, 8: 5, 9: 5, 12: 9}


def ags_parent(code: str) -> str | None:
    """The next higher AGS/ARS level of a key, None for a Land; ValueError if no key."""
    if not code.isdigit() or len(code) not in _AGS_LENGTHS:
        raise ValueError(code)
    cut = _AGS_LENGTHS[len(code)]
    return code[:cut] if cut else None


def time_parent(code: str) -> str | None:
    """``2024-05`` -> ``2024-Q2`` -> ``2024`` -> None; ValueError for other text."""
    m = _MONTH.match(code)
    if m:
        return f"{m.group(1)}-Q{(int(m.group(2)) - 1) // 3 + 1}"
    m = _QUARTER.match(code)
    if m:
        return m.group(1)
    if _YEAR.match(code):
        return None
    raise ValueError(code)


def parent_map(name: str, hierarchy: Hierarchy, codes: Iterable[str]) -> dict[str, str]:
    """Parent of every given code and of all their ancestors (roots map to TOTAL).

    Codes must not be ancestors of other codes: a record at Kreis level beside records at
    Gemeinde level of the same Kreis would make the Kreis total something else than the sum of
    its parts.
    """
    parents: dict[str, str] = {}
    leaves = set(codes)
    if TOTAL in leaves:
        raise BadInput(f"the value {TOTAL!r} is reserved for totals", column=name)
    if isinstance(hierarchy, dict):
        step = _code_list_step(name, hierarchy)
    elif hierarchy == "ags":
        step = _checked(name, ags_parent, "an AGS/ARS key of 2, 3, 5, 8, 9 or 12 digits")
    elif hierarchy == "time":
        step = _checked(name, time_parent, "a time code YYYY, YYYY-Qn or YYYY-MM")
    else:
        return dict.fromkeys(leaves, TOTAL)
    for code in sorted(leaves):
        chain: list[str] = []
        current: str | None = code
        while current is not None and current not in parents:
            chain.append(current)
            nxt = step(current)
            if nxt is not None and nxt in chain:
                raise BadInput(f"the code list has a cycle through {code!r}", column=name)
            parents[current] = nxt if nxt is not None else TOTAL
            current = nxt
    inner = set(parents.values())
    clash = sorted(leaves & inner)
    if clash:
        raise BadInput(
            f"value {clash[0]!r} occurs in the data and is also the total of other values "
            f"({len(clash)} such values); aggregate to one level first",
            column=name,
        )
    return parents


def _checked(name: str, fn: Step, what: str) -> Step:
    def step(code: str) -> str | None:
        try:
            return fn(code)
        except ValueError:
            raise BadInput(f"value {code!r} is not {what}", column=name) from None

    return step


def _code_list_step(name: str, code_list: dict[str, str | None]) -> Step:
    def step(code: str) -> str | None:
        if code not in code_list:
            if code in code_list.values():
                return None  # a parent not listed itself: a top-level code
            raise BadInput(f"value {code!r} is not in the dimension's code list", column=name)
        return code_list[code]

    return step


def infer_parents(name: str, codes: Iterable[str], hierarchy: Hierarchy | None) -> dict[str, str]:
    """Parent map of the codes of a published table (for the audit of a CSV).

    Without a hierarchy: AGS keys if every code is one, time codes if every code is one, flat
    otherwise. Levels missing from the table are skipped (a Kreis whose Regierungsbezirk is
    not published hangs below the Land).
    """
    present = {c for c in codes if c != TOTAL}
    if hierarchy is None:
        hierarchy = "flat"
        for kind, fn in (("ags", ags_parent), ("time", time_parent)):
            try:
                for c in present:
                    fn(c)
            except ValueError:
                continue
            hierarchy = kind
            break
    if hierarchy == "flat":
        return dict.fromkeys(present, TOTAL)
    if isinstance(hierarchy, dict):
        full_step: Step = dict(hierarchy).get
    else:
        fn = ags_parent if hierarchy == "ags" else time_parent
        full_step = _checked(name, fn, f"a {hierarchy} code")
    out: dict[str, str] = {}
    for c in present:
        p = full_step(c)
        while p is not None and p not in present:
            p = full_step(p)
        out[c] = p if p is not None else TOTAL
    return out


def read_code_list(path: Path) -> dict[str, str | None]:
    """A code list from a CSV file with columns ``code,parent`` (empty parent = top level)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read the code list: {exc}", file=str(path)) from exc
    rows = csv.DictReader(text.splitlines(), delimiter=";" if ";" in text.split("\n")[0] else ",")
    if not rows.fieldnames or not {"code", "parent"} <= set(rows.fieldnames):
        raise BadInput("a code list needs the columns code and parent", file=str(path), line=1)
    out: dict[str, str | None] = {}
    for i, row in enumerate(rows, start=2):
        code, parent = (row.get("code") or "").strip(), (row.get("parent") or "").strip()
        if not code:
            raise BadInput("empty code", file=str(path), line=i, column="code")
        if code in out:
            raise BadInput(f"code {code!r} listed twice", file=str(path), line=i, column="code")
        if TOTAL in (code, parent):
            raise BadInput(f"{TOTAL!r} is reserved for the total", file=str(path), line=i)
        out[code] = parent or None
    return out
