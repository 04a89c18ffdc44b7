"""Every relative link in the project's Markdown (README.md, docs/, connectors/, benchmarks/README.md)
leads somewhere: the file or folder exists, and a ``#fragment`` names a heading of the target as
GitHub renders its anchors. A newcomer reading the docs on GitHub or in a checkout hits no dead link.
Links to other sites are not fetched (the tests run offline)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

REPO = Path(__file__).resolve().parent.parent
DOCS = sorted({REPO / "README.md", REPO / "benchmarks" / "README.md", *(REPO / "docs").glob("*.md"),
               *(REPO / "connectors").glob("**/README.md")})

LINK = re.compile(r"(?<!!)\[(?P<text>[^\]]*)\]\((?P<target><[^>]+>|[^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)\s*#*\s*$")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, inline code spans blanked: a link or a
    heading inside code is an example, not a link."""
    out, fenced = [], False
    for n, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append((n, re.sub(r"`[^`]*`", lambda m: " " * len(m.group()), line)))
    return out


def github_anchor(title: str) -> str:
    """The anchor GitHub gives a heading: link syntax reduced to its text, lower case, characters
    other than letters, digits, ``-``, ``_`` and spaces dropped, spaces made ``-``."""
    title = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", title).replace("`", "")
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor in ``path``; a repeated title gets ``-1``, ``-2``, ... as on GitHub."""
    seen: dict[str, int] = {}
    out = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else HEADING.match(line)
        if m:
            a = github_anchor(m.group("title"))
            n = seen.get(a, 0)
            seen[a] = n + 1
            out.add(a if n == 0 else f"{a}-{n}")
    return out


def dead_links(doc: Path, root: Path = REPO) -> list[str]:
    """``file:line: target (why)`` for each relative link of ``doc`` that leads nowhere (paths
    shown relative to ``root``)."""
    dead = []
    for n, line in prose_lines(doc.read_text(encoding="utf-8")):
        for m in LINK.finditer(line):
            target = m.group("target").strip("<>")
            if re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # http:, https:, mailto:, ...
                continue
            path, _, fragment = target.partition("#")
            dest = (doc.parent / path).resolve() if path else doc
            where = f"{os.path.relpath(doc, root)}:{n}: {target}"
            if not dest.exists():
                dead.append(f"{where} (no such file)")
            elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
                dead.append(f"{where} (no heading with that anchor in {os.path.relpath(dest, root)})")
    return dead


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(REPO)) for d in DOCS])
def test_every_relative_link_resolves(doc: Path) -> None:
    assert dead_links(doc) == []


def test_the_documents_checked_include_the_readme_and_every_doc() -> None:
    names = {str(d.relative_to(REPO)) for d in DOCS}
    assert {"README.md", "docs/api.md", "docs/demo.md"} <= names


words = st.text(st.characters(categories=("L", "N"), max_codepoint=0x24F), min_size=1, max_size=8)


@given(title=st.lists(words, min_size=1, max_size=5).map(" ".join), punct=st.sampled_from(["", ":", " (x)", "?"]))
def test_a_link_to_a_heading_resolves_and_a_link_to_a_missing_one_does_not(tmp_path_factory, title: str,
                                                                           punct: str) -> None:
    """The checker itself: a link to a written heading is found alive, one to a heading that is
    not there (or to a missing file) dead, whatever the title's letters."""
    d = tmp_path_factory.mktemp("docs")
    (d / "b.md").write_text(f"# Über_0\n\n## {title}{punct}\n\ntext\n", encoding="utf-8")
    anchor = github_anchor(title + punct)
    assert anchor in anchors(d / "b.md")
    doc = d / "a.md"
    doc.write_text(f"see [it](b.md#{anchor}), [top](b.md#über_0) and `[code](nowhere.md)`\n", encoding="utf-8")
    assert dead_links(doc, d) == []
    doc.write_text(f"see [it](b.md#{anchor}-missing) and [gone](c.md)\n", encoding="utf-8")
    assert [x.split(" (")[0] for x in dead_links(doc, d)] == [f"a.md:1: b.md#{anchor}-missing", "a.md:1: c.md"]


def test_every_doc_is_linked_from_the_readme() -> None:
    """A newcomer starts at README.md: every page in docs/ is reachable from it."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    linked = {(REPO / m.group("target").strip("<>").partition("#")[0]).resolve()
              for _, line in prose_lines(readme) for m in LINK.finditer(line)}
    unlinked = [d.name for d in sorted((REPO / "docs").glob("*.md")) if d.resolve() not in linked]
    assert unlinked == [], f"README.md links none of docs/{unlinked}"
