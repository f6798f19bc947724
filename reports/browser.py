"""``report.html`` in a real headless browser: what lies on the first screen, what the console logged, a
screenshot.

Chromium from the operating system's packages (``apt-get install chromium``) renders the report; nothing
is installed from Python. :func:`render` injects a probe script into a copy of the report that, once
the page has loaded, measures where the summary, the verdict matrix and the curves lie in the viewport,
counts images that did not decode, and follows one matrix link to check that it opens its collapsed
row. The console is read from Chromium's own log (``--enable-logging=stderr``), not from the page, so
an error in any script — the report's or the probe's — is seen.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

CHROMIUM_NAMES: tuple[str, ...] = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# The first screen a reader sees: a laptop browser window.
FIRST_SCREEN: tuple[int, int] = (1280, 900)
PROBED_IDS: tuple[str, ...] = ("summary", "verdict-matrix", "curves")
_PROBE_ID = "advparity-browser-probe"
# Chromium logs each console message (console.log/error, uncaught exceptions) as one INFO:CONSOLE line.
_CONSOLE_LINE = re.compile(r":CONSOLE[:(]")
_FLAGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",  # runs as root in containers and CI
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-extensions",
)

_PROBE_JS = """
window.addEventListener("load", function () {
  function box(id) {
    var el = document.getElementById(id);
    if (!el) { return null; }
    var r = el.getBoundingClientRect();
    return {top: r.top, bottom: r.bottom, left: r.left, right: r.right};
  }
  var result = {viewport: [window.innerWidth, window.innerHeight], boxes: {}, broken_images: 0,
                link: null, link_opens_row: false};
  PROBED.forEach(function (id) { result.boxes[id] = box(id); });
  Array.prototype.forEach.call(document.images, function (img) {
    if (!img.complete || img.naturalWidth === 0) { result.broken_images += 1; }
  });
  var link = document.querySelector("#verdict-matrix a[href^='#']");
  if (link) {
    result.link = link.getAttribute("href");
    link.click();
  }
  setTimeout(function () {
    if (link) {
      var target = document.getElementById(result.link.slice(1));
      var details = target ? target.closest("details") : null;
      result.link_opens_row = !!target && (details === null || details.open);
    }
    var out = document.createElement("pre");
    out.id = "PROBE_ID";
    out.textContent = JSON.stringify(result);
    document.body.appendChild(out);
  }, 50);
});
"""


@dataclass(frozen=True)
class Box:
    top: float
    bottom: float
    left: float
    right: float


@dataclass(frozen=True)
class Rendering:
    """What the browser showed: the viewport, where each probed element lies, the console's messages."""

    viewport: tuple[int, int]
    boxes: dict[str, Box | None]  # element id -> its box (viewport pixels), None when absent
    console: list[str]  # every console message Chromium logged while loading the page
    broken_images: int
    link: str | None  # the first verdict-matrix link followed
    link_opens_row: bool  # its target row exists and is not hidden in a closed <details>

    def on_first_screen(self, element_id: str) -> bool:
        """True when the whole element lies inside the viewport without scrolling."""
        box = self.boxes.get(element_id)
        width, height = self.viewport
        return (
            box is not None and box.top >= 0 and box.left >= 0 and box.bottom <= height and box.right <= width
        )


def find_chromium() -> str | None:
    """The path of a Chromium (or Chrome) executable on PATH, else None."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _require_chromium(chromium: str | None) -> str:
    found = chromium or find_chromium()
    if not found:
        raise FileNotFoundError(
            f"no Chromium found (looked for {', '.join(CHROMIUM_NAMES)} on PATH); "
            "install it from the system's packages, e.g. `apt-get install -y chromium`"
        )
    return found


def _run(chromium: str, args: list[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as profile:
        # A fresh profile per call: no state leaks between renderings, and no lock on a shared one.
        return subprocess.run(
            [chromium, *_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )


def render(
    html_path: str | Path,
    size: tuple[int, int] = FIRST_SCREEN,
    *,
    chromium: str | None = None,
    timeout_s: float = 60.0,
) -> Rendering:
    """Load ``html_path`` in headless Chromium at ``size`` (width, height) and report what it showed."""
    browser = _require_chromium(chromium)
    document = Path(html_path).read_text(encoding="utf-8")
    probe = _PROBE_JS.replace("PROBED", json.dumps(list(PROBED_IDS))).replace("PROBE_ID", _PROBE_ID)
    if "</body>" not in document:
        raise ValueError(f"{html_path} has no </body>: not an HTML page written by advparity")
    probed = document.replace("</body>", f"<script>{probe}</script></body>", 1)
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / Path(html_path).name
        page.write_text(probed, encoding="utf-8")
        done = _run(
            browser,
            [
                "--enable-logging=stderr",
                "--v=0",
                f"--window-size={size[0]},{size[1]}",
                "--virtual-time-budget=5000",  # lets the load handler and its timer run before the dump
                "--dump-dom",
                page.as_uri(),
            ],
            timeout_s,
        )
    match = re.search(rf'<pre id="{_PROBE_ID}">(.*?)</pre>', done.stdout, flags=re.DOTALL)
    if match is None:
        raise RuntimeError(
            f"Chromium did not run the probe (exit {done.returncode}); its log ends:\n{done.stderr[-2000:]}"
        )
    # The DOM dump escapes &, < and > inside <pre>; JSON from the probe has no other entities.
    raw = match.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    result = json.loads(raw)
    return Rendering(
        viewport=(int(result["viewport"][0]), int(result["viewport"][1])),
        boxes={key: (Box(**value) if value else None) for key, value in result["boxes"].items()},
        console=[line for line in done.stderr.splitlines() if _CONSOLE_LINE.search(line)],
        broken_images=int(result["broken_images"]),
        link=result["link"],
        link_opens_row=bool(result["link_opens_row"]),
    )


def screenshot(
    html_path: str | Path,
    png_path: str | Path,
    size: tuple[int, int] = FIRST_SCREEN,
    *,
    chromium: str | None = None,
    timeout_s: float = 60.0,
) -> Path:
    """A PNG of the first screen of ``html_path`` as Chromium shows it at ``size`` (width, height)."""
    browser = _require_chromium(chromium)
    out = Path(png_path).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    done = _run(
        browser,
        [f"--window-size={size[0]},{size[1]}", f"--screenshot={out}", Path(html_path).resolve().as_uri()],
        timeout_s,
    )
    if done.returncode != 0 or not out.is_file():
        raise RuntimeError(f"Chromium wrote no screenshot (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return out
