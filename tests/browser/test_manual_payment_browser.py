"""Manual payment in headless Chromium: the Paybill block once the prompt expired, then paid by a C2B confirmation.

gunicorn pushes to the simulator, which never calls back for a phone ending in 5; the prompt lives 5 s
(EVENTI_PROMPT_SECONDS), so the page turns to "not heard yet" with the Paybill, the account number and the
amount in seconds. The simulator then pays the Paybill and posts M-Pesa's C2B confirmation to gunicorn: the
page's long poll shows the payment, with the confirmation's receipt.
"""
import os
from collections.abc import Iterator

import pytest

from devstack.payhero_simulator import PayHeroSimulator
from devstack.processes import ROOT
from tests.browser import axe
from tests.browser.remote import RemoteBrowser
from tests.conftest import TEST_SECRET
from tests.support.api import Api, phone_ending

OUTPUT = ROOT / "tests" / "output"
PAYBILL = "600100"
TOKEN = "browser-c2b-token-0123456789abcdefgh"


@pytest.fixture(scope="module")
def simulator() -> Iterator[PayHeroSimulator]:
    with PayHeroSimulator(delay=1) as server:
        yield server


@pytest.mark.parametrize("viewport", [(390, 844), (1280, 800)], ids=["phone", "desktop"])
def test_after_the_prompt_expires_the_page_offers_the_paybill_and_turns_paid_on_its_confirmation(
        start_gunicorn, simulator, viewport) -> None:
    assert os.path.exists("/usr/bin/chromium"), "install Debian's chromium (make deps does)"
    shop = start_gunicorn(workers=1, **simulator.settings, EVENTI_PROMPT_SECONDS=5, EVENTI_PROMPT_HELP_SECONDS=5,
                          EVENTI_MANUAL_PAYBILL=PAYBILL, EVENTI_C2B_TOKEN=TOKEN)
    api = Api(shop.base_url, TEST_SECRET)
    order_id, token = api.create_order(phone=phone_ending(5), quantity=2)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    name = f"manual-payment-{viewport[0]}"
    with RemoteBrowser(viewport=viewport) as browser:
        browser.open(f"{shop.base_url}/orders/{order_id}/status?token={token}")
        browser.wait("#manual-pay", timeout_ms=30_000)
        assert browser.visible("#view-unknown")
        paybill, account, amount = (browser.text(f"#manual-{part}") for part in ("paybill", "account", "amount"))
        assert (paybill, amount) == (PAYBILL, "3000") and account is not None and len(account) == 8
        violations = browser.axe()
        assert violations == [], axe.describe(violations)
        browser.screenshot(OUTPUT / f"{name}-offered.png")

        paid = simulator.pay_bill(f"{shop.base_url}/api/c2b/confirmation?token={TOKEN}", PAYBILL, account, 3000)
        assert [a["status"] for a in paid["answers"]] == [200]
        assert paid["answers"][0]["body"]["outcome"] == "completed"
        browser.wait("#view-success", timeout_ms=30_000)
        assert browser.text("#receipt") == paid["TransID"]
        assert not browser.visible("#manual-pay")  # paid: status.js hid the Paybill block
        violations = browser.axe()
        assert violations == [], axe.describe(violations)
        browser.screenshot(OUTPUT / f"{name}-paid.png")
    assert api.status(order_id, token).json()["mpesaReceipt"] == paid["TransID"]
