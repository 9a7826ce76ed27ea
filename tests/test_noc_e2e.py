"""The NOC page end to end: real broker, real worker, headless Chromium driven by Playwright.

A simulated autodialer campaign is suspended; the page lists the suspension with its
evidence and counts it among its figures; the customer's view shows the suspension, the
day's traffic per minute with the suspension marked, and the CDRs behind it; an operator
types a name and clicks *Clear*; the worker emits the reactivation naming the suspension,
and the page shows it among the recent events, which the filter narrows. Screenshots of
both views are written to the test's ``tmp_path`` (``noc.png``, ``noc-customer.png``).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from kafka_fixtures import REPO, WorkerProcess, free_port, read_topics, run_cli, unique_names

from tollguard import simulate

pytestmark = [pytest.mark.kafka, pytest.mark.browser]

#: Debian's chromium package; Playwright never downloads a browser here.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: Flags for a closed network (no background connections) and running as root in CI.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


def expect(locator):
    """Playwright's web-first assertion (retries until it holds or times out)."""
    return pytest.importorskip("playwright.sync_api").expect(locator)


@pytest.fixture
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


#: The campaign's customer and suspended CLI in the autodialer scenario (3 customers, seed 2).
CAMPAIGN, CLI = "cust-001", "+390519290901"
#: CDRs of the scenario, and those of the campaign's customer (tests/test_noc_view.py counts them).
CDRS, CAMPAIGN_CDRS = 2104, 1137
#: Minutes from the customer's first to its last minute with traffic: the points of its chart.
CAMPAIGN_MINUTES = 1338


