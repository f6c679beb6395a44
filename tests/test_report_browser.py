"""The HTML report in a real browser: headless Chromium at a 900 px wide window shows no horizontal scrollbar
(document.documentElement.scrollWidth <= 900), the calibrator history fits without scrolling by itself, no table
cell breaks a word or a number across lines (each word of a cell's text, measured as a DOM Range, lies on one
line: "0.1 28", "hel d- out n" and "no_refere nce" were), and the key figures sit at the top, before the first
figure; a screenshot of the page is kept beside it. Skips only when Chromium is not installed (`make setup`
installs Debian's)."""
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

MEASURE = r"""<pre id="measured"></pre><script>
function brokenWords() {
  // every word (run of non-space characters) of every table cell's text: on more than one line, it was broken
  var broken = [];
  document.querySelectorAll("td, th").forEach(function (cell) {
    var walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT), node, word, re = /\S+/g;
    while ((node = walker.nextNode())) {
      while ((word = re.exec(node.data))) {
        var range = document.createRange();
        range.setStart(node, word.index);
        range.setEnd(node, word.index + word[0].length);
        var tops = new Set(Array.prototype.map.call(range.getClientRects(),
                                                    function (r) { return Math.round(r.top); }));
        if (tops.size > 1) broken.push(word[0] + " in: " + cell.textContent.trim());
      }
    }
  });
  return broken;
}
window.addEventListener("load", function () {
  var h = document.getElementById("history"), card = document.getElementById("key-figures");
  document.getElementById("measured").textContent = JSON.stringify({
    scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth,
    inner: window.innerWidth, history: h ? [h.scrollWidth, h.clientWidth, h.getBoundingClientRect().right] : null,
    card: [card.scrollWidth, card.clientWidth, card.getBoundingClientRect().bottom],
    cells: document.querySelectorAll("td, th").length, broken: brokenWords(),
    images: Array.prototype.map.call(document.images, function (i) {
      var r = i.getBoundingClientRect(); return [r.top, r.right]; })});
});
</script></body>"""


def chromium(args: list[str], profile) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=90)


def measure(page, tmp_path, css: str = "") -> dict:
    """The MEASURE figures of `page` in Chromium at 900 px (with `css` added to its style sheet)."""
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</style>", css + "</style>")
                     .replace("</body>", MEASURE), encoding="utf-8")
    dom = chromium(["--dump-dom", probe.as_uri()], tmp_path / "profile")
    found = re.search(r'<pre id="measured">([^<]*)</pre>', dom.stdout)
    assert found, f"no measurement in the dumped DOM: {dom.stderr[-2000:]}"
    return json.loads(found.group(1))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make setup installs Debian's chromium)")
def test_report_fits_a_900px_window(tmp_path):
    filled = fill_report_warehouse(tmp_path / "calscore.duckdb")
    page = write_report(filled["spec"], tmp_path / "out")
    measured = measure(page, tmp_path)
    assert measured["inner"] == WIDTH  # the window really was 900 px wide
    assert measured["scroll"] <= WIDTH, measured  # no horizontal overflow
    # the calibrator history fits as it is: it needs no scrolling of its own and ends inside the window
    scroll, client, right = measured["history"]
    assert scroll <= client and right <= WIDTH, measured
    assert len(measured["images"]) >= 7 and max(right for _, right in measured["images"]) <= WIDTH
    # no cell breaks inside a word or a number, in any table (history, trend, health, label budget, ...)
    assert measured["cells"] > 300 and measured["broken"] == [], measured["broken"]
    # the key figures: whole, at the top, above the first figure
    scroll, client, bottom = measured["card"]
    assert scroll <= client and bottom < min(top for top, _ in measured["images"])
    # the measurement does see broken words: squeezed cells that may break anywhere break plenty
    squeezed = measure(page, tmp_path, "td, th { white-space: normal; overflow-wrap: anywhere; max-width: 2em; }")
    assert any(re.match(r"0\.\d+ in:", w) for w in squeezed["broken"]), squeezed["broken"][:20]
    shot = tmp_path / "report-900px.png"
    chromium([f"--screenshot={shot}", page.as_uri()], tmp_path / "profile")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
