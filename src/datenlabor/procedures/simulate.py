"""Simulated event logs of a benefit procedure, for demos and benchmarks.

Everything is drawn with numpy in whole arrays (no Python loop over cases or events), so ten
million events take seconds. The output already has the canonical columns of an imported
log (``seq, case_no, case_id, activity, timestamp, resource, lifecycle, activity_no``) plus
the case attributes ``region`` (a real Kreis key), ``land``, ``channel`` and ``case_type``,
sorted by case and time. The same seed gives the same log.

The model (all parameters in :class:`Simulation`):

- **Arrivals**: cases arrive on calendar days from ``start``; a day's expected number is
  ``arrivals_per_day`` × the weekday weight × a yearly seasonal factor
  ``1 + seasonal_amplitude · cos(2π (month - peak_month) / 12)``. Received online they
  arrive at any hour, otherwise within office hours (7-17 h local time).
- **Steps**: in order; each happens with probability ``p`` (steps sharing a ``choice`` name
  are alternatives: exactly one of them happens, chosen by their ``p``). A step that happens
  is repeated (rework) with probability ``rework`` each time. The time before a step is
  log-normal with median ``median_hours`` and shape ``sigma``, multiplied by the case's
  channel, case-type and region factors.
- **Resources**: each step is done by one of ``resources`` clerks of its ``team``.
- **Regions**: Kreis keys from the official key list (``datenlabor/data/ags_keys.csv``),
  optionally only those of some Länder; each region gets a lasting speed factor
  (log-normal, ``region_sigma``) so regions differ.
- **Deadline**: ``deadline`` (e.g. ``"3 months"``) is the statutory period from the first
  to the last step (receipt to notice sent); :meth:`Simulation.deadline_rule` gives the rule for
  :func:`~datenlabor.procedures.deadline.check_deadline`.
- **Observation**: with ``observe_until`` set, later events are cut off, leaving open cases.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from datenlabor.errors import BadInput
from datenlabor.pool import ags
from datenlabor.query.connection import quote_literal


@dataclass(frozen=True)
class Step:
    activity: str
    median_hours: float  # median time from the previous event to this one
    p: float = 1.0
    sigma: float = 1.0
    rework: float = 0.0
    team: str = "Sachbearbeitung"
    resources: int = 10
    choice: str | None = None


DEFAULT_STEPS: tuple[Step, ...] = (
    Step("Antrag eingegangen", 0.0, team="Poststelle", resources=4),
    Step("Eingang bestätigt", 20, sigma=0.8, team="Poststelle", resources=4),
    Step("Vollständigkeit geprüft", 60, sigma=1.0),
    Step("Unterlagen nachgefordert", 24, p=0.35, sigma=0.7, rework=0.25),
    Step("Unterlagen eingegangen", 240, p=0.35, sigma=0.6, choice=None),
    Step("Sachbearbeitung", 150, sigma=1.1, rework=0.08),
    Step("Bescheid bewilligt", 72, p=0.78, sigma=0.8, choice="Entscheidung", team="Bescheid"),
    Step("Bescheid abgelehnt", 96, p=0.22, sigma=0.8, choice="Entscheidung", team="Bescheid"),
    Step("Bescheid versandt", 18, sigma=0.6, team="Poststelle", resources=4),
)
DECISIONS = ("Bescheid bewilligt", "Bescheid abgelehnt")


@dataclass
class Simulation:
    """Parameters of a simulated procedure log; see the module documentation."""

    cases: int = 10_000
    seed: int = 0
    start: date = date(2024, 1, 1)
    arrivals_per_day: float = 400.0
    weekday_weights: tuple[float, ...] = (1.3, 1.15, 1.0, 1.05, 0.85, 0.1, 0.03)
    seasonal_amplitude: float = 0.2
    peak_month: int = 3
    steps: tuple[Step, ...] = DEFAULT_STEPS
    channels: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {"online": (0.55, 0.8), "Post": (0.35, 1.2), "vor Ort": (0.10, 1.0)}
    )  # name -> (probability, duration factor)
    case_types: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {
            "Erstantrag": (0.55, 1.3),
            "Weiterbewilligung": (0.35, 0.7),
            "Änderung": (0.10, 0.9),
        }
    )
    laender: tuple[str, ...] | None = None  # e.g. ("05", "09"); None = all of Germany
    region_sigma: float = 0.3
    deadline: str = "3 months"
    observe_until: date | None = None
    timezone: str = "Europe/Berlin"

    def check(self) -> None:
        if self.cases < 1:
            raise BadInput("at least one case must be simulated", column="cases")
        if self.arrivals_per_day <= 0:
            raise BadInput("arrivals per day must be positive", column="arrivals_per_day")
        if len(self.weekday_weights) != 7 or min(self.weekday_weights) < 0:
            raise BadInput("seven non-negative weekday weights (Mon..Sun) needed")
        if not self.steps:
            raise BadInput("at least one step needed", column="steps")
        for s in self.steps:
            if not (0 <= s.p <= 1 and 0 <= s.rework < 1 and s.median_hours >= 0):
                raise BadInput(f"step {s.activity!r}: p in [0,1], rework in [0,1), hours >= 0")
        for name, table in (("channels", self.channels), ("case_types", self.case_types)):
            if not table or abs(sum(p for p, _ in table.values()) - 1) > 1e-6:
                raise BadInput(f"{name}: probabilities must add up to 1", column=name)

    def deadline_rule(self) -> str:
        """The statutory deadline as a rule: from the first to the last step."""
        return f"{self.steps[0].activity} -> {self.steps[-1].activity} within {self.deadline}"


def _regions(laender: tuple[str, ...] | None) -> np.ndarray:
    keys = ags.key_table()
    mask = np.asarray(keys.column("level").to_pylist()) == "kreis"
    kreise = np.asarray(keys.column("key").to_pylist())[mask]
    if laender:
        kreise = kreise[np.isin(kreise.astype("U2"), list(laender))]  # "U2": the Land prefix
    if kreise.size == 0:
        raise BadInput(f"no Kreis keys for Länder {laender}", column="laender")
    return kreise


def _categorical(
    rng: np.random.Generator, table: dict[str, tuple[float, float]], n: int
) -> tuple[list[str], np.ndarray, np.ndarray]:
    names = list(table)
    probs = np.array([table[k][0] for k in names])
    factors = np.array([table[k][1] for k in names])
    idx = rng.choice(len(names), size=n, p=probs / probs.sum())
    return names, idx, factors[idx]


def simulate(sim: Simulation) -> pa.Table:
    """Draw the log described by ``sim`` as an Arrow table (canonical columns, sorted)."""
    sim.check()
    rng = np.random.default_rng(sim.seed)
    n, steps = sim.cases, sim.steps

    # Arrival days: weighted by weekday and season over as many days as the volume needs.
    ww = np.asarray(sim.weekday_weights, dtype=float)
    days = max(1, int(np.ceil(n / (sim.arrivals_per_day * ww.mean()))))
    calendar = np.datetime64(sim.start, "D") + np.arange(days)
    weekday = (calendar.astype("int64") + 3) % 7  # 1970-01-01 was a Thursday
    month = calendar.astype("datetime64[M]").astype("int64") % 12 + 1
    season = 1 + sim.seasonal_amplitude * np.cos(2 * np.pi * (month - sim.peak_month) / 12)
    weight = ww[weekday] * season
    if weight.sum() <= 0:
        raise BadInput("the weekday weights allow no arrivals", column="weekday_weights")
    day = np.sort(rng.choice(days, size=n, p=weight / weight.sum()))

    channel_names, channel, ch_factor = _categorical(rng, sim.channels, n)
    type_names, ctype, type_factor = _categorical(rng, sim.case_types, n)
    kreise = _regions(sim.laender)
    region = rng.integers(0, kreise.size, size=n)
    region_speed = rng.lognormal(0.0, sim.region_sigma, size=kreise.size)
    factor = ch_factor * type_factor * region_speed[region]

    online = np.asarray(channel_names)[channel] == "online"
    second = np.where(
        online, rng.integers(0, 86_400, size=n), rng.integers(7 * 3600, 17 * 3600, size=n)
    )
    # Local wall-clock arrival -> UTC instants (offset of each arrival's own day).
    tz = ZoneInfo(sim.timezone)
    offsets = np.array(
        [
            int(datetime.combine(d.astype(object), datetime.min.time(), tz).utcoffset().total_seconds())  # type: ignore[union-attr]
            for d in calendar
        ]
    )  # one per calendar day, not per case
    local_midnight = calendar.astype("datetime64[s]").astype("int64")
    arrival = local_midnight[day] - offsets[day] + second
    order = np.argsort(arrival, kind="stable")
    arrival, channel, ctype, region, factor = (
        arrival[order], channel[order], ctype[order], region[order], factor[order],
    )  # fmt: skip

    # How often each step runs in each case (N x S): inclusion x (1 + rework repetitions).
    s_count = len(steps)
    included = np.ones((n, s_count), dtype=bool)
    for j, s in enumerate(steps):
        if s.choice is None and s.p < 1:
            included[:, j] = rng.random(n) < s.p
    # Steps depending on an optional one (nachgefordert -> eingegangen) share its draw when
    # they have the same probability and follow it directly.
    for j in range(1, s_count):
        a, b = steps[j - 1], steps[j]
        if a.choice is None and b.choice is None and a.p == b.p < 1:
            included[:, j] = included[:, j - 1]
    for group in {s.choice for s in steps if s.choice}:
        members = [j for j, s in enumerate(steps) if s.choice == group]
        probs = np.array([steps[j].p for j in members])
        pick = rng.choice(len(members), size=n, p=probs / probs.sum())
        for k, j in enumerate(members):
            included[:, j] = pick == k
    reps = np.ones((n, s_count), dtype=np.int64)
    for j, s in enumerate(steps):
        if s.rework > 0:
            reps[:, j] = rng.geometric(1 - s.rework, size=n)
    counts = (included * reps).ravel()
    per_case = counts.reshape(n, s_count).sum(axis=1)
    if (per_case == 0).any():  # every case has at least its first event
        counts.reshape(n, s_count)[per_case == 0, 0] = 1
        per_case = counts.reshape(n, s_count).sum(axis=1)

    step_idx = np.repeat(np.tile(np.arange(s_count), n), counts)
    case_idx = np.repeat(np.arange(n), per_case)
    events = step_idx.size
    median_s = np.array([s.median_hours * 3600 for s in steps])[step_idx]
    sigma = np.array([s.sigma for s in steps])[step_idx]
    wait = np.exp(rng.standard_normal(events) * sigma) * median_s * factor[case_idx]
    first = np.zeros(events, dtype=bool)
    starts = np.concatenate(([0], np.cumsum(per_case)[:-1]))
    first[starts] = True
    wait = np.where(first, 0.0, np.maximum(wait, 1.0)).astype(np.int64)
    total = np.cumsum(wait)
    since_start = total - total[starts][case_idx]
    ts = arrival[case_idx] + since_start

    # Clerks belong to teams; a team's size is the largest ``resources`` of its steps.
    teams = list(dict.fromkeys(s.team for s in steps))
    size = {t: max(s.resources for s in steps if s.team == t) for t in teams}
    team_offset = np.cumsum([0] + [size[t] for t in teams])[:-1]
    step_team = np.array([teams.index(s.team) for s in steps])
    step_size = np.array([size[s.team] for s in steps])
    resource = team_offset[step_team][step_idx] + (
        rng.random(events) * step_size[step_idx]
    ).astype(np.int64)
    res_names = [f"{t} {i + 1:02d}" for t in teams for i in range(size[t])]

    keep = np.ones(events, dtype=bool)
    if sim.observe_until is not None:
        limit = datetime.combine(sim.observe_until, datetime.min.time(), tz).timestamp()
        keep = ts < limit
        if not keep.any():
            raise BadInput("no event falls before observe_until", column="observe_until")
    width = max(8, len(str(n)))
    case_ids = pa.array([f"V{i:0{width}d}" for i in range(1, n + 1)], pa.string())
    cidx = pa.array(case_idx[keep])
    laender = sorted(set(kreise.astype("U2")))
    land_of = np.searchsorted(laender, kreise.astype("U2"))
    columns = {
        "seq": pa.array(np.arange(int(keep.sum()), dtype=np.int64)),
        "case_no": pa.array(case_idx[keep].astype(np.int64)),
        "case_id": case_ids.take(cidx),
        "activity": _dict(step_idx[keep], [s.activity for s in steps]),
        "timestamp": pa.array(ts[keep] * 1_000_000, pa.timestamp("us", tz="UTC")),
        "resource": _dict(resource[keep], res_names),
        "lifecycle": _dict(np.zeros(int(keep.sum()), dtype=np.int64), ["complete"]),
        "activity_no": pa.array(_activity_numbers(step_idx[keep], steps)),
        "region": _dict(region[case_idx[keep]], list(kreise)),
        "land": _dict(land_of[region][case_idx[keep]], laender),
        "channel": _dict(channel[case_idx[keep]], channel_names),
        "case_type": _dict(ctype[case_idx[keep]], type_names),
    }
    return pa.table(columns)


def _activity_numbers(step_idx: np.ndarray, steps: tuple[Step, ...]) -> np.ndarray:
    """``activity_no`` per event: the rank of its activity among the activity names that
    occur, in code point order (as the import numbers them; steps may share a name)."""
    occurs = np.bincount(step_idx, minlength=len(steps)) > 0
    names = sorted({s.activity for s, o in zip(steps, occurs, strict=True) if o})
    rank = {name: i for i, name in enumerate(names)}
    per_step = np.array([rank.get(s.activity, -1) for s in steps], dtype=np.int32)
    return per_step[step_idx]


def _dict(indices: np.ndarray, names: list[str]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(indices.astype(np.int32)), pa.array(names))


def write_log(table: pa.Table, path: str | Path, fmt: str | None = None) -> Path:
    """Write a simulated log as Parquet (zstd) or CSV (UTF-8, ``,``, ISO timestamps)."""
    target = Path(path)
    kind = fmt or ("csv" if target.suffix.lower() == ".csv" else "parquet")
    partial = target.with_name(f".{target.name}.partial")
    try:
        if kind == "parquet":
            pq.write_table(table, partial, compression="zstd", row_group_size=1 << 20)
        elif kind == "csv":
            import duckdb

            con = duckdb.connect()
            try:
                con.register("simulated", table)
                con.execute(
                    "COPY (SELECT * FROM simulated) TO "
                    f"{quote_literal(str(partial))} (FORMAT csv, HEADER true)"
                )
            finally:
                con.close()
        else:
            raise BadInput(f"unknown output format {kind!r}; choose parquet or csv")
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target
