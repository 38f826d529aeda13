"""The log as traces: events in ``seq`` order with case boundaries, as Arrow/numpy arrays.

Why not plain SQL here: the stored log is already ordered (``seq`` numbers the events case
by case), so cases, directly-follows pairs and activity sequences are linear scans over that
order. A SQL engine does not know the order and would hash 10 million case ids or sort the
events in a window; reading the columns in ``seq`` order and comparing neighbours is several
times faster and needs less memory. The results are handed to DuckDB as Arrow tables
(``cases``, ``pairs``, ``traces``) and every aggregation (counts, medians, variants) is SQL.

DuckDB reads the columns ``case_no``, ``timestamp`` and ``activity`` (as ENUM codes) sorted
by ``seq``; case ids are not needed here (``case_no`` numbers the cases).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from datenlabor.errors import BadInput
from datenlabor.query.connection import quote_literal


@dataclass
class Traces:
    case_nos: np.ndarray  # one per case, increasing
    starts: np.ndarray  # index of each case's first event
    codes: np.ndarray  # activity code per event (index into ``activities``)
    activities: list[str]
    ts_us: np.ndarray  # event time, microseconds since the epoch (UTC)

    @property
    def events(self) -> int:
        return int(self.codes.size)

    @property
    def ends(self) -> np.ndarray:
        return np.append(self.starts[1:] - 1, self.events - 1).astype(np.int64)

    def cases_table(self) -> pa.Table:
        """case_no, start, end, events, duration_s, last_activity."""
        starts, ends = self.starts, self.ends
        if starts.size == 0:
            ends = starts
        utc = pa.timestamp("us", tz="UTC")
        return pa.table(
            {
                "case_no": pa.array(self.case_nos),
                "start": pa.array(self.ts_us[starts], utc),
                "end": pa.array(self.ts_us[ends], utc),
                "events": pa.array(ends - starts + 1),
                "duration_s": pa.array((self.ts_us[ends] - self.ts_us[starts]) / 1e6),
                "last_activity": self._names(self.codes[ends]),
            }
        )

    def pairs_table(self) -> pa.Table:
        """Directly-follows pairs: case_no, a, b (activity codes), d (seconds between)."""
        n = self.events
        first = np.zeros(n, dtype=bool)
        first[self.starts] = True
        within = ~first[1:]
        case_no = np.repeat(self.case_nos, np.diff(np.append(self.starts, n)))
        a, b, d = self._pair_arrays()
        return pa.table(
            {"case_no": pa.array(case_no[1:][within]), "a": a, "b": b, "d": pa.array(d)}
        )

    def _pair_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = self.events
        first = np.zeros(n, dtype=bool)
        first[self.starts] = True
        within = ~first[1:]
        d = ((self.ts_us[1:] - self.ts_us[:-1]) / 1e6)[within]
        return self.codes[:-1][within], self.codes[1:][within], d

    def edges_table(self) -> pa.Table | None:
        """Per directly-follows edge (a, b codes): count, mean_s, median_s, p90_s, min_s,
        max_s, total_s; None when there are too many distinct edges for this path.

        Quantiles interpolate linearly (numpy's default, as DuckDB's quantile_cont and
        pm4py). The pairs are grouped by a stable radix sort on a 16-bit edge id, then each
        edge's slice is summarised: linear in the events, with a loop over edges only.
        """
        a, b, d = self._pair_arrays()
        k = max(1, len(self.activities))
        if k * k > 50_000_000:
            return None
        edge = a.astype(np.int64) * k + b
        counts = np.bincount(edge, minlength=k * k)
        present = np.flatnonzero(counts)
        if present.size > 65_535:
            return None
        lut = np.zeros(k * k, dtype=np.uint16)
        lut[present] = np.arange(present.size, dtype=np.uint16)
        order = np.argsort(lut[edge], kind="stable")  # radix sort on 16-bit keys
        ds = d[order]
        sizes = counts[present]
        bounds = np.concatenate(([0], np.cumsum(sizes)))
        starts = bounds[:-1]
        med = np.empty(present.size)
        p90 = np.empty(present.size)
        for i in range(present.size):  # per edge, not per event
            med[i], p90[i] = np.quantile(ds[bounds[i] : bounds[i + 1]], [0.5, 0.9])
        total = np.add.reduceat(ds, starts) if ds.size else np.zeros(0)
        return pa.table(
            {
                "a": pa.array((present // k).astype(np.int32)),
                "b": pa.array((present % k).astype(np.int32)),
                "count": pa.array(sizes.astype(np.int64)),
                "mean_s": pa.array(total / sizes if ds.size else total),
                "median_s": pa.array(med),
                "p90_s": pa.array(p90),
                "min_s": pa.array(np.minimum.reduceat(ds, starts) if ds.size else total),
                "max_s": pa.array(np.maximum.reduceat(ds, starts) if ds.size else total),
                "total_s": pa.array(total),
            }
        )

    def variants_table(self) -> tuple[pa.Table, pa.Table] | None:
        """Variant of each case: (``case_variants``: case_no, variant, duration_s;
        ``variant_codes``: variant, codes list), or None if hashing met a collision.

        Each case's activity sequence is hashed (a polynomial over the codes, 64-bit, plus
        its length) in whole-array operations, the hashes are grouped, and then every event
        is compared with the same position of its variant's first case, so the grouping is
        exact; on any mismatch the caller falls back to grouping the lists in DuckDB.
        """
        n, starts = self.events, self.starts
        if n == 0:
            return None
        lengths = np.diff(np.append(starts, n))
        case_of = np.repeat(np.arange(starts.size, dtype=np.int64), lengths)
        pos = np.arange(n, dtype=np.int64) - starts[case_of]
        with np.errstate(over="ignore"):
            powers = np.cumprod(
                np.full(int(lengths.max()), np.uint64(0x9E3779B97F4A7C15), dtype=np.uint64)
            )
            terms = (self.codes.astype(np.uint64) + np.uint64(1)) * powers[pos]
            key = np.add.reduceat(terms, starts) ^ (
                lengths.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
            )
        del terms
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        rep = first[inverse]  # per case: the first case with the same hash
        if not np.array_equal(lengths, lengths[rep]):
            return None
        if not np.array_equal(self.codes, self.codes[starts[rep][case_of] + pos]):
            return None
        ends = starts + lengths - 1
        durations = (self.ts_us[ends] - self.ts_us[starts]) / 1e6
        rep_len = lengths[first]
        offsets = np.concatenate(([0], np.cumsum(rep_len)))
        take = np.repeat(starts[first] - offsets[:-1], rep_len) + np.arange(offsets[-1])
        return (
            pa.table(
                {
                    "case_no": pa.array(self.case_nos),
                    "variant": pa.array(inverse.astype(np.int64)),
                    "duration_s": pa.array(durations),
                }
            ),
            pa.table(
                {
                    "variant": pa.array(np.arange(first.size, dtype=np.int64)),
                    "codes": pa.ListArray.from_arrays(
                        pa.array(offsets.astype(np.int32)), pa.array(self.codes[take])
                    ),
                }
            ),
        )

    def traces_table(self) -> pa.Table:
        """case_no and the case's activity codes as a list (zero-copy over the codes)."""
        offsets = pa.array(np.append(self.starts, self.events).astype(np.int32))
        return pa.table(
            {
                "case_no": pa.array(self.case_nos),
                "codes": pa.ListArray.from_arrays(offsets, pa.array(self.codes)),
            }
        )

    def start_end_counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """Cases per first activity and per last activity, most frequent first."""
        k = len(self.activities)

        def counts(codes: np.ndarray) -> dict[str, int]:
            c = np.bincount(codes, minlength=k)
            order = sorted(np.flatnonzero(c), key=lambda i: (-c[i], self.activities[i]))
            return {self.activities[i]: int(c[i]) for i in order}

        if self.starts.size == 0:
            return {}, {}
        return counts(self.codes[self.starts]), counts(self.codes[self.ends])

    def names_table(self) -> pa.Table:
        """code -> activity name."""
        return pa.table(
            {
                "code": pa.array(np.arange(len(self.activities), dtype=np.int32)),
                "name": pa.array(self.activities, pa.string()),
            }
        )

    def _names(self, codes: np.ndarray) -> pa.DictionaryArray:
        return pa.DictionaryArray.from_arrays(
            pa.array(codes.astype(np.int32)), pa.array(self.activities, pa.string())
        )


