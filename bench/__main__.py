"""Benchmarks; each prints one JSON line of figures.

    python -m bench library [N ...]   # normalisation + gap detection, default 1k, 10k, 50k, 100k items
    python -m bench enrichment        # provider throughput vs a sequential baseline; METADATA_NEW at 50k
    python -m bench completeness      # precision/recall of missing_books on a world with a known answer
    python -m bench accuracy          # missing_books on the hand-written corpus (bench/corpus) against its truth
    python -m bench acquisition       # release scoring of 10,000 rows; send planning over 20,000 missing books
    python -m bench unreachable [N]   # enrichment of N books (default 5,000) with every provider unreachable
    python -m bench faults [--only MODULE[.CASE],...] [--timeout S] [--jobs N]
                                      # the fault matrix: every case of bench/fault_cases, each in its own
                                      # subprocess with a time limit (default 300 s), 3 at a time; progress on stderr
"""

import json
import sys

from bench.accuracy import accuracy
from bench.acquisition import acquisition
from bench.completeness import completeness
from bench.enrichment import enrichment
from bench.faults import DEFAULT_JOBS, DEFAULT_TIMEOUT_S, faults
from bench.library import library
from bench.unreachable import unreachable


def main(argv: list[str]) -> int:
    if argv[:1] == ["library"]:
        sizes = [int(s) for s in argv[1:]] or [1_000, 10_000, 50_000, 100_000]
        print(json.dumps(library(sizes)))
        return 0
    if argv[:1] == ["completeness"]:
        print(json.dumps(completeness()))
        return 0
    if argv[:1] == ["accuracy"]:
        print(json.dumps(accuracy()))
        return 0
    if argv[:1] == ["acquisition"]:
        print(json.dumps(acquisition()))
        return 0
    if argv[:1] == ["enrichment"]:
        print(json.dumps(enrichment()))
        return 0
    if argv[:1] == ["unreachable"]:
        print(json.dumps(unreachable(*[int(n) for n in argv[1:2]])))
        return 0
    if argv[:1] == ["faults"]:
        import argparse

        parser = argparse.ArgumentParser(prog="python -m bench faults")
        parser.add_argument("--only", default="", help="modules or module.case, comma-separated")
        parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per case")
        parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help="cases at a time")
        args = parser.parse_args(argv[1:])
        only = args.only.split(",") if args.only else None
        print(json.dumps(faults(only=only, timeout_s=args.timeout, jobs=args.jobs)))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
