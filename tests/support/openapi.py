"""The routes' declarations as plain dicts, read from a bare app holding every route (no settings, no clients)."""
from functools import cache
from typing import Any

from flask import Flask

from eventi.web import register_routes
from eventi.web.openapi import operations


@cache
def declared_operations() -> dict[str, dict[str, dict[str, Any]]]:
    """Endpoint -> method -> the fields its route declares (Operation.as_dict)."""
    app = Flask("eventi-routes")
    register_routes(app)
    return {endpoint: {method: op.as_dict() for method, op in methods.items()}
            for endpoint, methods in operations(app).items()}
