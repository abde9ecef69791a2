"""Time to page and false pages of the windowed alerts, on simulated days run through promtool. Prints tables.

    .venv/bin/python bench/live_eval.py                     # every incident at ETL cadences 1, 5, 15 min
    .venv/bin/python bench/live_eval.py --cadences 5 --clean-days 30

Each incident starts at a set time of a weekday, after enough simulated history for the alerts'
longest windows (a week for the traffic comparison), and is watched for some hours: the table
gives the minutes from its start to the first page (critical) and the first ticket (warning),
"-" when none came within the watch. The clean run simulates days with no incident (weekends and
midnights included, after a week of lead-in) and counts every page and ticket that fired in them.
The simulation is bench/livesim.py. An evaluation, not a test: it fails on nothing.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import livesim  # the bench's own module, beside this file
from livesim import DAY, Incident

HOUR = 60
# name, incident (start within its day, minutes, size), days of history before it, hours watched
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


def incident_run(args: tuple[str, tuple, int, int, int, int, str]) -> tuple[str, int, dict]:
    name, (kind, at, minutes, size, component), history, watch_hours, cadence, seed, promtool = args
    start = history * DAY + at
    days = history + 1 + (at + watch_hours * HOUR) // DAY
    # Incidents fall on a Tuesday (the simulation's day 0 is a Monday, and history precedes it).
    weekday = (1 - history) % 7
    served = livesim.simulate(days, cadence, [Incident(kind, start, minutes, size, component)],
                              livesim.Shape(seed=seed), start_weekday=weekday)
    firing = livesim.run(served, range(start, start + watch_hours * HOUR + 1), promtool)
    return name, cadence, {key: minutes[0] - start for key, minutes in firing.items()}


def clean_run(args: tuple[int, int, int, str]) -> tuple[int, int, dict]:
    days, cadence, seed, promtool = args
    lead = 7
    served = livesim.simulate(lead + days, cadence, [], livesim.Shape(seed=seed), start_weekday=0)
    firing = livesim.run(served, range(lead * DAY, (lead + days) * DAY), promtool)
    return cadence, days, {key: livesim.episodes(minutes) for key, minutes in firing.items()}


def _first(result: dict, severity: str) -> str:
    times = [(minute, name) for (name, sev), minute in result.items() if sev == severity]
    if not times:
        return "-"
    minute, name = min(times)
    return f"{minute} ({name.removeprefix('Rag')})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cadences", default="1,5,15", help="ETL cadences in minutes (default 1,5,15)")
    parser.add_argument("--clean-days", type=int, default=30, help="clean days at each cadence (default 30)")
    parser.add_argument("--only", default="", help="run only scenarios whose name contains this")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    promtool = shutil.which("promtool")
    if promtool is None:
        sys.exit("promtool not found: ./scripts/setup installs it")
    cadences = [int(c) for c in args.cadences.split(",")]
    began = time.monotonic()
    jobs = [(name, incident, history, watch, cadence, args.seed + i, promtool)
            for i, (name, incident, history, watch) in enumerate(SCENARIOS) if args.only in name
            for cadence in cadences]
    clean_jobs = [(args.clean_days, cadence, args.seed + 100, promtool) for cadence in cadences] \
        if args.clean_days else []
    with ProcessPoolExecutor(args.workers) as pool:
        clean = pool.map(clean_run, clean_jobs)
        results = {(name, cadence): result for name, cadence, result in pool.map(incident_run, jobs)}
        clean = list(clean)
    print("Minutes from the incident's start to the first page (critical) / first ticket (warning):\n")
    print("| incident (UTC, a Tuesday) | " + " | ".join(f"ETL every {c} min: page / ticket" for c in cadences) + " |")
    print("|---|" + "---|" * len(cadences))
    for name, (_, at, *_), _, watch in SCENARIOS:
        if args.only not in name:
            continue
        cells = [f"{_first(results[name, c], 'critical')} / {_first(results[name, c], 'warning')}" for c in cadences]
        print(f"| {name}, from {at // HOUR:02d}:00, watched {watch} h | " + " | ".join(cells) + " |")
    if clean:
        print("\nAlerts that fired on clean simulated days (no incident), by cadence:\n")
        print("| ETL cadence | days | pages | tickets | which |")
        print("|---|---|---|---|---|")
        for cadence, days, counts in clean:
            pages = sum(n for (_, sev), n in counts.items() if sev == "critical")
            tickets = sum(n for (_, sev), n in counts.items() if sev == "warning")
            which = ", ".join(f"{name} {sev} x{n}" for (name, sev), n in sorted(counts.items())) or "none"
            print(f"| {cadence} min | {days} | {pages} | {tickets} | {which} |")
    print(f"\n({time.monotonic() - began:.0f} s, seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
