"""Run the benchmarks: `python -m bench` runs all,
`python -m bench ingest|compute|writeback|webhooks|dashboard|workers|sync-calls|business-hours` one.

See bench/ingest.py, bench/compute.py, bench/writeback.py and bench/sync_calls.py for what is measured and how.
Results are merged into bench/results.json (a benchmark not run keeps its last figures) and bench/results.md is
rewritten from it.
"""

from __future__ import annotations

import argparse
import json
import platform
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import business_hours, compute, dashboard, ingest, sync_calls, webhooks, workers, writeback

HERE = Path(__file__).parent
BENCHMARKS = ("ingest", "compute", "writeback", "webhooks", "dashboard", "workers", "sync-calls", "business-hours")
MODULES: tuple[tuple[str, Any], ...] = (
    ("ingest", ingest),
    ("compute", compute),
    ("writeback", writeback),
    ("webhooks", webhooks),
    ("dashboard", dashboard),
    ("workers", workers),
    ("sync-calls", sync_calls),
    ("business-hours", business_hours),
)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("benchmark", nargs="?", choices=[*BENCHMARKS, "all"], default="all", help="which to run")
    parser.add_argument(
        "--activities", type=int, default=None, help="activities (default: 100,000 for ingest, 1,000,000 for compute)"
    )
    parser.add_argument(
        "--memory-steps", default="25000,50000,100000", help="ingest: activity counts for the peak-memory series"
    )
    parser.add_argument("--crms", default="salesforce,hubspot", help="ingest: which CRMs (salesforce, hubspot)")
    parser.add_argument("--opportunities", type=int, default=100_000, help="compute: opportunities")
    parser.add_argument("--accounts", type=int, default=None, help="compute: accounts (default: opportunities / 5)")
    parser.add_argument(
        "--verify", action="store_true", help="compute: after the incremental runs, a full one must give the same"
    )
    parser.add_argument(
        "--contact-match",
        action="store_true",
        help="compute: include a response-time KR matched by contact (unanalyzed: minutes at 20,000 activities)",
    )
    parser.add_argument(
        "--no-analyze",
        action="store_true",
        help="compute: skip the ANALYZE a sync runs after writing 5,000+ rows (plans without statistics)",
    )
    parser.add_argument(
        "--databases",
        default="sqlite,postgresql",
        help="compute, ingest, dashboard: which databases (sqlite, postgresql or both)",
    )
    parser.add_argument(
        "--changes",
        type=int,
        default=20,
        help="compute: changed activities and opportunities, each computed incrementally",
    )
    parser.add_argument(
        "--no-floors", action="store_true", help="compute: skip the floor queries over a narrow copy of the activities"
    )
    parser.add_argument("--records", type=int, default=10_000, help="writeback: changed records to write")
    parser.add_argument(
        "--latency", type=float, default=0.1, help="writeback, webhooks, workers: seconds of latency per CRM call"
    )
    parser.add_argument("--samples", type=int, default=15, help="webhooks: meetings timed from webhook to CRM")
    parser.add_argument(
        "--webhook-activities",
        default="3000",
        help="webhooks: portal sizes in activities, comma-separated (opportunities and accounts scale with them)",
    )
    parser.add_argument("--rounds", type=int, default=5, help="dashboard: requests per page (after a warm-up)")
    parser.add_argument("--workers", default="1,2,4", help="workers: worker counts to measure")
    parser.add_argument("--deals", type=int, default=10_500, help="sync-calls: HubSpot deals in the bulk update")
    args = parser.parse_args()
    selected = BENCHMARKS if args.benchmark == "all" else (args.benchmark,)

    path = HERE / "results.json"
    results: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    results.update(
        when=datetime.now(UTC).isoformat(timespec="seconds"),
        machine=f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}",
    )
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "ingest": lambda: ingest.run(
            activities=args.activities or 100_000,
            memory_steps=[int(s) for s in args.memory_steps.split(",") if s.strip()],
            crms=tuple(name.strip() for name in args.crms.split(",")),
            databases=tuple(name.strip() for name in args.databases.split(",")),
        ),
        "compute": lambda: compute.run(
            activities=args.activities or 1_000_000,
            opportunities=args.opportunities,
            accounts=args.accounts,
            verify=args.verify,
            contact_match=args.contact_match,
            analyze=not args.no_analyze,
            databases=tuple(name.strip() for name in args.databases.split(",")),
            changes=args.changes,
            floors=not args.no_floors,
        ),
        "writeback": lambda: writeback.run(records=args.records, latency=args.latency),
        "webhooks": lambda: webhooks.run(
            samples=args.samples,
            latency=args.latency,
            sizes=tuple(int(n) for n in args.webhook_activities.split(",")),
        ),
        "dashboard": lambda: dashboard.run(
            rounds=args.rounds, databases=tuple(name.strip() for name in args.databases.split(","))
        ),
        "workers": lambda: workers.run(counts=tuple(int(n) for n in args.workers.split(",")), latency=args.latency),
        "sync-calls": lambda: sync_calls.run(deals=args.deals),
        "business-hours": lambda: business_hours.run(
            activities=args.activities or 1_000_000,
            opportunities=args.opportunities,
            accounts=args.accounts,
            rounds=args.rounds,
        ),
    }
    for name in selected:
        results[name] = runners[name]()
        # written after each benchmark: a failure in a later one (or Ctrl-C) keeps the figures already measured
        _write(path, results)
    for name, module in MODULES:
        if name in selected:
            print(module.table(results[name]))
    print(f"\nwritten: {path}, {HERE / 'results.md'}")


def _write(path: Path, results: dict[str, Any]) -> None:
    path.write_text(json.dumps(results, indent=2))
    tables = [m.table(results[name]) for name, m in MODULES if name in results]
    (HERE / "results.md").write_text(
        f"# okrsync benchmarks ({results['when']}, {results['machine']})\n\n" + "\n\n".join(tables) + "\n"
    )


if __name__ == "__main__":
    main()
