"""The user guide's examples run, and its pages link up.

In docs/*.md, blocks fenced ```python are runnable and blocks fenced ```py are excerpts
(settings snippets, code from the reader's own project) that are not run. Each page's
runnable blocks are executed in order in one namespace, as a reader would type them into
``manage.py shell``; a block written as an interactive session (``>>>`` prompts) runs as a
doctest in that namespace, so its printed results are checked too.

Every block runs inside its own captured on-commit scope: the callbacks it queues (paydesk's
signals) fire when the block ends, as they would when a request's transaction commits, and a
later block can check what the receivers did. A failing block is reported at its own lines
of the Markdown file.
"""

from __future__ import annotations

import doctest
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from paydesk import signals
from paydesk.providers import registry

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(DOCS.rglob("*.md"))  # docs/providers/*.md included
PAGE_IDS = [page.relative_to(DOCS).as_posix() for page in PAGES]

# An opening fence (possibly indented, e.g. inside a list) and its matching closing fence.
_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
_LINK = re.compile(r"\]\((?P<target>[^)#\s]*)(?:#(?P<anchor>[^)\s]+))?\)")


def runnable_blocks(text: str) -> list[tuple[int, str]]:
    """``(first line number, code)`` of each ```python block, in order."""
    blocks = []
    for match in _FENCE.finditer(text):
        if match.group("info").strip() == "python":
            first_line = text.count("\n", 0, match.start("body")) + 1
            blocks.append((first_line, textwrap.dedent(match.group("body"))))
    return blocks


def run_block(code: str, namespace: dict[str, object], page: Path, first_line: int) -> None:
    if code.lstrip().startswith(">>>"):
        test = doctest.DocTestParser().get_doctest(
            code, namespace, f"{page.name}:{first_line}", str(page), first_line - 1
        )
        report: list[str] = []
        runner = doctest.DocTestRunner()
        runner.run(test, out=report.append, clear_globs=False)
        namespace.update(test.globs)  # the DocTest ran in a copy
        if runner.failures:
            pytest.fail("".join(report), pytrace=False)
        return
    # Pad so that tracebacks point at the block's own lines in the Markdown file.
    source = "\n" * (first_line - 1) + code
    exec(compile(source, str(page), "exec"), namespace)


def _links(page: Path) -> list[tuple[str, str]]:
    """``(target, anchor)`` of each Markdown link outside code blocks."""
    prose = _FENCE.sub("", page.read_text(encoding="utf-8"))
    return [(m.group("target"), m.group("anchor") or "") for m in _LINK.finditer(prose)]


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower-cased, punctuation dropped, spaces to hyphens."""
    prose = _FENCE.sub("", page.read_text(encoding="utf-8"))
    headings = re.findall(r"^#{1,6}[ \t]+(.+?)[ \t]*$", prose, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


@pytest.fixture
def isolated_receivers() -> Iterator[None]:
    """Undo what a page connects: signal receivers and registered provider classes."""
    paydesk_signals = [
        value for value in vars(signals).values() if isinstance(value, signals.Signal)
    ]
    saved = {id(sig): list(sig.receivers) for sig in paydesk_signals}
    registered = dict(registry._registered)
    yield
    for sig in paydesk_signals:
        with sig.lock:
            sig.receivers[:] = saved[id(sig)]
            sig.sender_receivers_cache.clear()
    registry._registered.clear()
    registry._registered.update(registered)
    registry.providers.reset()


def test_the_guide_has_an_index() -> None:
    assert DOCS / "index.md" in PAGES, "docs/index.md is the guide's table of contents"


@pytest.mark.django_db
@pytest.mark.usefixtures("isolated_receivers")
@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_runnable_examples(page: Path, django_capture_on_commit_callbacks) -> None:
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for first_line, code in runnable_blocks(page.read_text(encoding="utf-8")):
        with django_capture_on_commit_callbacks(execute=True):
            run_block(code, namespace, page, first_line)


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_page_is_linked_from_index(page: Path) -> None:
    name = page.relative_to(DOCS).as_posix()
    if name != "index.md":
        linked = {target for target, _ in _links(DOCS / "index.md")}
        assert name in linked, f"docs/index.md has no link to {name}; add it"


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_links_between_pages_resolve(page: Path) -> None:
    for target, anchor in _links(page):
        if target and (":" in target or not target.endswith(".md")):
            continue  # an external link, or not a page of this guide
        linked = (page.parent / target).resolve() if target else page
        assert linked.exists(), f"{page.name} links to {target}, which does not exist"
        if anchor:
            assert anchor in _anchors(linked), (
                f"{page.name} links to {linked.name}#{anchor}, a heading it does not have"
            )
