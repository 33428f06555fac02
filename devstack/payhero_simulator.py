"""The PayHero simulator (`python -m eventi.payhero.simulator`) as a real process on a free port."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import requests

from devstack.processes import ROOT, Process, Server, free_port

SIMULATOR_TOKEN = "c2ltdWxhdG9yOnRlc3Q="
CHANNEL_ID = 911


class PayHeroSimulator(Server):
    """The simulator with its callback delay and slow-push time; `settings` points eventi at it."""

    def __init__(self, delay: float = 3600.0, slow_seconds: float = 30.0, token: str = SIMULATOR_TOKEN,
                 log_path: Path | None = None) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.token = token
        argv = [sys.executable, "-m", "eventi.payhero.simulator", "--port", str(self.port), "--delay", str(delay),
                "--slow", str(slow_seconds)]
        self.process = Process("payhero-simulator", argv, env={"PAYHERO_AUTH_TOKEN": token, "PATH": "/usr/bin:/bin"},
                               cwd=str(ROOT), log_path=log_path)

    def start(self) -> PayHeroSimulator:
        self.process.start(ready=r"PayHero simulator listening", timeout=30)
        return self

    @property
    def settings(self) -> dict[str, Any]:
        """eventi settings that send every STK push here."""
        return {"PAYHERO_BASE_URL": self.base_url, "PAYHERO_AUTH_TOKEN": self.token, "PAYHERO_CHANNEL_ID": CHANNEL_ID}

    def pushes(self, order_id: str) -> list[dict[str, Any]]:
        """What the simulator recorded for one order (its /simulator/pushes view)."""
        answer = requests.get(f"{self.base_url}/simulator/pushes", params={"external_reference": order_id}, timeout=10)
        pushes: list[dict[str, Any]] = answer.json()["pushes"]
        return pushes

    def pay_bill(self, confirmation_url: str, paybill: str, account: str, amount: int, deliveries: int = 1,
                 receipt: str | None = None) -> dict[str, Any]:
        """A shopper pays the Paybill from the M-Pesa menu: the simulator posts M-Pesa's C2B confirmation to
        confirmation_url; its TransID and eventi's answers."""
        answer = requests.post(f"{self.base_url}/simulator/c2b", timeout=60, json={
            "confirmation_url": confirmation_url, "paybill": paybill, "account": account, "amount": amount,
            "deliveries": deliveries, "receipt": receipt})
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result
