"""Blueprint for the API's readers: the OpenAPI document and the same as a self-contained HTML page."""
import json
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template_string

from . import openapi
from .declare import declare, text

bp = Blueprint("apidocs", __name__, url_prefix="/api")


def document() -> dict[str, Any]:
    """The OpenAPI document of this app, built once."""
    cache = current_app.extensions.setdefault("eventi_openapi", {})
    if "document" not in cache:
        cache["document"] = openapi.build(current_app)
    built: dict[str, Any] = cache["document"]
    return built


@bp.get("/openapi.json")
@declare("This OpenAPI 3 document", tags=["docs"], responses={200: {
    "description": "OpenAPI 3.0 document", "content": {"application/json": {"schema": {"type": "object"}}}}})
def openapi_json() -> Response:
    """The OpenAPI 3 document, generated from the route declarations and the request schemas."""
    return jsonify(document())


@bp.get("/docs")
@declare("This document as a self-contained HTML page", tags=["docs"],
         responses={200: text("text/html", "HTML page", "<!doctype html>...")})
def docs_page() -> str:
    """The OpenAPI document rendered as HTML: no script, no external resource."""
    doc = document()
    return render_template_string(PAGE, doc=doc, pretty=lambda value: json.dumps(value, indent=2, ensure_ascii=False),
                                  resolve=lambda r: _resolve(doc, r))


def _resolve(doc: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    """A documented response, or the shared one its $ref names."""
    if "$ref" in response:
        shared: dict[str, Any] = doc["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
        return shared
    return response


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ doc.info.title }} API</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;max-width:64rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}
h2{margin-top:2.5rem;border-bottom:1px solid #ddd}
.op{border:1px solid #ddd;border-radius:6px;margin:1.2rem 0;padding:.2rem 1rem 1rem}
.m{display:inline-block;min-width:3.5rem;text-align:center;font-weight:700;color:#fff;border-radius:4px;padding:0 .4rem}
.get{background:#2f6fb3}.post{background:#2f8a4a}
code,pre{font:13px/1.35 ui-monospace,monospace;background:#f5f5f5}pre{padding:.6rem;overflow:auto;border-radius:4px}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #eee;text-align:left;padding:.2rem .4rem;vertical-align:top}
.tag{color:#666;font-size:.85em}
</style></head><body>
<h1>{{ doc.info.title }} API <small class="tag">OpenAPI {{ doc.openapi }} &middot; <a href="openapi.json">openapi.json</a></small></h1>
<p>{{ doc.info.description }}</p>
{% for path, operations in doc.paths.items() %}{% for method, op in operations.items() %}
<div class="op" id="{{ op.operationId }}">
<h3><span class="m {{ method }}">{{ method|upper }}</span> <code>{{ path }}</code> &mdash; {{ op.summary }}
 <span class="tag">{{ (op.tags or [])|join(", ") }}</span></h3>
{% if op.description %}<p>{{ op.description }}</p>{% endif %}
{% if op.parameters %}<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>required</th><th>schema</th><th>example</th></tr>
{% for p in op.parameters %}<tr><td><code>{{ p.name }}</code></td><td>{{ p.in }}</td><td>{{ "yes" if p.required else "no" }}</td>
<td><code>{{ pretty(p.schema) }}</code>{% if p.description %}<br>{{ p.description }}{% endif %}</td><td><code>{{ p.example }}</code></td></tr>{% endfor %}
</table>{% endif %}
{% if op.requestBody %}{% for media, body in op.requestBody.content.items() %}<h4>Request body ({{ media }})</h4>
<pre>{{ pretty(body.schema) }}</pre>{% for name, ex in (body.examples or {}).items() %}<p>Example: {{ name }}</p><pre>{{ pretty(ex.value) }}</pre>{% endfor %}
{% endfor %}{% endif %}
<h4>Responses</h4>
{% for status, r in op.responses.items() %}{% set r = resolve(r) %}<p><b>{{ status }}</b> {{ r.description }}</p>
{% if r.headers %}<p class="tag">headers: {% for h in r.headers %}<a href="#header-{{ h }}"><code>{{ h }}</code></a> {% endfor %}</p>{% endif %}
{% for media, body in (r.content or {}).items() %}<p class="tag">{{ media }}: <code>{{ pretty(body.schema) }}</code></p>
{% for name, ex in (body.examples or {}).items() %}<pre>{{ pretty(ex.value) }}</pre>{% endfor %}
{% if body.example is defined %}<pre>{{ body.example }}</pre>{% endif %}{% endfor %}{% endfor %}
</div>{% endfor %}{% endfor %}
<h2 id="problems">Problem types</h2>
<p>Every error is <code>application/problem+json</code>; its <code>type</code> is <code>/api/docs#problem-</code> and its
<code>error</code> code: a link to its entry here.</p>
<table><tr><th>error / type</th><th>status</th><th>title</th><th>when</th></tr>
{% for code, p in doc["x-problem-types"].items() %}<tr id="problem-{{ code }}"><td><code>{{ code }}</code></td><td>{{ p.status }}</td>
<td>{{ p.title }}</td><td>{{ p.description }}</td></tr>{% endfor %}</table>
<h2>Response headers</h2>
<table>{% for name, h in doc.components.headers.items() %}<tr id="header-{{ name }}"><td><code>{{ name }}</code></td>
<td>{{ h.description }}</td></tr>{% endfor %}</table>
<h2>Schemas</h2>
{% for name, schema in doc.components.schemas.items() %}<h3 id="schema-{{ name }}">{{ name }}</h3>
{% if schema.description %}<p>{{ schema.description }}</p>{% endif %}
<table><tr><th>field</th><th>required</th><th>schema</th></tr>{% for field, prop in (schema.properties or {}).items() %}
<tr><td><code>{{ field }}</code></td><td>{{ "yes" if field in (schema.required or []) else "no" }}</td><td><code>{{ pretty(prop) }}</code></td></tr>{% endfor %}</table>
{% endfor %}
</body></html>
"""  # noqa: E501 (HTML lines: wrapping them would change the page)
