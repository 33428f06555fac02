"""What PayHero sends: its reference payloads (devstack/fixtures/payhero/) and callbacks built from them."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "payhero"
SAMPLE_ORDER_ID = "6751a3f2c9e77b0012ab34cd"


def payhero_fixture(name: str) -> dict[str, Any]:
    """One reference payload, by file name without .json."""
    payload: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return payload


def callback_body(order_id: str, kind: str = "success", amount: int = 1500) -> dict[str, Any]:
    """A PayHero callback from the reference fixtures, addressed to order_id."""
    body = copy.deepcopy(payhero_fixture(f"callback-{kind}"))
    if "response" in body:
        body["response"]["ExternalReference"] = order_id
        body["response"]["Amount"] = amount
    else:
        body["external_reference"] = order_id
        if "amount" in body:
            body["amount"] = amount
    return body
