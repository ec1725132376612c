"""`python -m bench <name> [options]`: run the benchmark in `bench/<name>.py`."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(
        m.name
        for m in pkgutil.iter_modules([str(here)])
        if not m.name.startswith("_") and m.name not in {"common"}
    )


def main() -> None:
    names = available()
    if len(sys.argv) < 2 or sys.argv[1] not in names:
        print(f"usage: python -m bench {{{','.join(names)}}} [--quick] [options]", file=sys.stderr)
        raise SystemExit(2)
    module = importlib.import_module(f"bench.{sys.argv[1]}")
    module.main(sys.argv[2:])


if __name__ == "__main__":
    main()
