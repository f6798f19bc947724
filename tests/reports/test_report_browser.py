"""report.html in a real headless Chromium: the summary, the verdict matrix and the curves on the first
screen, no console messages, every image decoded, and a matrix link that opens its collapsed row.

Skipped where no Chromium is installed (``apt-get install -y chromium``).
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pandas as pd
import pytest
from advparity.reports import browser
from advparity.reports.html import write_report
from advparity.reports.load import load_run
from support.report_frames import MANIFEST, N, cell, clean_frame, flipped_preds

pytestmark = pytest.mark.skipif(
    browser.find_chromium() is None, reason="no Chromium on PATH (apt-get install -y chromium)"
)

# A full-size scene: the reference and six libraries over the demo's grid (FGSM at 15 eps, PGD at 5),
# the most a first screen has to hold.
LIBRARIES = ("reference", "art", "torchattacks", "foolbox", "secml-torch", "adv-lib", "deeprobust")
FGSM_EPS = tuple(e / 255 for e in (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 2, 4))
PGD_EPS = tuple(e / 255 for e in (0.1, 0.3, 0.5, 1, 2))


def _flips(eps: float, strength: float) -> int:
    return min(N - 10, round((N - 10) * (1 - math.exp(-strength * eps * 255))))


def _write_run(root: Path) -> Path:
    """The demo's shape: six libraries and the reference; one library without FGSM; two whose PGD differs
    from the reference's on every sample; advertorch installed but failing on import."""
    parts = []
    for library in LIBRARIES:
        if library != "adv-lib":  # adv-lib offers no FGSM
            parts += [cell(library, "fgsm", e, flipped_preds(_flips(e, 1.0))) for e in FGSM_EPS]
        differ = library in ("secml-torch", "adv-lib")
        parts += [
            cell(
                library,
                "pgd",
                e,
                flipped_preds(_flips(e, 2.0 if not differ else 1.5)),
                random_start=True,
                seed=0,
                linf_to_ref=e if differ else 0.0,
                pixels_differ=3000 if differ else 0,
            )
            for e in PGD_EPS
        ]
    results = pd.concat(parts, ignore_index=True)
    run_dir = root / "run"
    (run_dir / "cells").mkdir(parents=True)
    (run_dir / "manifest.json").write_text(json.dumps(MANIFEST), encoding="utf-8")
    reason = (
        "ImportError: cannot import name 'zero_gradients' from 'torch.autograd.gradcheck' "
        "(/opt/venv/lib/python3.11/site-packages/torch/autograd/gradcheck.py)"
    )
    status = {"advertorch": {"state": "unavailable", "reason": reason, "version": "0.2.3"}}
    (run_dir / "libraries.json").write_text(json.dumps(status), encoding="utf-8")
    clean_frame().to_parquet(run_dir / "clean.parquet")
    for i, (_, part) in enumerate(results.groupby(["library", "attack", "eps"], sort=False)):
        part.to_parquet(run_dir / "cells" / f"cell-{i:03d}.parquet")
    return run_dir


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = _write_run(tmp_path_factory.mktemp("browser"))
    return write_report(load_run(run_dir))


def test_the_scene_has_every_kind_of_row(report_html: Path) -> None:
    page = report_html.read_text(encoding="utf-8")
    assert "disagree at 5 eps" in page and "Not run: advertorch (installed but cannot run" in page


def test_first_screen_holds_summary_matrix_and_curves(report_html: Path) -> None:
    shown = browser.render(report_html)
    width, height = shown.viewport
    assert width == browser.FIRST_SCREEN[0] and 600 <= height <= browser.FIRST_SCREEN[1]
    for element in browser.PROBED_IDS:
        assert shown.boxes[element] is not None, f"#{element} missing"
        assert shown.on_first_screen(element), (
            f"#{element} at {shown.boxes[element]} is off the {shown.viewport} screen"
        )
    assert shown.console == []
    assert shown.broken_images == 0
    assert shown.link is not None and shown.link_opens_row


def test_a_shorter_window_pushes_the_curves_off_the_first_screen(report_html: Path) -> None:
    # The check above can fail: at 400 px the curves cannot fit.
    shown = browser.render(report_html, size=(1280, 400))
    assert not shown.on_first_screen("curves")


def test_console_errors_are_seen(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><head><script>undefinedFunction();</script></head><body></body></html>",
        encoding="utf-8",
    )
    shown = browser.render(page)
    assert len(shown.console) == 1 and "undefinedFunction" in shown.console[0]


def test_screenshot_is_a_png_of_the_first_screen(report_html: Path, tmp_path: Path) -> None:
    png = browser.screenshot(report_html, tmp_path / "shot.png")
    header = png.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == browser.FIRST_SCREEN
