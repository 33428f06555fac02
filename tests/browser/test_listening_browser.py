"""The payment page listens for as long as the order can still change, and says so; then it stops and says
what to do, and a change after that shows when the shopper comes back to the page (Chromium, Playwright's clock).

gunicorn holds each wait 1 s, the prompt lives 5 s and reconcile gives up at once, so the page listens for the
prompt's life and one cron sweep (payment_page.CRON_SWEEP_SECONDS): the fast holds run in real time, each pause
of the slow cadence is skipped on the page's clock.
"""
from collections.abc import Callable
from typing import Any

from devstack.processes import Gunicorn
from devstack.wait import eventually
from eventi.config import env_name
from eventi.runtime import current_runtime
from tests.browser.remote import RemoteBrowser
from tests.conftest import TEST_SECRET
from tests.support.api import Api

NO_CALLBACK_PHONE = "254712345675"  # the simulator settles it (paid) and never calls back


def test_a_long_wait_slows_down_then_stops_saying_so_and_a_later_reconcile_shows_on_focus(
        start_gunicorn: Callable[..., Gunicorn], quick_simulator: Any, make_app: Callable[..., Any]) -> None:
    simulator = {env_name(name): value for name, value in quick_simulator.settings.items()}
    shop = start_gunicorn(workers=1, EVENTI_WAIT_DEFAULT_SECONDS=1, EVENTI_PROMPT_SECONDS=5, EVENTI_PROMPT_HELP_SECONDS=2,
                          EVENTI_RECONCILE_AFTER_SECONDS=0, EVENTI_RECONCILE_GIVE_UP_SECONDS=0, **simulator)
    order_id, token = Api(shop.base_url, TEST_SECRET).create_order(phone=NO_CALLBACK_PHONE)
    with RemoteBrowser(fake_clock=True) as browser:
        browser.open(f"{shop.base_url}/orders/{order_id}/status?token={token}")
        browser.wait("#view-unknown")  # the prompt expired: not heard yet, and listening
        assert "we keep checking" in browser.text("#unknown-reason")
        assert not browser.visible("#check-again")

        def pauses() -> int:
            return sum("asking again in" in line for line in browser.console())

        seen = 0
        while not browser.visible("#check-again"):
            eventually(lambda seen=seen: pauses() > seen or browser.visible("#check-again"), 60, "a pause or the stop")
            if browser.visible("#check-again"):
                break
            seen = pauses()
            assert "we keep checking" in browser.text("#unknown-reason")  # listening while it says so
            browser.forward(70_000, until_console="Long polling")  # the pause, skipped
            assert seen < 12, "the page never stopped listening"
        assert seen >= 2  # it listened on at the slow cadence after the fast holds
        console = browser.console()
        assert any(line.startswith("Long polling stopped: no final status") for line in console)
        assert browser.text("#unknown-reason").startswith("We have stopped checking for now.")
        assert browser.text("#announce").endswith(browser.text("#unknown-reason"))
        holds = sum("Long polling attempt" in line for line in console)

        runtime = current_runtime(make_app(**quick_simulator.settings, RECONCILE_AFTER_SECONDS=0))
        report = runtime.reconciler().run_once()  # the sweep after the page's last hold: the payment is found
        assert report.applied.get("completed") == 1
        assert browser.text("#unknown-reason").startswith("We have stopped checking")  # it was not listening
        assert sum("Long polling attempt" in line for line in browser.console()) == holds

        browser.event("focus")  # the shopper comes back to the tab: no click
        browser.wait("#view-success")
        assert browser.text("#receipt")
