"""okrsync benchmarks: `python -m bench` (or `make bench`) runs them all, prints a table and writes
bench/results.json and bench/results.md."""
