"""Cross-origin use of the API by a browser app on another origin (flask-cors), for EVENTI_CORS_ORIGINS only.

Only the shopper's API routes answer CORS: not the PayHero callback (a server calls it), not the
pages, ops or metrics routes. Origins are exact (no wildcard, no credentials): an origin not listed
gets no Access-Control-* header, so its browser refuses to hand the answer to its script.
"""
from collections.abc import Iterable

from flask import Flask
from flask_cors import CORS

API_ROUTES = r"^/api/(orders|events)(/.*)?$"
ALLOWED_HEADERS = ["Content-Type", "Idempotency-Key", "X-Request-ID"]
EXPOSED_HEADERS = ["X-Request-ID", "Retry-After", "Idempotent-Replayed", "Location", "Allow"]
"""Readable by the app's script (Cache-Control and Content-Type are readable without being listed)."""


def init_app(app: Flask, origins: Iterable[str]) -> None:
    """Add CORS (preflights included) to the API routes when origins are configured."""
    if not origins:
        return
    CORS(app, resources={API_ROUTES: {"origins": list(origins)}}, methods=["GET", "POST", "OPTIONS"],
         allow_headers=ALLOWED_HEADERS, expose_headers=EXPOSED_HEADERS, supports_credentials=False, max_age=600)
