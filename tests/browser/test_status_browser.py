"""The payment page in headless Chromium (Debian's, driven by Playwright) through the simulator's outcomes,
at a phone's and a desktop's size: the DOM and the tab title at each state; screenshots in tests/output/."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.processes import ROOT
from devstack.simulator import PayHeroSimulator
from tests.support.api import phone_ending
from tests.support.events import event_spec, save_events

OUTPUT = ROOT / "tests" / "output"
DRIVER = Path(__file__).with_name("status_drive.py")
SUPPORT = "call 0700 000 000 or write to help@example.com"
VIEWPORTS = [(390, 844), (1280, 800)]


@pytest.fixture(scope="module")
def simulator():
    """Calls back 4 s after a push; a push to a number ending in 9 answers after 1.5 s (past the 1 s timeout)."""
    server = PayHeroSimulator(delay=4, slow_seconds=1.5).start()
    yield server
    server.stop()


@pytest.fixture
def seen(start_gunicorn, simulator, settings):
    """Every state of the page, as the driver saw it in both viewports."""
    assert os.path.exists("/usr/bin/chromium"), "install Debian's chromium (make deps does)"
    save_events(settings["MONGO_URI"], event_spec("status-page"))
    server = start_gunicorn(workers=1, EVENTI_PUSH_TIMEOUT=1, EVENTI_PROMPT_SECONDS=14, EVENTI_PROMPT_HELP_SECONDS=5,
                            EVENTI_SUPPORT_CONTACT=SUPPORT, **simulator.settings)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    phones = {"no_callback": phone_ending(5), "paid": phone_ending(0), "wrong_pin": phone_ending(4),
              "cancelled": phone_ending(1), "uncertain": phone_ending(9)}
    spec = {"base_url": server.base_url, "event_id": "status-page", "phones": phones, "output": str(OUTPUT),
            "viewports": VIEWPORTS}
    env = {k: v for k, v in os.environ.items() if k != "PLAYWRIGHT_BROWSERS_PATH"}
    done = subprocess.run([sys.executable, str(DRIVER), json.dumps(spec)], capture_output=True, text=True,
                          timeout=240, env=env, cwd=str(ROOT))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), phones


def test_the_payment_page_through_every_outcome_at_phone_and_desktop_size(seen):
    result, phones = seen
    masked = "07•• ••• " + phones["no_callback"][-3:]
    for size in (f"{w}x{h}" for w, h in VIEWPORTS):
        states = result[size]
        waiting = states["waiting"]
        reference = waiting["created"]["orderId"][-8:].upper()
        first = waiting["first"]
        assert (first["title"], first["views"]) == ("Approve on your phone · eventi", ["pending"]), size
        assert f"Prompt sent to {masked} for KES 3,000" in first["text"]
        assert "This page changes by itself" in first["text"] and reference in first["text"]
        assert waiting["help_hidden_at_first"] and "Didn't get a prompt?" not in first["text"]
        assert waiting["countdown_first"] != waiting["countdown_later"]  # it ticks
        assert "Didn't get a prompt?" in waiting["with_help"]["text"] and "Change the number" in waiting["with_help"]["text"]
        expired = waiting["expired"]
        assert (expired["title"], expired["views"]) == ("Waiting for M-Pesa · eventi", ["unknown"]), size
        assert "We have not heard from M-Pesa yet" in expired["text"] and "do not pay again" in expired["text"]
        assert f"{reference}: {SUPPORT}." in expired["text"].replace("\n", " ")
        assert "PIN" not in expired["text"] and waiting["countdown_at_expiry"] == "0:00"
        after = waiting["after_bfcache"]  # reloaded from the server: still not heard, still no PIN
        assert (after["title"], after["views"]) == ("Waiting for M-Pesa · eventi", ["unknown"]) and "PIN" not in after["text"]

        paid = states["paid"]["final"]
        assert (paid["title"], paid["views"]) == ("Paid · eventi", ["success"]), size
        assert "KES 3,000 paid for 2 × Regular, Test event status-page." in paid["text"]
        assert "on their way to wanjiru@example.com" in paid["text"]
        assert states["paid"]["focused"] == "Payment received" and states["paid"]["announce"].startswith("Payment received")
        assert states["paid"]["created"]["orderId"][-8:].upper() in paid["text"]

        wrong_pin = states["wrong_pin"]["final"]
        assert (wrong_pin["title"], wrong_pin["views"]) == ("Payment not completed · eventi", ["failure"]), size
        assert "Wrong M-Pesa PIN: try again with the right PIN." in wrong_pin["text"] and SUPPORT in wrong_pin["text"]

        cancelled = states["cancelled"]["final"]
        assert (cancelled["title"], cancelled["views"]) == ("Payment cancelled · eventi", ["failure"]), size
        assert states["cancelled"]["focused"] == "Payment cancelled"
        assert "You cancelled the request" in cancelled["text"]

        uncertain = states["uncertain"]
        assert uncertain["created"]["pushState"] == "uncertain"
        assert uncertain["first"]["views"] == ["pending"]
        assert "If a prompt appears, approve it: don't pay twice." in uncertain["first"]["text"]
        assert (uncertain["final"]["title"], uncertain["final"]["views"]) == ("Paid · eventi", ["success"]), size

        for name in ("paid", "wrong_pin", "cancelled", "uncertain"):
            assert "Total\nKES 3,000" in states[name]["final"]["text"] or "Total\tKES 3,000" in states[name]["final"]["text"]
    narrow = result["narrow"]
    assert narrow["scrollWidth"] <= 320 and narrow["referenceLines"] and set(narrow["referenceLines"]) == {1}
    for name in ("waiting", "waiting-help", "expired", "uncertain-waiting", "uncertain-paid", "paid", "wrong_pin",
                 "cancelled"):
        assert (OUTPUT / f"status-{name}-390x844.png").stat().st_size > 0
