"""Open a report in real headless Chromium and check it: no console error, no network request.

Usage::

    python tests/browser_check.py [REPORT_HTML] [--screenshot PATH]

Without REPORT_HTML a report is made first: from the demo cell when the analysis is available,
else from the small results folder of the report tests. The page is driven through the Chrome
DevTools Protocol over a pipe (standard library only): every console message, uncaught exception,
log entry and request is recorded, then a screenshot is saved (by default
``browser-check/report_screenshot.png``, an ignored folder; pass
``--screenshot docs/images/report_screenshot.png`` to refresh the image in the docs).
Exit status 0 when the page is clean, 1 when not; when Chromium is not installed it prints
``SKIP`` and exits 0.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ALLOWED_SCHEMES = ("file:", "data:", "about:", "blob:", "chrome-error:")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--enable-logging=stderr", "--v=0",
         # WebGL on the CPU (SwiftShader) for the 3D view: the page is local, trusted content.
         "--enable-unsafe-swiftshader",
         # Belt and braces: any host name fails to resolve, so a stray request cannot leave.
         "--host-resolver-rules=MAP * ~NOTFOUND",
         "--remote-debugging-pipe"]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageCheck:
    errors: list[str] = field(default_factory=list)      # console errors, exceptions
    requests: list[str] = field(default_factory=list)    # every URL the page asked for
    external: list[str] = field(default_factory=list)    # those outside file:/data:
    console: list[str] = field(default_factory=list)     # all console messages "level: text"
    page_state: dict[str, Any] = field(default_factory=dict)
    screenshot: bytes = b""

    @property
    def ok(self) -> bool:
        return not self.errors and not self.external


class _Cdp:
    """Minimal Chrome DevTools Protocol client over --remote-debugging-pipe (fd 3 in, fd 4 out)."""

    def __init__(self, argv: list[str], stderr_path: Path) -> None:
        self._err = open(stderr_path, "wb")
        # The shell moves our pipes onto fds 3 and 4, where Chromium expects them.
        self.proc = subprocess.Popen(
            ["sh", "-c", 'exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>/dev/null', *argv],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err)
        self._id = 0
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._replies: dict[int, dict[str, Any]] = {}
        self._cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buf = b""
        assert self.proc.stdout is not None
        while True:
            chunk = self.proc.stdout.read1(1 << 16)
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._cv:
                        self._replies[msg["id"]] = msg
                        self._cv.notify_all()
                else:
                    self._events.put(msg)

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 60.0) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg).encode() + b"\0")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._id not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no reply to {method}")
                self._cv.wait(left)
            reply = self._replies.pop(self._id)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def events(self) -> list[dict[str, Any]]:
        out = []
        while True:
            try:
                out.append(self._events.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._err.close()


_STATE_JS = """(() => {
  const imgs = Array.from(document.images);
  const plot = document.querySelector('.plot3d .js-plotly-plot');
  return JSON.stringify({
    title: document.title,
    images: imgs.length,
    images_broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length,
    plotly_ready: !!(plot && plot._fullLayout),
    webgl_canvases: plot ? plot.querySelectorAll('canvas').length : 0,
    sections: Array.from(document.querySelectorAll('section[id]')).map(s => s.id),
    alert_text_present: document.body.innerText.includes('<script>'),
    view3d_box: (() => { const e = document.getElementById('view3d');
      if (!e) return null; const r = e.getBoundingClientRect();
      return [r.left, r.top + window.scrollY, r.width, r.height]; })(),
  });
})()"""


def check_page(html: Path, *, width: int = 1400, height: int = 2400,
               settle_s: float = 3.0, chromium: str | None = None) -> PageCheck:
    """Load ``html`` in headless Chromium; return what happened on the page."""
    exe = chromium or find_chromium()
    if exe is None:
        raise FileNotFoundError("chromium not found")
    html = Path(html).resolve()
    out = PageCheck()
    with tempfile.TemporaryDirectory(prefix="dendritect-chromium-") as tmp:
        cdp = _Cdp([exe, *FLAGS, f"--user-data-dir={tmp}", f"--window-size={width},{height}"],
                   Path(tmp) / "stderr.log")
        try:
            target = cdp.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            sid = cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
                "sessionId"]
            for dom in ("Runtime", "Log", "Network", "Page"):
                cdp.send(f"{dom}.enable", session=sid)
            cdp.send("Emulation.setDeviceMetricsOverride",
                     {"width": width, "height": height, "deviceScaleFactor": 1,
                      "mobile": False}, session=sid)
            cdp.send("Page.navigate", {"url": html.as_uri()}, session=sid)
            events: list[dict[str, Any]] = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                events += cdp.events()
                if any(e.get("method") == "Page.loadEventFired" for e in events):
                    break
                time.sleep(0.1)
            # Let plotly draw the WebGL scene.
            t_end = time.monotonic() + 30
            while time.monotonic() < t_end:
                r = cdp.send("Runtime.evaluate", {"expression": _STATE_JS,
                                                  "returnByValue": True}, session=sid)
                out.page_state = json.loads(r["result"]["value"])
                if out.page_state.get("plotly_ready") or not out.page_state.get("sections"):
                    break
                time.sleep(0.25)
            time.sleep(settle_s)
            shot = cdp.send("Page.captureScreenshot", {"format": "png"}, session=sid)
            out.screenshot = base64.b64decode(shot["data"])
            events += cdp.events()
        finally:
            cdp.close()
    for e in events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            out.errors.append("exception: " + str(d.get("exception", {}).get("description")
                                                 or d.get("text")))
        elif m == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", "")))
                            for a in p.get("args", []))
            out.console.append(f"{p.get('type')}: {text}")
            if p.get("type") in ("error", "assert"):
                out.errors.append(f"console.{p.get('type')}: {text}")
        elif m == "Log.entryAdded":
            entry = p.get("entry", {})
            out.console.append(f"{entry.get('level')}: {entry.get('text')}")
            if entry.get("level") == "error":
                out.errors.append(f"log error ({entry.get('source')}): {entry.get('text')} "
                                  f"{entry.get('url', '')}")
        elif m == "Network.requestWillBeSent":
            url = p.get("request", {}).get("url", "")
            out.requests.append(url[:120])
            if not url.startswith(ALLOWED_SCHEMES):
                out.external.append(url)
        elif m == "Network.loadingFailed":
            out.errors.append(f"load failed: {p.get('errorText')}")
    return out


def _make_report(tmp: Path) -> Path:
    """A report to look at: the demo cell when the analysis exists, else the test results."""
    sys.path.insert(0, str(ROOT))
    try:
        from dendritect.cli.demo import run_demo

        return run_demo(tmp / "demo")
    except ImportError as exc:
        print(f"demo not available ({exc}); using the report tests' results folder")
    from dendritect.report import write_report
    from tests.test_report_fixture import make_results_dir

    return write_report(make_results_dir(tmp / "results"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", nargs="?", type=Path, help="report.html (made when omitted)")
    ap.add_argument("--screenshot", type=Path,
                    default=ROOT / "browser-check" / "report_screenshot.png")
    args = ap.parse_args(argv)
    if find_chromium() is None:
        print("SKIP: chromium not found (apt-get install -y chromium)")
        return 0
    with tempfile.TemporaryDirectory(prefix="dendritect-report-") as tmp:
        report = args.report or _make_report(Path(tmp))
        res = check_page(report)
    args.screenshot.parent.mkdir(parents=True, exist_ok=True)
    args.screenshot.write_bytes(res.screenshot)
    print(f"page: {report}")
    print(f"state: {json.dumps(res.page_state)}")
    print(f"requests: {len(res.requests)} ({len(res.external)} outside file:/data:)")
    for line in res.console:
        print(f"  console {line[:200]}")
    print(f"screenshot: {args.screenshot}")
    if not res.ok:
        for e in res.errors + [f"external request: {u}" for u in res.external]:
            print(f"FAIL {e[:300]}")
        return 1
    print("OK: no console error, no network request")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
