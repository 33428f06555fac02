"""A local PayHero simulator: `python -m eventi.simulator` (see the README's simulator section)."""
from .app import create_app

__all__ = ["create_app"]
