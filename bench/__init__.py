"""Benchmarks. Each prints its figure beside a limit measured in the same run, and ends with
one JSON line: {"bench": ..., "value": ..., "unit": ..., "limit": ..., "ratio": ...}.

Run one with `python -m bench <name> [--quick]`; each bench is the module `bench/<name>.py`
with a `main(argv: list[str]) -> None`.
"""
