"""Run every benchmark; see bench/ingest.py for what is measured and how."""

from __future__ import annotations

import argparse
import json
import platform
from datetime import UTC, datetime
from pathlib import Path

from bench import ingest

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--activities", type=int, default=100_000, help="activities in the ingest benchmark")
    parser.add_argument(
        "--memory-steps", default="25000,50000,100000", help="activity counts for the peak-memory series"
    )
    args = parser.parse_args()

    results = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.python_implementation()} {platform.python_version()}",
        "ingest": ingest.run(activities=args.activities, memory_steps=[int(s) for s in args.memory_steps.split(",")]),
    }
    (HERE / "results.json").write_text(json.dumps(results, indent=2))
    table = ingest.table(results["ingest"])
    (HERE / "results.md").write_text(f"# okrsync benchmarks ({results['when']}, {results['machine']})\n\n{table}\n")
    print(table)
    print(f"\nwritten: {HERE / 'results.json'}, {HERE / 'results.md'}")


if __name__ == "__main__":
    main()
