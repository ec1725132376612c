"""The dashboard in a real browser: headless Chromium loads the pages over HTTP, the DOM it
builds is checked against the seeded numbers, and a screenshot is kept in test-artifacts/."""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from .conftest import CONVERTED, HOLDOUT, TREATMENT

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).exists()


async def chromium(*args: str, timeout: float = 60) -> str:
    if not HAVE_CHROMIUM:
        pytest.fail("chromium is not installed: `make test` installs it (apt-get install chromium)")
    profile = tempfile.mkdtemp(prefix="journeyman-chromium-")
    try:
        proc = await asyncio.create_subprocess_exec(
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
        return out.decode()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


async def test_journey_page_renders_funnel_and_lift_in_chromium(local_dash, artifacts_dir) -> None:
    url = f"{local_dash.url}/dashboard/journeys/cart_recovery"
    dom = await chromium("--dump-dom", url)
    # the funnel chart: one treatment and one holdout bar per stage
    assert len(re.findall(r'<rect class="bar treatment"', dom)) == 5
    assert len(re.findall(r'<rect class="bar holdout"', dom)) == 5
    assert f"treatment ({TREATMENT} entries)" in dom and f"holdout ({HOLDOUT} entries" in dom
    assert f">{CONVERTED} (30.0%)<" in dom  # treatment converted bar label
    lift = re.search(r'<b id="lift"[^>]*>([^<]+)</b>', dom)
    assert lift and lift.group(1).strip() == "+20.0 pp"
    assert re.search(r'id="lift-interval">[^<]*pp to [^<]*pp<', dom)
    assert '<svg class="interval"' in dom

    shot = artifacts_dir / "dashboard-journey.png"
    shot.unlink(missing_ok=True)
    await chromium(f"--screenshot={shot}", "--window-size=1100,1250", url)
    assert shot.exists() and shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_journeys_list_and_member_lookup_in_chromium(local_dash, artifacts_dir) -> None:
    dom = await chromium("--dump-dom", f"{local_dash.url}/dashboard")
    row = re.search(r'data-journey="cart_recovery">(.*?)</tr>', dom, re.S)
    assert row, "cart_recovery row missing"
    assert f'<td class="num entered">{TREATMENT + HOLDOUT}</td>' in row.group(1)
    assert "+20.0 pp" in row.group(1)

    member = await chromium("--dump-dom", f"{local_dash.url}/dashboard/members?id=m000")
    assert member.count("<tr>") >= 6  # header + five trace rows
    assert "converted in cart_recovery" in member

    await chromium(
        f"--screenshot={artifacts_dir / 'dashboard-journeys.png'}",
        "--window-size=1100,700",
        f"{local_dash.url}/dashboard",
    )


async def test_browser_without_a_key_is_sent_to_sign_in(dash) -> None:
    dom = await chromium("--dump-dom", f"{dash.url}/dashboard/journeys/cart_recovery")
    assert "Dashboard sign-in" in dom
    assert "cart_recovery" not in dom.split("<main>")[1].split('name="next"')[0]
