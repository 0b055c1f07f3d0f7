"""Open MLflow addresses in headless Chromium, check the page shows the charts, screenshot it.

    usage: ui_check.py OUTPUT_PNG URL [URL ...]

Each URL must render a Plotly chart holding `val_loss` and `train_loss` curves of at least two
runs (the overlaid curves) against Step or Time; a page without them fails the check (exit 1)
and no picture is saved. The pictures are stacked, one above the other, into OUTPUT_PNG.

Driven over the DevTools protocol rather than `chromium --screenshot`, because MLflow 3's UI
opens its assistant panel on a browser's first visit (a third of the screen); a script run
before the page's own sets the local-storage flags that keep it closed. The protocol's
WebSocket is spoken by hand (stdlib only): no browser-automation package is installed.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
WIDTH, HEIGHT = 1400, 900
# MLflow's useLocalStorage keys are `${key}_v${version}` (mlflow/server/js, 3.17).
HIDE_SIDE_PANELS = """
localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');
localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');
"""
# What the check demands of the page; returns what is missing (empty: all there). MLflow's
# metric page draws one Plotly chart whose traces carry the run name and the metric key.
CHECK_CHARTS = """
(() => {
  const plots = [...document.querySelectorAll('.js-plotly-plot')].filter(p => p.data);
  if (!plots.length) return ['a Plotly chart'];
  const traces = plots.flatMap(p => p.data).filter(t => (t.x || []).length >= 2);
  const missing = [];
  for (const key of ['val_loss', 'train_loss']) {
    const runs = new Set(traces.filter(t => t.metricKey === key).map(t => t.name));
    if (runs.size < 2) missing.push(`${key} curves of two runs (found ${runs.size})`);
  }
  const axes = plots.map(p => p._fullLayout.xaxis.title.text || '').join(' ');
  if (!/Step|Time/.test(axes)) missing.push('a Step or Time x axis');
  return missing;
})()
"""
# The page's own content beside MLflow's navigation sidebar: the widest ancestor of the chart
# that starts right of the sidebar, cut to the window's height.
MAIN_CONTENT = """
(() => {
  let box = document.querySelector('.js-plotly-plot');
  while (box.parentElement && box.parentElement.getBoundingClientRect().left > 40) {
    box = box.parentElement;
  }
  const r = box.getBoundingClientRect();
  return {x: r.left, y: 0, width: r.width, height: Math.min(window.innerHeight, r.bottom)};
})()
"""


class DevTools:
    """A minimal DevTools-protocol client over one WebSocket (RFC 6455 client frames)."""

    def __init__(self, ws_url: str) -> None:
        host_port, path = ws_url.removeprefix("ws://").split("/", 1)
        host, port = host_port.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=60)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            response += self.sock.recv(4096)
        if b" 101 " not in response.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"DevTools refused the WebSocket: {response[:200]!r}")
        self.buffer = response.split(b"\r\n\r\n", 1)[1]
        self.next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self._send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._receive())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def _send(self, text: str) -> None:
        payload, mask = text.encode(), os.urandom(4)
        n = len(payload)
        header = b"\x81" + (
            struct.pack("!B", 0x80 | n)
            if n < 126
            else struct.pack("!BH", 0x80 | 126, n)
            if n < 65536
            else struct.pack("!BQ", 0x80 | 127, n)
        )
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise RuntimeError("DevTools closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def _receive(self) -> str:
        parts = []
        while True:
            first, second = self._read(2)
            n = second & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            parts.append(self._read(n))
            if first & 0x80:  # FIN: the message is complete
                return b"".join(parts).decode()


def wait_until(check: Any, deadline_s: float, what: str) -> Any:
    """Poll `check` until it returns something truthy or the deadline passes."""
    end = time.monotonic() + deadline_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {deadline_s:.0f} s waiting for {what}")
        time.sleep(0.25)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def capture(devtools: DevTools, url: str, deadline_s: float = 60.0) -> bytes:
    """Load `url`, wait for the charts (or fail naming what is missing), return a PNG."""
    devtools.call("Page.navigate", url=url)
    missing: list[str] = []

    def charts_ready() -> bool:
        nonlocal missing
        missing = devtools.evaluate(CHECK_CHARTS) or []
        return not missing

    try:
        wait_until(charts_ready, deadline_s, "the overlaid loss curves")
    except TimeoutError:
        raise SystemExit(f"ui-check: {url} lacks {', '.join(missing)}") from None
    time.sleep(1.0)  # Plotly's transitions settle; the DOM already holds every curve
    clip = devtools.evaluate(MAIN_CONTENT)
    shot = devtools.call("Page.captureScreenshot", format="png", clip={**clip, "scale": 1})
    return base64.b64decode(shot["data"])


def stack(pngs: list[bytes], out: Path) -> None:
    """One picture: the views one above the other (matplotlib is a dependency already)."""
    import io

    import matplotlib.image as mpimg
    import numpy as np

    images = [mpimg.imread(io.BytesIO(p), format="png") for p in pngs]
    mpimg.imsave(out, np.concatenate(images, axis=0))


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__.split("\n\n")[1].strip(), file=sys.stderr)
        return 2
    out, urls = Path(argv[1]), argv[2:]
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("ui-check: chromium is not installed", file=sys.stderr)
        return 1
    port = free_port()
    with tempfile.TemporaryDirectory() as profile:
        browser = subprocess.Popen(
            [
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--remote-debugging-port={port}",
                f"--window-size={WIDTH},{HEIGHT}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:

            def page_target() -> str | None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=2) as r:
                        targets = json.load(r)
                except OSError:
                    return None
                pages = [t for t in targets if t.get("type") == "page"]
                return str(pages[0]["webSocketDebuggerUrl"]) if pages else None

            devtools = DevTools(wait_until(page_target, 30, "Chromium's DevTools endpoint"))
            devtools.call("Page.enable")
            devtools.call("Page.addScriptToEvaluateOnNewDocument", source=HIDE_SIDE_PANELS)
            devtools.call(
                "Emulation.setDeviceMetricsOverride",
                width=WIDTH,
                height=HEIGHT,
                deviceScaleFactor=1,
                mobile=False,
            )
            pngs = [capture(devtools, url) for url in urls]
        finally:
            browser.terminate()
            browser.wait(timeout=30)
    out.parent.mkdir(parents=True, exist_ok=True)
    stack(pngs, out)
    print(f"ui-check: {len(urls)} view(s) show the overlaid curves; saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
