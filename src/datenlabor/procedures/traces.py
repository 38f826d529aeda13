"""The log as traces: events in ``seq`` order with case boundaries, as Arrow/numpy arrays.

Why not plain SQL here: the stored log is already ordered (``seq`` numbers the events case
by case), so cases, directly-follows pairs and activity sequences are linear scans over that
order. A SQL engine does not know the order and would hash 10 million case ids or sort the
events in a window; reading the columns in ``seq`` order and comparing neighbours is several
times faster and needs less memory. The results are handed to DuckDB as Arrow tables
(``cases``, ``pairs``, ``traces``) and every aggregation (counts, medians, variants) is SQL.

DuckDB reads the columns ``case_no``, ``timestamp`` and the activity number ``activity_no``
sorted by ``seq``; case ids are not needed here (``case_no`` numbers the cases). Logs stored
before the import wrote ``activity_no`` have their activity text cast to an ENUM instead
(the codes are the same: activity names numbered in code point order).
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
        pm4py). Hand-written rather than a DuckDB GROUP BY: the pairs exist only as arrays
        here, and one sort of packed integers is several times cheaper than handing 10 M
        pairs to SQL (see :meth:`_packed_edges`).
        """
        packed = self._packed_edges()
        if packed is not None:
            return packed
        return self._radix_edges()

    def _packed_edges(self) -> pa.Table | None:
        """The edges from one in-place sort of 64-bit words ``edge << shift | gap``.

        ``gap`` is the time between the two events in whole microseconds (the timestamps'
        unit), ``edge`` the pair's id ``a * k + b`` in the high bits. Sorting the words
        groups the pairs by edge with each edge's gaps in ascending order, so count,
        minimum, maximum and the quantiles' neighbours are read off by position and the
        total is an exact integer sum; no index array, no gather, no partition (measured at
        10 M events: 0.12 CPU-s against 0.36 for the radix path, and a fifth of its memory).
        None when the ids or gaps do not fit (many activities, negative or huge gaps).
        """
        n, k = self.events, max(1, len(self.activities))
        key_bits = max(1, (k * k - 1).bit_length())
        shift = 64 - key_bits
        if n < 2 or shift < 32:
            return None
        first = np.zeros(n, dtype=bool)
        first[self.starts] = True
        within = ~first[1:]
        del first
        gaps = np.subtract(self.ts_us[1:], self.ts_us[:-1])[within]
        if gaps.size == 0:
            return None
        low, high = int(gaps.min()), int(gaps.max())
        # All gaps of a case add up to its duration: with all durations below 2**63
        # microseconds (2**64 with a margin for the float estimate), no edge's total wraps.
        durations = self.ts_us[self.ends] - self.ts_us[self.starts]
        if low < 0 or high >= 1 << shift or durations.sum(dtype=np.float64) >= 2.0**63:
            return None
        key = self.codes[:-1] * np.int32(k)
        key += self.codes[1:]
        key = key[within]
        del within
        counts = np.bincount(key, minlength=k * k)
        present = np.flatnonzero(counts)
        words = gaps.view(np.uint64)  # gaps >= 0: the same bits
        words |= key.astype(np.uint64) << np.uint64(shift)
        del key
        words.sort()
        sizes = counts[present]
        bounds = np.concatenate(([0], np.cumsum(sizes)))
        lo, hi = bounds[:-1], bounds[1:] - 1
        mask = (1 << shift) - 1
        # Sums wrap modulo 2**64; taking off the edge parts leaves the exact total of gaps.
        high_parts = (present.astype(np.uint64) << np.uint64(shift)) * sizes.astype(np.uint64)
        with np.errstate(over="ignore"):
            total_us = np.add.reduceat(words, lo) - high_parts
        total = total_us.astype(np.float64) / 1e6
        low_s = (words[lo] & np.uint64(mask)).astype(np.int64) / 1e6
        high_s = (words[hi] & np.uint64(mask)).astype(np.int64) / 1e6
        med = np.empty(present.size)
        p90 = np.empty(present.size)
        for i in range(present.size):  # per edge, not per pair
            m, start = int(sizes[i]), int(lo[i])
            for q, out in ((0.5, med), (0.9, p90)):
                # numpy's linear quantile: the neighbours at (m - 1) * q and their fraction,
                # interpolated by numpy itself so the result is bit for bit the same.
                at = (m - 1) * q
                j = int(np.floor(at))
                pair = words[start + j : start + min(j + 2, m)] & np.uint64(mask)
                seconds = pair.astype(np.int64) / 1e6
                out[i] = np.quantile(seconds, at - j) if seconds.size == 2 else seconds[0]
        return pa.table(
            {
                "a": pa.array((present // k).astype(np.int32)),
                "b": pa.array((present % k).astype(np.int32)),
                "count": pa.array(sizes.astype(np.int64)),
                "mean_s": pa.array(total / sizes),
                "median_s": pa.array(med),
                "p90_s": pa.array(p90),
                "min_s": pa.array(low_s),
                "max_s": pa.array(high_s),
                "total_s": pa.array(total),
            }
        )

    def _radix_edges(self) -> pa.Table | None:
        """The edges by a stable radix sort on a 16-bit edge id, then a summary of each
        edge's slice: linear in the events, with a loop over edges only."""
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
        # Per-event arrays in 32 bits and updated in place where the log allows: fresh
        # memory is what costs here (page faults are ~40 % of the CPU time at 10 M events).
        index = np.int32 if n < 2**31 else np.int64
        pos: np.ndarray = np.arange(n, dtype=index)  # position of each event in its case
        pos -= np.repeat(starts.astype(index), lengths)
        with np.errstate(over="ignore"):
            powers = np.cumprod(
                np.full(int(lengths.max()), np.uint64(0x9E3779B97F4A7C15), dtype=np.uint64)
            )
            terms = self.codes.astype(np.uint64)
            terms += np.uint64(1)
            terms *= powers[pos]
            key = np.add.reduceat(terms, starts) ^ (
                lengths.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
            )
        del terms
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        rep = first[inverse]  # per case: the first case with the same hash
        if not np.array_equal(lengths, lengths[rep]):
            return None
        same = np.repeat(starts[rep].astype(index), lengths)  # the event to compare with
        same += pos
        del pos
        if not np.array_equal(self.codes, self.codes[same]):
            return None
        del same
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
    store row groups out of order); activities come back as their stored numbers
    (``activity_no``, checked against the names) or as ENUM codes, so no event's text
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
    described = con.execute(f"DESCRIBE SELECT * FROM {events}").fetchall()
    types = {str(r[0]): str(r[1]).upper() for r in described}
    # Timestamps travel as Arrow timestamp[us] (viewed as int64, no conversion); DuckDB's
    # Arrow result costs ~25 % less CPU than fetchnumpy for these columns at 10 M events.
    ts_sql = "timestamp" if types.get("timestamp") in _MICROSECONDS else "epoch_us(timestamp)"
    stored = _stored_numbers(con, events, types)
    batch = 1_000_000  # rows per Arrow chunk (DuckDB's default)
    if stored is not None:
        names, lut, batch = stored
        code_sql = "activity_no"
    else:  # a log stored before ``activity_no``: number the names here
        con.execute(
            "CREATE OR REPLACE TYPE __activity AS ENUM "
            f"(SELECT DISTINCT activity FROM {events} WHERE activity IS NOT NULL ORDER BY 1)"
        )
        names = [
            r[0] for r in con.execute("SELECT unnest(enum_range(NULL::__activity))").fetchall()
        ]
        lut = None
        code_sql = "enum_code(CAST(activity AS __activity))"
    # With the number of events known, one Arrow chunk per column: numpy takes it as it is,
    # where several chunks would be copied into a fresh array (page faults cost here).
    table = con.execute(
        f"SELECT case_no, {ts_sql} AS ts, {code_sql} AS code FROM {events} ORDER BY seq"
    ).to_arrow_table(max(1, batch))
    case_no = _numpy(table, "case_no", np.int64)
    ts = _numpy(table, "ts", np.int64)
    codes = _numpy(table, "code", np.int32)
    del table
    if lut is not None:
        codes = lut[codes]
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


_INTEGERS = ("TINYINT", "SMALLINT", "INTEGER", "UTINYINT", "USMALLINT")
_MICROSECONDS = ("TIMESTAMP WITH TIME ZONE", "TIMESTAMP")
_COLUMN_OF = {"case_no": "case_no", "ts": "timestamp", "code": "activity"}


def _numpy(table: pa.Table, name: str, dtype: type[np.generic]) -> np.ndarray:
    """One column of DuckDB's Arrow result as a contiguous numpy array of ``dtype``."""
    column = table.column(name)
    if column.null_count:
        raise BadInput(
            f"the log has events without {_COLUMN_OF[name]}; import it with "
            "`datenlabor procedures import`",
            column=_COLUMN_OF[name],
        )
    array = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    if pa.types.is_timestamp(array.type):
        if array.type.unit != "us":
            array = array.cast(pa.timestamp("us", array.type.tz))
        array = array.view(pa.int64())
    return np.asarray(array.to_numpy(), dtype=dtype)


def _stored_numbers(
    con: duckdb.DuckDBPyConnection, events: str, types: dict[str, str]
) -> tuple[list[str], np.ndarray | None, int] | None:
    """The activity names numbered by the stored ``activity_no`` column of ``events``, a
    table mapping stored numbers to these codes where they differ (a filtered log lacks
    some activities), and the number of events; None when the column is missing or does
    not number the names.

    Checked on every read against the names (one grouping of the events by name), so a
    column of that name that means something else, or a log whose numbers were edited,
    is never trusted: the caller casts the text instead.
    """
    if types.get("activity_no") not in _INTEGERS or "activity" not in types:
        return None
    # Grouped by the name (DuckDB groups dictionary-encoded text fast: 0.07 CPU-s for 10 M
    # events, half of grouping by the number or of DISTINCT number, name).
    rows = con.execute(
        "SELECT activity, min(activity_no), max(activity_no), count(activity_no), count(*) "
        f"FROM {events} GROUP BY activity"
    ).fetchall()
    pairs = []
    events_count = 0
    for name, lo, hi, numbered, count in rows:
        # NULLs, or one name under two numbers: not our numbering.
        if name is None or lo is None or lo != hi or numbered != count or lo < 0:
            return None
        pairs.append((str(name), int(lo)))
        events_count += int(count)
    pairs.sort()
    names = [name for name, _ in pairs]
    numbers = np.array([n for _, n in pairs], dtype=np.int64)
    if np.unique(numbers).size != numbers.size:  # two names under one number
        return None
    if numbers.size and numbers.max() >= 1 << 20:
        return None
    if np.array_equal(numbers, np.arange(numbers.size)):
        return names, None, events_count
    lut = np.full(int(numbers.max()) + 1 if numbers.size else 0, -1, dtype=np.int32)
    lut[numbers] = np.arange(numbers.size, dtype=np.int32)
    return names, lut, events_count
