"""One payment end to end against a running stack (`make run`): create an order, hold /wait,
let the simulator pay, print one summary line. Exit status 0 only when the order completed."""
import argparse
import os
import random
import sys
import time
from urllib.parse import urlsplit

import requests


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    bind = os.environ.get("EVENTI_BIND", "127.0.0.1:8000").replace("0.0.0.0", "127.0.0.1")
    parser.add_argument("--url", default=os.environ.get("EVENTI_URL", f"http://{bind}"))
    parser.add_argument("--simulator", default=os.environ.get(
        "SIMULATOR_URL", f"http://127.0.0.1:{os.environ.get('EVENTI_SIMULATOR_PORT', '8010')}"))
    parser.add_argument("--deadline", type=float, default=120, help="seconds before giving up")
    args = parser.parse_args()
    try:
        line, ok = run(args)
    except (requests.RequestException, KeyError, ValueError) as exc:
        line, ok = f"e2e: FAILED {exc.__class__.__name__}: {exc}", False
    print(line, flush=True)
    return 0 if ok else 1


def run(args):
    started = time.monotonic()
    phone = "07" + "".join(random.choice("0123456789") for _ in range(7)) + "0"  # last digit 0: the simulator pays
    # One Regular ticket of the demo event (eventi/demo_event.json, loaded by make run): the server prices it.
    body = {"eventId": "demo", "ticketTypeId": "regular", "quantity": 1, "phone": phone, "email": "e2e@example.com",
            "name": "E2E Test"}
    created = requests.post(f"{args.url}/api/orders", json=body, timeout=30)
    made = 1
    if created.status_code != 201:
        return f"e2e: FAILED creating the order: HTTP {created.status_code} {created.text.strip()}", False
    order = created.json()
    deadline = started + args.deadline
    answer = None
    while time.monotonic() < deadline:
        hold = max(1, min(60, int(deadline - time.monotonic())))
        made += 1
        wait = urlsplit(order["waitUrl"])  # absolute on PUBLIC_BASE_URL; asked here at --url
        response = requests.get(f"{args.url}{wait.path}?{wait.query}", params={"timeout": hold}, timeout=hold + 30)
        answered_at = time.time()
        if response.status_code != 200:
            return f"e2e: FAILED waiting: HTTP {response.status_code} {response.text.strip()}", False
        answer = response.json()
        if answer["final"]:
            break
    if not answer or not answer["final"]:
        return f"e2e: FAILED orderId={order['orderId']} requests={made} no final status within {args.deadline:.0f}s", False
    record = requests.get(f"{args.simulator}/simulator/pushes", params={"external_reference": order["orderId"]},
                          timeout=10).json()
    deliveries = record["pushes"][0]["deliveries"] if record["pushes"] else []
    lag = f"{answered_at - deliveries[0]['sentAt']:.3f}s" if deliveries else "n/a"
    ok = answer["paymentStatus"] == "completed"
    return (f"e2e: {'ok' if ok else 'FAILED'} orderId={order['orderId']} requests={made} callback_to_answer={lag} "
            f"final={answer['paymentStatus']} receipt={answer.get('mpesaReceipt')} simulator_delay={record['delay']}s "
            f"total={time.monotonic() - started:.2f}s"), ok


if __name__ == "__main__":
    sys.exit(main())
