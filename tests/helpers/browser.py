"""Headless Chromium (Debian's package) driven over the Chrome DevTools protocol.

No browser download, no driver binary: Chromium is started with a free debugging port and a
fresh profile, and one page is driven over its WebSocket. Console errors, uncaught exceptions
and failed loads are collected, so a test can assert there were none.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--hide-scrollbars", "--mute-audio", "--no-default-browser-check",
    "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
]  # fmt: skip


def chromium_available() -> bool:
    return os.path.exists(CHROMIUM)


class Browser:
    """One headless Chromium with one page. Use as a context manager."""

    def __init__(self, width: int = 1600, height: int = 1000, timeout_s: float = 30.0):
        import websocket

        self.timeout_s = timeout_s
        self._profile = tempfile.mkdtemp(prefix="wsidist-chromium-")
        self._proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={self._profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        port = self._debug_port()
        targets = self._json(f"http://127.0.0.1:{port}/json/list")
        page = next(t for t in targets if t.get("type") == "page")
        self._ws = websocket.create_connection(
            page["webSocketDebuggerUrl"], timeout=timeout_s, suppress_origin=True
        )
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride",
                  width=width, height=height, deviceScaleFactor=1, mobile=False)  # fmt: skip

    def _debug_port(self) -> int:
        deadline = time.monotonic() + self.timeout_s
        assert self._proc.stderr is not None
        while time.monotonic() < deadline:
            line = self._proc.stderr.readline()
            if not line and self._proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self._proc.returncode}")
            found = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            if found:
                return int(found.group(1))
        raise RuntimeError("chromium did not report its debugging port")

    @staticmethod
    def _json(url: str) -> Any:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.loads(resp.read())

    # -- protocol -----------------------------------------------------------------------------
    def send(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self._ws.recv())
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def evaluate(self, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} raised: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float | None = None) -> Any:
        """Poll a JS expression until it is truthy; returns its value."""
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except RuntimeError:  # e.g. no document.body yet while a page is loading
                value = None
            if value:
                return value
            time.sleep(0.05)
        raise TimeoutError(f"timed out waiting for {expression}")

    # -- actions ------------------------------------------------------------------------------
    def goto(self, url: str, ready: str = "document.readyState === 'complete'") -> float:
        """Navigate and wait until ``ready`` holds; returns the seconds it took."""
        started = time.perf_counter()
        self.send("Page.navigate", url=url)
        time.sleep(0.05)
        self.wait_for(ready)
        return time.perf_counter() - started

    def click(self, selector: str) -> None:
        self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")

    def type_into(self, selector: str, text: str) -> None:
        """Focus an input, clear it and type ``text`` as keyboard input."""
        self.evaluate(
            f"(e => {{ e.focus(); e.select && e.select(); }})(document.querySelector({json.dumps(selector)}))"
        )
        self.send("Input.insertText", text=text)

    def screenshot(self, path: str | Path) -> Path:
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=False)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    def full_screenshot(self, path: str | Path) -> Path:
        """The whole page, not only the viewport."""
        metrics = self.send("Page.getLayoutMetrics")
        size = metrics["cssContentSize"]
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"],
                               "scale": 1})  # fmt: skip
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    def drain(self) -> None:
        """Read the events that arrived since the last command."""
        self.evaluate("1")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads seen so far."""
        self.drain()
        found = []
        for ev in self.events:
            method, p = ev["method"], ev.get("params", {})
            if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                found.append("console: " + " ".join(str(a.get("value", a.get("description")))
                                                    for a in p.get("args", [])))  # fmt: skip
            elif method == "Runtime.exceptionThrown":
                found.append("exception: " + json.dumps(p.get("exceptionDetails", {}))[:500])
            elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                entry = p["entry"]
                found.append(f"log: {entry.get('text')} {entry.get('url', '')}")
            elif method == "Network.loadingFailed" and not p.get("canceled"):
                found.append(f"network: {p.get('errorText')}")
        return found

    def requests(self, pattern: str = "") -> list[str]:
        """URLs of the requests sent so far that contain ``pattern``."""
        self.drain()
        return [ev["params"]["request"]["url"] for ev in self.events
                if ev["method"] == "Network.requestWillBeSent"
                and pattern in ev["params"]["request"]["url"]]  # fmt: skip

    def close(self) -> None:
        try:
            self._ws.close()
        finally:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def artefact_dir(*parts: str) -> Path:
    """Where tests put screenshots for people to look at (env WSIDIST_ARTEFACTS overrides)."""
    from tests.helpers.paths import REPO

    path = Path(os.environ.get("WSIDIST_ARTEFACTS") or REPO / "test-artefacts", *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def dialogs(browser: Browser) -> list[str]:
    """Messages of JavaScript dialogs (alert, confirm) that a page tried to open."""
    browser.drain()
    return [ev["params"].get("message", "") for ev in browser.events
            if ev["method"] == "Page.javascriptDialogOpening"]  # fmt: skip
