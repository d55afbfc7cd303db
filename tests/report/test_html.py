"""report.html (``lhl report``): one self-contained page — every figure an embedded PNG, no script,
nothing from the network — that opens in headless Chromium with its tables and every image decoded.

The Chromium test is skipped when no ``chromium``/``chromium-browser`` is on PATH (Debian:
``apt-get install chromium``; ``.ci/run`` installs it). It renders report.html to a screenshot saved
in the report directory, and checks the rendered page through a harness page (written by the test,
with a script — the report itself has none) that loads report.html in an iframe and writes, into
its own DOM, the number of tables and each image's ``complete``/``naturalWidth``; Chromium's
``--dump-dom`` prints that DOM after ``--virtual-time-budget`` lets the page load.
``--allow-file-access-from-files`` lets a file:// page read a file:// iframe's document (file URLs
are otherwise unique origins)."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from PIL import Image

from lhl.config import load_config
from lhl.engine.trainer import Trainer
from lhl.report.experiment import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """Smoke runs of vanilla and HAD (seed 0, one order) and their report, with the qualitative grid."""
    exp = tmp_path_factory.mktemp("html-exp")
    for method in ("vanilla", "had"):
        out = exp / "runs" / "segmentation-depth-normal" / f"{method}-s0"
        Trainer(load_config(preset="smoke", method=method, overrides=["seed=0"]), out, quiet=True).run()
    return write_report(exp, samples=2)


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.images: list[str] = []
        self.urls: list[str] = []
        self.cells: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for key in ("href", "src", "action", "data"):
            if attrs.get(key):
                self.urls.append(attrs[key])
        if tag in ("td", "th"):
            self._cell = []

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append("".join(self._cell).strip())
            self._cell = None


def test_html_is_self_contained_with_tables_and_embedded_pngs(report):
    html = report.html.read_text()
    page = _Page()
    page.feed(html)
    assert "script" not in page.tags and "<script" not in html.lower()
    assert "link" not in page.tags and "iframe" not in page.tags and "@import" not in html and "url(" not in html
    assert all(u.startswith("data:image/png;base64,") for u in page.urls)
    # every figure is embedded and is the PNG written beside report.md
    assert len(page.images) == len(report.figures) == 6
    embedded = {base64.b64decode(src.split(",", 1)[1]) for src in page.images}
    assert embedded == {p.read_bytes() for p in report.figures}
    for data in embedded:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    # the paper table: a row per method with Δ, MR and the cost columns
    assert page.tags["table"] >= 4
    assert "Δ vs vanilla %" in page.cells and "params" in page.cells and "stored" in page.cells
    row = page.cells[page.cells.index("had"):][:2]
    assert row == ["had", "0"]
    assert "<strong>" in html or "n/a" in html


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on PATH: install it to run this test "
                                              "(Debian/Ubuntu: apt-get install chromium)")
def test_report_opens_in_headless_chromium(report, tmp_path):
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}"]
    screenshot = report.directory / "report-screenshot.png"
    done = subprocess.run([*flags, f"--screenshot={screenshot}", "--window-size=1280,2000",
                           report.html.resolve().as_uri()], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    with Image.open(screenshot) as image:
        assert image.size == (1280, 2000)
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or range(2)) > 10  # not a blank page

    harness = tmp_path / "harness.html"
    shutil.copy(report.html, tmp_path / "report.html")
    harness.write_text("""<!DOCTYPE html><html><body><pre id="result">pending</pre>
<iframe id="report" src="report.html" width="1280" height="800"></iframe>
<script>
document.getElementById("report").addEventListener("load", function () {
  var out;
  try {
    var doc = this.contentDocument;
    out = {tables: doc.querySelectorAll("table").length, rows: doc.querySelectorAll("tbody tr").length,
           headings: [].map.call(doc.querySelectorAll("h3"), function (h) { return h.textContent; }),
           images: [].map.call(doc.images, function (img) {
             return {complete: img.complete, width: img.naturalWidth, height: img.naturalHeight}; })};
  } catch (error) { out = {error: String(error)}; }
  document.getElementById("result").textContent = JSON.stringify(out);
});
</script></body></html>""")
    done = subprocess.run([*flags, "--allow-file-access-from-files", "--virtual-time-budget=15000", "--dump-dom",
                           harness.as_uri()], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    match = re.search(r'<pre id="result">(.*?)</pre>', done.stdout, re.S)
    assert match, done.stdout[-2000:]
    result = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert "error" not in result, result
    assert result["tables"] >= 4 and result["rows"] >= 2
    assert "synthetic-nyu: segmentation → depth → normal" in result["headings"]
    assert len(result["images"]) == len(report.figures)
    assert all(i["complete"] and i["width"] > 0 and i["height"] > 0 for i in result["images"]), result["images"]
