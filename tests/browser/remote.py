"""Debian's headless Chromium in a process of its own (Playwright), driven step by step by a test.

The test process is gevent-patched and Playwright's sync API must not run there, so the browser runs as
``python tests/browser/remote.py``: one JSON command per line on stdin, one JSON answer per line on stdout.
``RemoteBrowser`` is the test's side.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class BrowserError(AssertionError):
    """A step failed in the browser (a selector never matched, a navigation failed)."""


class RemoteBrowser:
    """One page in a Chromium process of its own; each method is one step, answered when done."""

    def __init__(self, viewport: tuple[int, int] = (390, 844), fake_clock: bool = False) -> None:
        """fake_clock: the page's Date and timers are Playwright's clock (time flows, forward() skips ahead)."""
        self._stderr = tempfile.TemporaryFile(mode="w+")
        env = {k: v for k, v in os.environ.items() if k != "PLAYWRIGHT_BROWSERS_PATH"}
        self._proc = subprocess.Popen([sys.executable, __file__, json.dumps({"viewport": viewport, "fake_clock": fake_clock})],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                      text=True, bufsize=1, env=env, cwd=str(ROOT))
        self._call({"do": "ready"})

    def __enter__(self) -> RemoteBrowser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self, url: str) -> None:
        self._call({"do": "open", "url": url})

    def wait(self, selector: str, timeout_ms: int = 30_000, state: str = "visible") -> None:
        """Until an element matching selector is in `state` (visible, hidden, attached)."""
        self._call({"do": "wait", "selector": selector, "timeout_ms": timeout_ms, "state": state})

    def visible(self, selector: str) -> bool:
        return self._call({"do": "visible", "selector": selector})["value"]

    def text(self, selector: str) -> str | None:
        return self._call({"do": "text", "selector": selector})["value"]

    def offline(self, value: bool) -> None:
        """Playwright's context.set_offline: navigator.onLine and the offline/online events follow."""
        self._call({"do": "offline", "value": value})

    def event(self, kind: str) -> None:
        """Fire a window event (focus, online) or document's visibilitychange in the page, as the browser would."""
        self._call({"do": "event", "kind": kind})

    def forward(self, ms: int, until_console: str, timeout_ms: int = 30_000) -> str:
        """Move the page's clock ms ahead, firing its due timers; answer the first console line containing
        until_console printed from then on."""
        return self._call({"do": "forward", "ms": ms, "until_console": until_console, "timeout_ms": timeout_ms})["value"]

    def pause(self, paused: bool = True) -> None:
        """Stop the page's clock (a moment ahead of its now), or let it run again: while it stands still, the page's
        timers fire only when forward() moves it."""
        self._call({"do": "pause", "paused": paused})

    def axe(self) -> list[dict]:
        """The page's WCAG 2.1 A/AA violations (tests/browser/axe.py)."""
        return self._call({"do": "axe"})["value"]

    def screenshot(self, path: str | Path) -> None:
        self._call({"do": "screenshot", "path": str(path)})

    def console(self) -> list[str]:
        """The page's console lines so far."""
        return self._call({"do": "console"})["value"]

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._call({"do": "quit"})
            except BrowserError:
                pass
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def _call(self, command: dict) -> dict:
        self._proc.stdin.write(json.dumps(command) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            self._stderr.seek(0)
            raise BrowserError(f"the browser process exited ({self._proc.wait()}):\n{self._stderr.read()[-3000:]}")
        answer = json.loads(line)
        if "error" in answer:
            raise BrowserError(f"{command}: {answer['error']}")
        return answer


def serve(options: dict) -> None:
    """The browser's side: run the commands read from stdin until "quit"."""
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(ROOT))
    from tests.browser.axe import audit

    console = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        width, height = options["viewport"]
        context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1)
        page = context.new_page()
        page.on("console", lambda m: console.append(m.text))
        if options["fake_clock"]:
            page.clock.install()

        def forward(command: dict) -> str:
            wanted = command["until_console"]
            with page.expect_console_message(lambda m: wanted in m.text, timeout=command["timeout_ms"]) as message:
                page.clock.fast_forward(command["ms"])
            return message.value.text

        def pause(command: dict) -> None:
            if command["paused"]:
                page.clock.pause_at(page.evaluate("Date.now()") / 1000 + 0.5)  # it cannot go back; in seconds
            else:
                page.clock.resume()

        steps = {
            "ready": lambda c: None,
            "open": lambda c: page.goto(c["url"]) and None,
            "wait": lambda c: page.wait_for_selector(c["selector"], state=c["state"], timeout=c["timeout_ms"]) and None,
            "visible": lambda c: page.is_visible(c["selector"]),
            "text": lambda c: page.text_content(c["selector"]),
            "offline": lambda c: context.set_offline(c["value"]),
            "screenshot": lambda c: page.screenshot(path=c["path"], full_page=True) and None,
            "console": lambda c: list(console),
            "axe": lambda c: audit(page),
            "forward": forward,
            "pause": pause,
            "event": lambda c: page.evaluate(
                "k => (k === 'visibilitychange' ? document : window).dispatchEvent(new Event(k))", c["kind"]) and None,
            "quit": lambda c: None,
        }
        for line in sys.stdin:
            command = json.loads(line)
            try:
                answer = {"value": steps[command["do"]](command)}
            except Exception as exc:  # reported to the test, which fails with it
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(answer), flush=True)
            if command["do"] == "quit":
                break
        browser.close()


if __name__ == "__main__":
    serve(json.loads(sys.argv[1]))
