"""Open an HTML report in a real headless browser (Chromium) and say what it drew.

A copy of the page gets a probe script at the top of <head> that records every error (script errors,
resources that fail to load, console.error) and, once the page has loaded, writes a JSON verdict into
the DOM: how many plots (inline SVGs in ``figure.plot``) there are, how many were drawn (a laid-out box
of real size with shapes in it), the errors, and how many network resources the page requested (0 =
it works offline).  ``chromium --headless --dump-dom`` prints the DOM after the load event.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

INSTALL = "sudo apt-get install -y chromium  (Debian/Ubuntu; or set TFOPT_BROWSER to a Chrome/Chromium binary)"
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

PROBE = """<script>
(function () {
  var errors = [];
  window.addEventListener("error", function (e) {
    var t = e.target || {};
    errors.push(e.message ? "error: " + e.message : "failed to load: " + (t.src || t.href || t.tagName));
  }, true);
  var original = console.error;
  console.error = function () { errors.push("console.error: " + Array.prototype.join.call(arguments, " "));
                                original.apply(console, arguments); };
  window.addEventListener("load", function () {
    var plots = document.querySelectorAll("figure.plot svg"), drawn = 0;
    plots.forEach(function (svg) {
      var box = svg.getBoundingClientRect(), shapes = svg.querySelectorAll("path, use, rect, line, polyline, text");
      if (box.width > 50 && box.height > 50 && shapes.length > 10) { drawn += 1; }
    });
    var verdict = {plots: plots.length, drawn: drawn, errors: errors, title: document.title,
                   resources: performance.getEntriesByType("resource").length,
                   tables: document.querySelectorAll("table").length};
    var out = document.createElement("pre");
    out.id = "tfopt-probe";
    out.textContent = JSON.stringify(verdict);
    document.body.appendChild(out);
  });
})();
</script>"""


def find_browser() -> str | None:
    if os.environ.get("TFOPT_BROWSER"):
        return os.environ["TFOPT_BROWSER"]
    return next((found for name in CANDIDATES if (found := shutil.which(name))), None)


def probe(html_file: Path, browser: str, timeout: float = 90) -> dict:
    """Render ``html_file`` headless and return the probe's verdict (plots, drawn, errors, resources, title)."""
    text = Path(html_file).read_text()
    assert "<head>" in text, "not an HTML page with a <head>"
    with tempfile.TemporaryDirectory(prefix="tfopt-browser-") as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(text.replace("<head>", "<head>\n" + PROBE, 1))
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--no-first-run", "--disable-extensions", f"--user-data-dir={Path(tmp) / 'profile'}",
               "--virtual-time-budget=10000", "--dump-dom", page.as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    match = re.search(r'<pre id="tfopt-probe">(.*?)</pre>', proc.stdout, re.S)
    assert match, f"the browser gave no verdict (exit {proc.returncode}): {proc.stderr[-1500:]}"
    return json.loads(match.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
                      .replace("&amp;", "&"))


EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import|<script|<link""",
                      re.I)


def external_references(text: str) -> list[str]:
    """Everything in a page that would load something (scripts, stylesheets, remote images): must be none."""
    return EXTERNAL.findall(text)
