"""The report in a real browser (headless Chromium, skipped where it is not installed): the page renders,
its script sorts the table of all videos, and every image loads."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from prediction import cli
from tests.prediction.conftest import FRAMES_PER_VIDEO

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (apt install chromium)")


def _chromium(*args: str, timeout: int = 90) -> str:
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                           *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_report_sorts_and_renders_in_chromium(test_videos, project_checkpoint, tmp_path):
    output, report = tmp_path / "out.csv", tmp_path / "report"
    assert cli.main(["--test-dir", str(test_videos), "--models", str(project_checkpoint), "--output",
                                str(output), "--frames-per-video", str(FRAMES_PER_VIDEO), "--report", str(report),
                                "--no-progress"]) == 0
    index = report / "index.html"
    # the DOM after the page's script ran, opened sorted by score, descending
    dom = _chromium("--virtual-time-budget=3000", "--dump-dom", f"{index.as_uri()}#sort=-score")
    table = dom[dom.index('id="videos"'):dom.index("</table>", dom.index('id="videos"'))]
    shown = [float(v) for v in re.findall(r'\.mp4</a></td><td data-value="([0-9.]+)"', table)]
    assert len(shown) == len(list(test_videos.glob("*.mp4")))
    assert shown == sorted(shown, reverse=True)
    # ascending by file name without the hash: the order the report wrote
    dom = _chromium("--virtual-time-budget=3000", "--dump-dom", index.as_uri())
    names = re.findall(r'<td data-value="([^"]+\.mp4)">', dom[dom.index('id="videos"'):])
    assert names == sorted(names)
    # every image on the page loads (naturalWidth > 0), checked by the browser itself
    probe = tmp_path / "probe.html"
    probe.write_text(
        f'<iframe id="f" src="{index.as_uri()}" width="1200" height="900"></iframe><pre id="out"></pre><script>'
        'document.getElementById("f").onload = () => { const imgs = [...document.getElementById("f")'
        '.contentDocument.images]; document.getElementById("out").textContent = "IMAGES " + imgs.length + " BROKEN "'
        ' + imgs.filter(i => !i.complete || i.naturalWidth == 0).length; };</script>')
    dom = _chromium("--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    found = re.search(r"IMAGES (\d+) BROKEN (\d+)", dom)
    assert found and int(found.group(1)) >= 2 and found.group(2) == "0", dom[-500:]
    screenshot = tmp_path / "report.png"
    _chromium("--window-size=1200,1600", f"--screenshot={screenshot}", index.as_uri())
    assert screenshot.stat().st_size > 10_000
