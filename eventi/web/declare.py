"""@declare: what a route reads and answers, said once beside it.

The decorator parses the declared inputs before the view runs (headers, then the query string, then the
body: the order the errors are answered in) and keeps the declaration, from which eventi/web/openapi.py builds
the route's operation in the OpenAPI document.
"""
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from flask import current_app, request
from marshmallow import Schema

from ..errors import ValidationFailed
from ..runtime import current_runtime
from ..schemas import schema_for
from .common import json_body, load

View = TypeVar("View", bound=Callable[..., Any])


@dataclass(frozen=True)
class Header:
    """A request header a route reads: checked before the body, passed to the view as `arg`, documented."""

    name: str
    arg: str
    pattern: re.Pattern[str]
    error: str
    description: str
    example: str

    def load(self) -> str | None:
        """The header's value (None when absent); a 400 naming the header when it does not match."""
        value = request.headers.get(self.name)
        if value is not None and not self.pattern.match(value):
            raise ValidationFailed(details={self.name: [self.error]})
        return value

    def parameter(self) -> dict[str, Any]:
        """The OpenAPI parameter."""
        return {"in": "header", "name": self.name, "required": False, "example": self.example,
                "description": self.description, "schema": {"type": "string", "pattern": self.pattern.pattern}}


@dataclass(frozen=True)
class Operation:
    """One route's declaration. `responses`: status -> a documented body (ok(), text()); `errors`: the error
    codes it answers (its error class gives its status and message; eventi/web/openapi.py's ERROR_ANSWERS says when)."""

    summary: str
    tags: list[str]
    description: str | None = None
    params: list[dict[str, Any]] = field(default_factory=list)
    headers: list[Header] = field(default_factory=list)
    query: type[Schema] | None = None
    query_examples: dict[str, Any] | None = None
    body: type[Schema] | dict[str, Any] | None = None
    body_examples: dict[str, Any] | None = None
    form: dict[str, Any] | None = None
    responses: dict[int, dict[str, Any]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    security: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The fields that are set, by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) not in (None, [], {})}


_DECLARED: dict[Callable[..., Any], Operation] = {}


def declare(summary: str, *, tags: list[str], description: str | None = None,
            params: list[dict[str, Any]] | None = None, headers: list[Header] | None = None,
            query: type[Schema] | None = None, query_examples: dict[str, Any] | None = None,
            body: type[Schema] | dict[str, Any] | None = None, body_examples: dict[str, Any] | None = None,
            form: dict[str, Any] | None = None, responses: dict[int, dict[str, Any]] | None = None,
            errors: list[str] | None = None,
            security: str | None = None) -> Callable[[View], View]:
    """Declare a route's inputs and answers; place it under the blueprint's route decorator.

    The view receives each header as its `arg`, the loaded query string as `query` (first value of each
    key) and, when `body` is a Schema class, the loaded JSON body as `body`. A `body` given as a dict (an
    OpenAPI schema, such as PayHero's two formats) is documented only: the view reads the body itself; so is
    `form` (an OpenAPI schema of a form-encoded body, for pages that work without JavaScript).
    Path parameters whose converter documents itself (converters.py) need no entry in `params`.
    """
    operation = Operation(summary, tags, description, params or [], headers or [], query, query_examples, body,
                          body_examples, form, responses or {}, errors or [], security)

    def decorator(view: View) -> View:
        @functools.wraps(view)
        def parsed(*args: Any, **kwargs: Any) -> Any:
            for header in operation.headers:
                kwargs[header.arg] = header.load()
            if operation.query is not None:
                kwargs["query"] = load(_instance(operation.query), request.args.to_dict(flat=True))
            if isinstance(operation.body, type):
                kwargs["body"] = load(_instance(operation.body), json_body())
            return view(*args, **kwargs)

        _DECLARED[parsed] = operation
        return parsed  # type: ignore[return-value]  # functools.wraps: same call signature as view

    return decorator


def declared(view: Callable[..., Any]) -> Operation | None:
    """The Operation a view function declares, or None."""
    return _DECLARED.get(view)


def ok(schema: type[Schema], examples: dict[str, Any], description: str = "OK",
       headers: tuple[str, ...] = ()) -> dict[str, Any]:
    """A documented JSON answer: its schema, named examples and the response headers it carries (by name, from
    eventi/web/openapi.py's HEADERS; X-Request-ID goes without saying)."""
    return {"description": description, "schema": schema, "examples": examples, "headers": headers}


def text(media_type: str, description: str, example: str) -> dict[str, Any]:
    """A documented answer that is not JSON (an HTML page, Prometheus text)."""
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}, "example": example}}}


def _instance(schema: type[Schema]) -> Schema:
    """One instance per app and schema class (a setting may shape it: schemas.schema_for)."""
    cache: dict[type[Schema], Schema] = current_app.extensions.setdefault("eventi_schemas", {})
    instance = cache.get(schema)
    if instance is None:
        instance = cache[schema] = schema_for(schema, current_runtime().settings.wait_max_seconds)
    return instance
