"""The report in a real headless browser: no console error, no network request, 3D view drawn."""

from __future__ import annotations

from pathlib import Path

import pytest

from dendritect.report import write_report
from tests.browser_check import check_page, find_chromium
from tests.test_report_fixture import make_results_dir


@pytest.mark.skipif(find_chromium() is None,
                    reason="chromium not installed (apt-get install -y chromium; "
                    "make browser-check)")
def test_report_is_clean_in_chromium(tmp_path: Path) -> None:
    report = write_report(make_results_dir(tmp_path / "results", n_steps=3))
    res = check_page(report, height=1200, settle_s=0.5)
    assert res.errors == []
    assert res.external == []
    assert res.requests and all(u.startswith(("file:", "data:")) for u in res.requests)
    state = res.page_state
    assert state["images"] == 5 and state["images_broken"] == 0
    assert state["plotly_ready"] and state["webgl_canvases"] >= 1
    # the input name is shown as text, not run as a script
    assert state["alert_text_present"]
    assert res.screenshot.startswith(b"\x89PNG")
