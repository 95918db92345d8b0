"""The HTML report in a real headless browser: it renders, fits 1280 px, and logs no errors.

Needs Debian's ``chromium`` (``apt-get install -y chromium``); skipped, saying so, without it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recsys.data.synthetic import ShopSpec, make_shop
from recsys.evaluation.run import EvaluationConfig, run_evaluation, write_report
from recsys.testing.browser import PROBE, WIDTH, browser, run_browser


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    shop = make_shop(ShopSpec(n_users=250, n_items=90, seed=21))
    cfg = EvaluationConfig.model_validate(
        {"tune": False, "bootstrap": 50, "deletion_sample": 10,
         "systems": ["popular", "bestseller", "als", "recsys (no re-ranking)", "recsys"]}
    )  # fmt: skip
    metrics, timings, _ = run_evaluation(shop, cfg)
    out = tmp_path_factory.mktemp("report")
    write_report(out, metrics, timings, cfg)
    return out


def test_report_has_a_summary_and_no_raw_markdown(report: Path) -> None:
    html = (report / "report.html").read_text()
    assert "`" not in html, "raw Markdown backticks in the HTML"
    assert html.index('id="summary"') < html.index("<h2>Accuracy</h2>")
    for part in ("What the numbers mean", "Example recommendations", "Caveats", "exclude = "):
        assert part in html.replace("&#34;", '"'), part
    assert len(re.findall(r'class="example"', html)) == 3


@pytest.mark.skipif(browser() is None, reason="no chromium binary: apt-get install -y chromium")
def test_report_in_a_headless_browser(report: Path) -> None:
    binary = browser()
    assert binary is not None
    shot = report / "screenshot.png"
    res = run_browser(binary, f"--screenshot={shot}", (report / "report.html").as_uri())
    assert shot.exists() and shot.stat().st_size > 10_000, res.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    probe = report / "probe.html"  # the report plus a script that measures the page
    probe.write_text((report / "report.html").read_text().replace("</body>", PROBE + "</body>"))
    res = run_browser(binary, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    found = re.search(r'data-probe="scroll=(\d+);client=(\d+);broken=(\d+)"', res.stdout)
    assert found, f"the probe did not run: {res.stderr[-2000:]}"
    scroll, client, broken = map(int, found.groups())
    assert scroll <= client, f"horizontal overflow at {WIDTH} px: {scroll} > {client}"
    assert broken == 0, f"{broken} image(s) failed to load"
    # the report runs no script of its own: any console message is a fault
    errors = [line for line in res.stderr.splitlines() if "Uncaught" in line or ":CONSOLE" in line]
    assert not errors, errors
