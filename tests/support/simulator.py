"""The PayHero simulator as a real process on a free port."""
import sys

import requests

from tests.support.processes import ROOT, Process, free_port

SIMULATOR_TOKEN = "c2ltdWxhdG9yOnRlc3Q="
CHANNEL_ID = 911


class PayHeroSimulator:
    """`python -m eventi.simulator` with its callback delay; `settings` points eventi at it."""

    def __init__(self, delay=3600.0, slow_seconds=30.0, token=SIMULATOR_TOKEN):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.token = token
        argv = [sys.executable, "-m", "eventi.simulator", "--port", str(self.port), "--delay", str(delay),
                "--slow", str(slow_seconds)]
        self.process = Process("payhero-simulator", argv, env={"PAYHERO_AUTH_TOKEN": token, "PATH": "/usr/bin:/bin"},
                               cwd=str(ROOT))

    def start(self):
        self.process.start(ready=r"PayHero simulator listening", timeout=30)
        return self

    def stop(self):
        self.process.stop()

    @property
    def settings(self):
        """eventi settings that send every STK push here."""
        return {"PAYHERO_BASE_URL": self.base_url, "PAYHERO_AUTH_TOKEN": self.token, "PAYHERO_CHANNEL_ID": CHANNEL_ID}

    def pushes(self, order_id):
        """What the simulator recorded for one order (its /simulator/pushes view)."""
        return requests.get(f"{self.base_url}/simulator/pushes", params={"external_reference": order_id},
                            timeout=10).json()["pushes"]