def test_clearing_a_suspension_on_the_page_emits_the_reactivation(kafka_bootstrap, browser, tmp_path):
    prefix, app_id = unique_names("noc")
    port = free_port()
    # the default rules, with every call of the day held, so the evidence opens on the CDRs themselves
    rules = tmp_path / "rules.yaml"
    default = (REPO / "rules" / "default.yaml").read_text(encoding="utf-8")
    assert "    recent_calls: 200  #" in default
    rules.write_text(default.replace("    recent_calls: 200  #", "    recent_calls: 2000  #"), encoding="utf-8")
    worker = WorkerProcess(
        kafka_bootstrap, prefix, app_id, tmp_path, extra_args=("--web-port", str(port), "--rules", str(rules))
    ).start()
    try:
        day = tmp_path / "campaign.jsonl"
        simulate.write(simulate.run_scenario("autodialer", customers=3, seed=2).records(), "jsonl", day)
        run_cli(["produce", str(day), "--topic", f"{prefix}cdrs", "--flush", "-q"], kafka_bootstrap)

        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"http://127.0.0.1:{port}/noc/")
        # step 1: the suspension, with its evidence, counted in the figures once every CDR is processed
        row = page.locator("#suspensions tbody tr", has_text="autodialer")
        row.wait_for(timeout=90_000)
        assert f"cli:{CLI}" in row.inner_text() and re.search(r"placed \d+ call attempts", row.inner_text())
        page.locator("#fig-processed", has_text=f"{CDRS} processed").wait_for(timeout=90_000)
        expect(page.locator("#fig-suspensions")).to_have_text("1")
        expect(page.locator("#fig-customers")).to_have_text("3")
        assert re.fullmatch(r"\d+", page.inner_text("#fig-lag")), page.inner_text("#figures")
        print("consumer lag, every CDR processed:", page.inner_text("#fig-lag"), page.inner_text("#fig-lag-topics"))
        suspension_id = row.locator("button[data-kind=cleared]").get_attribute("data-id")

        # step 2: the customer's view, opened from its link
        row.get_by_role("link", name=CAMPAIGN).click()
        page.wait_for_url(f"**/noc/?customer={CAMPAIGN}")
        page.locator("#c-chart-note", has_text=f"{CAMPAIGN_MINUTES} minute(s)").wait_for(timeout=60_000)
        (c_row,) = page.locator("#c-suspensions tbody tr").all()
        assert [c_row.locator("td").nth(i).inner_text() for i in (1, 2, 3)] == [CAMPAIGN, "autodialer", f"cli:{CLI}"]
        assert c_row.locator("button[data-kind=cleared]").get_attribute("data-id") == suspension_id
        points = page.locator("#chart polyline#attempts").get_attribute("points") or ""
        assert len(points.split()) == CAMPAIGN_MINUTES
        assert len((page.locator("#chart polyline#answered").get_attribute("points") or "").split()) == CAMPAIGN_MINUTES
        markers = page.locator("#chart line.marker")
        assert markers.count() == 1 and markers.get_attribute("class") == "marker suspension"
        assert markers.get_attribute("data-event") == suspension_id
        assert page.locator("#chart line.marker title").text_content() == (
            "2025-03-11T10:01:12Z suspension autodialer")
        assert page.inner_text("#c-cost-day") == "EUR 0.00" and page.inner_text("#c-suspension-count") == "1"
        assert f"{CAMPAIGN_CDRS} recent call(s) held" in page.inner_text("#c-asof")
        # the CDRs behind the suspension: the ten sample call ids of its evidence, each a call of the CLI
        page.locator("#c-events tbody tr", has_text="suspension").locator("button[data-cdrs]").click()
        page.locator("#c-cdrs-note", has_text="10 sample call id(s)").wait_for(timeout=10_000)
        cdr_rows = [[td.inner_text() for td in r.locator("td").all()] for r in page.locator("#c-cdrs tbody tr").all()]
        assert len(cdr_rows) == 10
        assert {(r[1], r[2], r[3]) for r in cdr_rows} == {("recent", "outbound", CLI)}
        assert all(r[0].startswith("sim-2-") and r[6].startswith("2025-03-11T10:0") for r in cdr_rows)
        page.screenshot(path=str(tmp_path / "noc-customer.png"), full_page=True)

        page.goto(f"http://127.0.0.1:{port}/noc/")
        row = page.locator("#suspensions tbody tr", has_text="autodialer")
        row.wait_for(timeout=10_000)
        clear = row.locator("button[data-kind=cleared]")
        # step 3: the verdict, signed
        clear.click()
        page.locator("#status", has_text="Enter your name first").wait_for(timeout=5_000)
        page.fill("#who", "noc-anna")
        clear.click()
        page.locator("#status", has_text=f'Verdict "cleared" sent for {suspension_id}').wait_for(timeout=10_000)
        # step 4: the reactivation on the page, and no active suspension left
        page.locator("#events tbody tr", has_text="reactivation").wait_for(timeout=60_000)
        page.locator("#suspensions tbody", has_text="none").wait_for(timeout=10_000)
        expect(page.locator("#fig-suspensions")).to_have_text("0", timeout=10_000)
        # step 5: the filter: by type, by detector, by customer
        events = page.locator("#events tbody tr")
        assert sorted(r.locator("td").nth(1).inner_text() for r in events.all()) == ["reactivation", "suspension"]
        page.select_option("#f-type", "reactivation")
        expect(events).to_have_count(1, timeout=10_000)
        assert events.locator("td").nth(1).inner_text() == "reactivation"
        page.select_option("#f-type", "")
        page.select_option("#f-detector", "did_concurrency")
        page.locator("#events tbody", has_text="none").wait_for(timeout=10_000)
        page.select_option("#f-detector", "autodialer")
        page.fill("#f-customer", "cust-002")
        page.locator("#events tbody", has_text="none").wait_for(timeout=10_000)
        page.fill("#f-customer", CAMPAIGN)
        expect(events).to_have_count(2, timeout=10_000)
        assert sorted(r.locator("td").nth(1).inner_text() for r in events.all()) == ["reactivation", "suspension"]
        assert {r.locator("td").nth(0).inner_text() for r in page.locator("#concurrency tbody tr").all()} == {CAMPAIGN}
        page.screenshot(path=str(tmp_path / "noc.png"), full_page=True)
        print(f"NOC screenshots: {tmp_path / 'noc-customer.png'} {tmp_path / 'noc.png'}")

        topic = f"{prefix}reactivations"
        reactivations = [json.loads(r.value) for r in read_topics(kafka_bootstrap, [topic])[topic]]
        assert [(r["suspension_event_id"], r["evidence"]["by"], r["scope"]["kind"]) for r in reactivations] == [
            (suspension_id, "noc-anna", "cli")
        ]
        susp_topic = f"{prefix}suspensions"
        suspensions = [json.loads(r.value) for r in read_topics(kafka_bootstrap, [susp_topic])[susp_topic]]
        assert [s["event_id"] for s in suspensions] == [suspension_id]
        assert reactivations[0]["scope"] == suspensions[0]["scope"]
    finally:
        worker.stop()
