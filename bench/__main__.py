"""Benchmarks; each prints one JSON line of figures.

    python -m bench library [N ...]   # normalisation + gap detection, default 1k, 10k, 50k, 100k items
"""

import json
import sys

from bench.library import library


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "library":
        print(__doc__, file=sys.stderr)
        return 2
    sizes = [int(s) for s in argv[1:]] or [1_000, 10_000, 50_000, 100_000]
    print(json.dumps(library(sizes)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
