"""`python -m journeyman.engine.api [--host H] [--port P]`: serve the HTTP API."""

from __future__ import annotations

import argparse

from journeyman.engine.core.settings import get_settings

from .server import run

if __name__ == "__main__":
    s = get_settings()
    parser = argparse.ArgumentParser(prog="python -m journeyman.engine.api")
    parser.add_argument("--host", default=s.api_host)
    parser.add_argument("--port", type=int, default=s.api_port)
    parser.add_argument("--workers", type=int, default=1, help="API processes")
    args = parser.parse_args()
    run(args.host, args.port, workers=args.workers)
