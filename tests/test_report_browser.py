"""The HTML report in a real browser: headless Chromium at a 900 px wide window shows no horizontal scrollbar
(document.documentElement.scrollWidth <= 900) and the calibrator history fits without scrolling by itself;
a screenshot of the page is kept beside it. Skips only when Chromium is not installed (`make setup` installs
Debian's)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from calscore.jobs.reports.html_report import write_report
from report_fixtures import fill_report_warehouse

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH = 900
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         f"--window-size={WIDTH},1200", "--virtual-time-budget=5000"]

MEASURE = """<pre id="measured"></pre><script>
window.addEventListener("load", function () {
  var h = document.getElementById("history");
  document.getElementById("measured").textContent = JSON.stringify({
    scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth,
    inner: window.innerWidth, history: h ? [h.scrollWidth, h.clientWidth, h.getBoundingClientRect().right] : null,
    images: Array.prototype.map.call(document.images, function (i) { return i.getBoundingClientRect().right; })});
});
</script></body>"""


def chromium(args: list[str], profile) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=90)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make setup installs Debian's chromium)")
def test_report_fits_a_900px_window(tmp_path):
    filled = fill_report_warehouse(tmp_path / "calscore.duckdb")
    page = write_report(filled["spec"], tmp_path / "out")
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", MEASURE), encoding="utf-8")
    dom = chromium(["--dump-dom", probe.as_uri()], tmp_path / "profile")
    found = re.search(r'<pre id="measured">([^<]*)</pre>', dom.stdout)
    assert found, f"no measurement in the dumped DOM: {dom.stderr[-2000:]}"
    measured = json.loads(found.group(1))
    assert measured["inner"] == WIDTH  # the window really was 900 px wide
    assert measured["scroll"] <= WIDTH, measured  # no horizontal overflow
    # the calibrator history fits as it is: it needs no scrolling of its own and ends inside the window
    scroll, client, right = measured["history"]
    assert scroll <= client and right <= WIDTH, measured
    assert len(measured["images"]) >= 7 and max(measured["images"]) <= WIDTH
    shot = tmp_path / "report-900px.png"
    chromium([f"--screenshot={shot}", page.as_uri()], tmp_path / "profile")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
