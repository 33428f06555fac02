"""The payment page in headless Chromium behind a TCP proxy the test controls: dead connections, outages.

gunicorn holds a wait for 60 s here (EVENTI_WAIT_DEFAULT_SECONDS, the default), so the page's deadline per
hold is 70 s: a dead connection noticed sooner was noticed by the heartbeat watchdog (long-poll.js). The page
is opened through the proxy; PayHero's callback goes to gunicorn directly, as it would from PayHero while the
shopper's network is bad.
"""
import os
from collections.abc import Callable, Iterator

import pytest

from devstack.processes import ROOT, Gunicorn
from devstack.wait import eventually
from tests.browser.remote import RemoteBrowser
from tests.conftest import TEST_SECRET
from tests.support.api import Api
from tests.support.tcp_proxy import TcpProxy

OUTPUT = ROOT / "tests" / "output"
HOLD_SECONDS = 60


@pytest.fixture
def shop(start_gunicorn: Callable[..., Gunicorn]) -> Gunicorn:
    assert os.path.exists("/usr/bin/chromium"), "install Debian's chromium (make deps does)"
    return start_gunicorn(workers=1, EVENTI_WAIT_DEFAULT_SECONDS=HOLD_SECONDS)


@pytest.fixture
def proxy(shop: Gunicorn) -> Iterator[TcpProxy]:
    proxy = TcpProxy(("127.0.0.1", shop.port)).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def fake_clock() -> bool:
    """Whether the page runs on Playwright's clock (a test parametrizes it True to skip a wait)."""
    return False


@pytest.fixture
def payment_page(shop: Gunicorn, proxy: TcpProxy, fake_clock: bool) -> Iterator[tuple[RemoteBrowser, Api, str]]:
    """A pending order and its payment page, open in Chromium through the proxy."""
    api = Api(shop.base_url, TEST_SECRET)
    order_id, token = api.create_order()
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with RemoteBrowser(fake_clock=fake_clock) as browser:
        browser.open(f"{proxy.base_url}/orders/{order_id}/status?token={token}")
        eventually(lambda: proxy.requests("/wait"), what="the page's first wait")
        yield browser, api, order_id


@pytest.mark.parametrize("fake_clock", [True], ids=["page-clock"])
def test_a_held_wait_whose_connection_dies_silently_after_the_callback_is_noticed_by_its_heartbeats(
        payment_page: tuple[RemoteBrowser, Api, str], proxy: TcpProxy) -> None:
    browser, api, order_id = payment_page
    proxy.blackhole()  # no FIN, no RST: the held request and its answer vanish
    assert api.callback(order_id).status_code == 200
    eventually(lambda: any(c.fate == "dead" for c in proxy.requests("/wait")), what="a wait lost in the blackhole")
    proxy.restore()  # the network is fine again; the held connection stays silent for good
    browser.forward(11_000, until_console="connection silent")  # the watchdog's 11 s on the page's clock
    browser.wait("#view-success", timeout_ms=60_000)
    assert browser.text("#receipt")
    console = browser.console()
    assert any("connection silent for 11000 ms" in line for line in console)  # the watchdog, not the 70 s deadline
    assert not any("no answer within" in line for line in console)
    lost = [c for c in proxy.requests("/wait") if c.fate == "dead"]
    assert lost and all("/wait" in c.requests[-1][0] for c in lost)
    # Its answer was swallowed (the server answered "completed"), or its request never reached the server.
    assert all(c.dropped_down or not c.requests[-1][1] for c in lost)
    passed = [e for e in proxy.since_restore() if e[0] == "request" and "/wait" in e[2]]
    assert passed and all(e[3] for e in passed)  # asked again on a fresh connection, which got the answer
    assert {e[1] for e in passed}.isdisjoint(c.id for c in lost)  # never again over the connection that failed
    [answered] = [c for c in proxy.connections if c.id == passed[-1][1]]
    assert answered.sent_down > 0 and answered.opened_in == "pass"


