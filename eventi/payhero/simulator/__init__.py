"""A local PayHero simulator: `python -m eventi.payhero.simulator` (see docs/payments.md, the simulator)."""
from .app import create_app

__all__ = ["create_app"]
