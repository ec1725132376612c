"""`python -m bench ingest --clients N` end to end at a tiny size: both phases run against a
real API process, and the N-client phase reports the API's own time per accepted request,
read from its `journeyman_ingest_request_seconds` histogram."""

from __future__ import annotations

import pytest

from bench.ingest import _bucket_delta, _server_quantile

from .runner import run_bench

pytestmark = pytest.mark.slow
CLIENTS_RUN = ("--clients", "4", "--duration", "2", "--members", "200")


def test_the_server_quantile_is_the_bucket_that_holds_it() -> None:
    inf = float("inf")
    before = {0.1: 5.0, 0.5: 5.0, 1.0: 5.0, inf: 5.0}
    after = {0.1: 55.0, 0.5: 103.0, 1.0: 104.0, inf: 105.0}
    delta = _bucket_delta(after, before)
    assert delta == {0.1: 50.0, 0.5: 98.0, 1.0: 99.0, inf: 100.0}
    assert _server_quantile(delta, 0.5) == 0.1
    assert _server_quantile(delta, 0.98) == 0.5
    assert _server_quantile(delta, 0.99) == 1.0
    assert _server_quantile(delta, 1.0) == inf
    assert _server_quantile({inf: 0.0}, 0.99) is None


def test_clients_bench_reports_client_and_server_latency() -> None:
    run, result = run_bench("ingest", *CLIENTS_RUN, timeout=300)
    assert result["bench"] == "ingest-clients" and result["clients"] == 4
    assert result["value"] > 0 and result["limit"] > 0
    assert result["server_p99_le_s"] is not None and result["server_p99_le_s"] > 0
    assert "the API's own time per accepted request" in run.stdout