@pytest.mark.parametrize("fake_clock", [True], ids=["page-clock"])
def test_when_every_connection_goes_silent_the_page_says_the_connection_is_lost_and_recovers(
        payment_page: tuple[RemoteBrowser, Api, str], proxy: TcpProxy) -> None:
    browser, api, order_id = payment_page
    browser.pause()  # the two watchdogs' 11 s and the backoff between them pass on the page's clock
    proxy.blackhole()  # the held wait and every pooled or new connection: nothing flows, nothing is refused
    browser.forward(11_000, until_console="connection silent")  # the held wait's watchdog
    browser.forward(1_000, until_console="Long polling attempt")  # the first backoff (at most 1 s): a new request
    browser.forward(11_000, until_console="connection silent")  # its watchdog: two silent connections in a row
    browser.wait("#offline-notice")
    assert browser.text("#offline-notice").startswith("You are offline: we will check your payment")
    assert browser.visible("#view-pending") and not browser.visible("#view-unknown")  # M-Pesa is not blamed
    assert sum("connection silent" in line for line in browser.console()) >= 2
    browser.pause(False)
    assert api.callback(order_id).status_code == 200  # paid while the network is gone
    proxy.restore()  # no "online" event: the page finds the network back by itself
    browser.wait("#view-success", timeout_ms=60_000)
    assert not browser.visible("#offline-notice")
    passed = [e for e in proxy.since_restore() if e[0] == "request" and "/wait" in e[2]]
    assert passed and all(e[3] for e in passed)


@pytest.mark.parametrize("browser_knows", [True, False], ids=["offline-event", "resets-only"])
def test_an_outage_shows_the_offline_notice_and_the_page_resumes_when_the_network_returns(
        payment_page: tuple[RemoteBrowser, Api, str], proxy: TcpProxy, browser_knows: bool) -> None:
    browser, api, order_id = payment_page
    assert not browser.visible("#offline-notice")
    proxy.cut()  # the held request is reset, and every new connection too
    if browser_knows:
        browser.offline(True)  # navigator.onLine false and the "offline" event
    browser.wait("#offline-notice")
    assert browser.text("#offline-notice").startswith("You are offline: we will check your payment")
    assert browser.visible("#view-pending")
    browser.screenshot(OUTPUT / f"status-offline-{'event' if browser_knows else 'resets'}.png")
    assert api.callback(order_id).status_code == 200  # paid during the outage
    proxy.restore()
    if browser_knows:
        browser.offline(False)  # the "online" event: the page asks again at once
    browser.wait("#view-success", timeout_ms=60_000)
    assert not browser.visible("#offline-notice")
    assert any(c.fate == "cut" for c in proxy.requests("/wait"))  # the outage cut the held wait
    passed = [e for e in proxy.since_restore() if e[0] == "request" and "/wait" in e[2]]
    assert passed and all(e[3] for e in passed)


def test_after_two_minutes_of_errors_the_page_says_so_and_resumes_when_the_network_returns(
        shop: Gunicorn, proxy: TcpProxy) -> None:
    api = Api(shop.base_url, TEST_SECRET)
    order_id, token = api.create_order()
    with RemoteBrowser(fake_clock=True) as browser:  # the page's clock skips through the backoffs
        browser.open(f"{proxy.base_url}/orders/{order_id}/status?token={token}")
        eventually(lambda: proxy.requests("/wait"), what="the page's first wait")
        proxy.cut()  # navigator.onLine stays true: the server is unreachable, the budget runs
        lines = []
        while not any("giving up" in line for line in lines) and len(lines) < 40:
            lines.append(browser.forward(16_000, until_console="Long polling:"))
        assert lines[-1].startswith("Long polling: giving up after 1") and " s of errors: " in lines[-1]
        browser.wait("#view-unknown")
        assert browser.text("#unknown-reason").startswith("We could not reach the server")
        assert browser.text("#view-unknown h1") == "Connection lost"  # our connection, not M-Pesa
        browser.screenshot(OUTPUT / "status-gave-up.png")
        assert api.callback(order_id).status_code == 200
        proxy.restore()
        browser.offline(True)
        browser.offline(False)  # the "online" event: the page starts a new wait by itself
        browser.wait("#view-success")
    assert len(lines) > 6  # more tries than the old budget of 6 errors allowed