def load_traces(
    source: duckdb.DuckDBPyConnection | Sequence[str | Path],
    events: str | np.ndarray | None = "ev",
) -> Traces:
    """Read the events of relation ``events`` on connection ``source`` in ``seq`` order.

    DuckDB reads the Parquet files in parallel and sorts by ``seq`` (the pool's writer may
    store row groups out of order); activities come back as ENUM codes, so no event's text
    reaches Python. ``source`` may also be a version's Parquet files, with ``events`` an
    optional array of the ``seq`` values to keep.
    """
    if not isinstance(source, duckdb.DuckDBPyConnection):
        con = duckdb.connect()
        try:
            listed = ", ".join(quote_literal(str(f)) for f in source)
            where = ""
            if isinstance(events, np.ndarray):
                con.register("__keep", pa.table({"seq": pa.array(events, pa.int64())}))
                where = " WHERE seq IN (SELECT seq FROM __keep)"
            con.execute(
                f"CREATE TEMP VIEW __events AS SELECT * FROM read_parquet([{listed}]){where}"
            )
            return load_traces(con, "__events")
        finally:
            con.close()
    con = source
    assert isinstance(events, str)
    con.execute(
        "CREATE OR REPLACE TYPE __activity AS ENUM "
        f"(SELECT DISTINCT activity FROM {events} WHERE activity IS NOT NULL ORDER BY 1)"
    )
    names = [
        r[0] for r in con.execute("SELECT unnest(enum_range(NULL::__activity))").fetchall()
    ]
    cols = con.execute(
        "SELECT case_no, epoch_us(timestamp) AS ts, "
        f"enum_code(CAST(activity AS __activity)) AS code FROM {events} ORDER BY seq"
    ).fetchnumpy()
    case_no = np.asarray(cols["case_no"], dtype=np.int64)
    ts = np.asarray(cols["ts"], dtype=np.int64)
    codes = np.asarray(cols["code"], dtype=np.int32)
    n = codes.size
    if n == 0:
        empty = np.zeros(0, np.int64)
        return Traces(empty, empty, np.zeros(0, np.int32), names, empty)
    new = np.empty(n, dtype=bool)
    new[0] = True
    new[1:] = case_no[1:] != case_no[:-1]
    starts = np.flatnonzero(new).astype(np.int64)
    numbers = case_no[starts]
    if numbers.size > 1 and not bool(np.all(numbers[1:] > numbers[:-1])):
        raise BadInput(
            "the log's seq column does not number the events case by case (a case's events "
            "are not consecutive); import it with `datenlabor procedures import`",
            column="seq",
        )
    return Traces(case_nos=numbers, starts=starts, codes=codes, activities=names, ts_us=ts)
