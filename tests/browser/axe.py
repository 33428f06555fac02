"""axe-core (npm, tests/browser/package.json) run inside a Playwright page: WCAG 2.1 A and AA rules.

The pages' Content-Security-Policy allows no inline script, so axe is not added as a <script>: its
source is evaluated through the DevTools protocol (page.evaluate), which the policy does not govern,
and the page under test keeps its real policy.
"""
from pathlib import Path

AXE_JS = Path(__file__).with_name("node_modules") / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def source() -> str:
    """axe.min.js as `make deps` installed it (`npm ci` in tests/browser/)."""
    if not AXE_JS.exists():
        raise FileNotFoundError(f"{AXE_JS} is missing: run `make deps` (or `npm ci --prefix tests/browser`)")
    return AXE_JS.read_text()


def audit(page, axe_source: str | None = None) -> list[dict]:
    """The page's WCAG 2.1 A/AA violations as axe reports them, each trimmed to id, impact, help and the
    offending nodes (selector and axe's failure summary)."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(axe_source or source())
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})", TAGS)
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [{"target": n["target"], "summary": n.get("failureSummary", "")} for n in v["nodes"]]}
            for v in result["violations"]]


def describe(violations: list[dict]) -> str:
    """One line per violation and node, for an assertion message."""
    return "\n".join(f"{v['id']} ({v['impact']}): {v['help']} at {n['target']}: {n['summary']}"
                     for v in violations for n in v["nodes"])
