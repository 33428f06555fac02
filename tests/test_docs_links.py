"""The README and docs/ stay navigable: every relative link names a file that exists and, with a #fragment,
a heading of that file; every repository path the docs cite in backticks exists."""
import re

import pytest

from devstack.processes import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
CITED_PATH = re.compile(r"`((?:eventi|tests|devstack|bench|scripts|docker|docs)/[\w./-]+\.\w+)`")


def anchors(path):
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    found = set()
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def links(doc):
    for target in LINK.findall(doc.read_text()):
        if not re.match(r"^[a-z]+:", target):
            yield target


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_relative_link_reaches_a_file_and_heading(doc):
    broken = []
    for target in links(doc):
        file_part, _, fragment = target.partition("#")
        path = (doc.parent / file_part).resolve() if file_part else doc
        if not path.exists():
            broken.append(target)
        elif fragment and path.suffix == ".md" and fragment not in anchors(path):
            broken.append(target)
    assert broken == [], f"{doc.name}: links to nothing: {broken}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_cited_repository_file_exists(doc):
    cited = {p for p in CITED_PATH.findall(doc.read_text()) if not p.startswith("bench/results/")}  # git-ignored
    missing = sorted(p for p in cited if not (ROOT / p).exists())
    assert missing == [], f"{doc.name} cites files that do not exist: {missing}"


def test_the_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250
