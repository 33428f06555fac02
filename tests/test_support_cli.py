"""`order show` and `order find`: what support sees of an order, masked as the logs are."""
import json
import random

from devstack.payhero_payloads import callback_body
from tests.support.api import order_body, order_fields


def unique_phone():
    return "07" + "".join(random.choice("0123456789") for _ in range(7)) + "5"


def paid_twice(client, runtime, phone):
    created = client.post("/api/orders", json=order_body(phone=phone, email="wanjiru.kamau@example.com")).json
    order_id = created["orderId"]
    token = runtime.tokens.callback_token(order_id)
    for _ in range(2):  # the second delivery is a duplicate
        answer = client.post("/api/payhero/callback", query_string={"token": token}, json=callback_body(order_id))
        assert answer.status_code == 200
    return order_id


def test_order_show_prints_the_order_its_claim_and_every_delivery_masked(app, client, runtime):
    phone = unique_phone()
    order_id = paid_twice(client, runtime, phone)
    result = app.test_cli_runner().invoke(args=["order", "show", order_id])
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith(f"order {order_id}  completed  1500 KES")
    assert "status claim: completed" in out and out.count("  callback  ") == 2
    assert out.count("<- decided the status") == 1
    first, second = [line for line in out.splitlines() if "  callback  " in line]
    assert "decided the status" in first and "decided the status" not in second
    for secret in (phone, "254" + phone[1:], "wanjiru.kamau@", "+254712345678"):
        assert secret not in out
    assert f"***{phone[-3:]}" in out and "w***@example.com" in out

    as_json = json.loads(app.test_cli_runner().invoke(args=["order", "show", order_id, "--json"]).output)
    times = [event["receivedAt"] for event in as_json["deliveries"]]
    assert times == sorted(times) and len(times) == 2
    assert as_json["statusClaim"]["eventId"] == as_json["deliveries"][0]["id"]
    assert as_json["order"]["phone"] == f"***{phone[-3:]}"


def test_order_show_of_an_unknown_order_fails(app):
    result = app.test_cli_runner().invoke(args=["order", "show", "6751a3f2c9e77b0012ab34cd"])
    assert result.exit_code != 0 and "no order 6751a3f2c9e77b0012ab34cd" in result.output


def test_order_find_lists_a_numbers_orders_newest_first_in_any_spelling(app, client, runtime):
    phone = unique_phone()
    older = client.post("/api/orders", json=order_body(phone=phone)).json["orderId"]
    newer = paid_twice(client, runtime, phone)
    for spelling in (phone, "+254" + phone[1:], "254" + phone[1:], f"{phone[:4]}-{phone[4:7]}-{phone[7:]}"):
        result = app.test_cli_runner().invoke(args=["order", "find", "--phone", spelling])
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert [line.split()[0] for line in lines] == [newer, older]
        assert "completed" in lines[0] and "pending" in lines[1]
    refused = app.test_cli_runner().invoke(args=["order", "find", "--phone", "12345"])
    assert refused.exit_code != 0 and "Enter a Kenyan mobile number, like 0712 345 678." in refused.output


def test_order_show_and_find_take_the_short_reference_the_page_shows(app, client, runtime):
    order_id = client.post("/api/orders", json=order_body(phone=unique_phone())).json["orderId"]
    reference = order_id[-8:].upper()
    assert runtime.store.get_order(order_id)["reference"] == reference
    for spelling in (reference, reference.lower()):
        shown = app.test_cli_runner().invoke(args=["order", "show", spelling])
        assert shown.exit_code == 0 and shown.output.startswith(f"order {order_id}  pending"), shown.output
    found = app.test_cli_runner().invoke(args=["order", "find", "--reference", reference])
    assert found.exit_code == 0 and [line.split()[0] for line in found.output.splitlines()] == [order_id]
    twin = str(runtime.orders.create(order_fields(phone="254" + unique_phone()[1:]))["_id"])
    runtime.store.set_fields(twin, {"reference": reference})  # two orders may share 8 characters: support picks one
    both = app.test_cli_runner().invoke(args=["order", "show", reference])
    assert both.exit_code != 0 and f"2 orders have reference {reference}" in both.output
    assert order_id in both.output and twin in both.output
    unknown = app.test_cli_runner().invoke(args=["order", "show", "ABCDEF12"])
    assert unknown.exit_code != 0 and "no order ABCDEF12" in unknown.output
    assert app.test_cli_runner().invoke(args=["order", "find"]).exit_code != 0


HOSTILE = "\x1b]0;owned\x07\x1b[2J\x9b31mWanjiru\u202etxt.exe\u2028\x85next"
"""A stored name (from before names were checked, or written around the API) that would retitle the
window, clear the screen, recolour, reverse text and break lines in a support person's terminal."""
RAW = {"\x1b", "\x07", "\x9b", "\u202e", "\u2028", "\x85"}


def test_order_show_and_find_escape_what_a_stored_order_holds(app, client, runtime):
    phone = unique_phone()
    order_id = paid_twice(client, runtime, phone)
    runtime.store.set_fields(order_id, {"name": HOSTILE, "failureReason": "Declined\x1b[8m hidden"})
    shown = app.test_cli_runner().invoke(args=["order", "show", order_id])
    assert shown.exit_code == 0, shown.output
    assert not RAW & set(shown.output)
    assert r"\x1b]0;owned\x07\x1b[2J\x9b31mWanjiru\u202etxt.exe\u2028\x85next" in shown.output
    assert r"Declined\x1b[8m hidden" in shown.output

    as_json = app.test_cli_runner().invoke(args=["order", "show", order_id, "--json"])
    assert not RAW & set(as_json.output)
    assert json.loads(as_json.output)["order"]["name"] == HOSTILE  # escaped as JSON, so still the same value

    runtime.store.set_fields(order_id, {"mpesaReceipt": None, "eventId": "ev\x1b[31m"})
    found = app.test_cli_runner().invoke(args=["order", "find", "--phone", phone])
    assert found.exit_code == 0 and not RAW & set(found.output)
    assert r"ev\x1b[31m" in found.output and r"Declined\x1b[8m hidden" in found.output


def test_order_show_keeps_names_in_other_scripts_readable(app, client, runtime):
    order_id = client.post("/api/orders", json=order_body(phone=unique_phone(), name="Njeri wa Mũthoni 👩‍🎤")).json["orderId"]
    shown = app.test_cli_runner().invoke(args=["order", "show", order_id])
    assert "Njeri wa Mũthoni 👩\\u200d🎤" in shown.output  # the joiner is invisible: support sees it named
    as_json = app.test_cli_runner().invoke(args=["order", "show", order_id, "--json"])
    assert json.loads(as_json.output)["order"]["name"] == "Njeri wa Mũthoni 👩‍🎤"
