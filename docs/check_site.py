"""Checks the built site (``make docs`` runs it after ``mkdocs build --strict``).

1. Every public name of ``ddpmkit.__all__`` has an anchor in the API reference: mkdocstrings writes
   ``id="ddpmkit.<module>.<Name>"`` on each object's heading; a name counts as documented when an
   anchor ending in ``.<Name>`` resolves (by import) to the very object ``ddpmkit.<Name>`` is, so
   neither a module of the same name (``ddpmkit.samplers.ddim``) nor a namesake elsewhere counts.
2. Every tutorial page (one per ``docs/tutorials/*.py``) shows at least one image produced by its
   execution (an output ``<img>`` of PNG data); a tutorial that raises has already failed the
   build (mkdocs-jupyter's ``allow_errors: false``).

Usage: python docs/check_site.py [SITE_DIR]  (default: site). Exits 1 and names what is missing.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
MISSING = object()
ANCHOR = re.compile(r'id="(ddpmkit(?:\.[A-Za-z0-9_]+)*)"')
OUTPUT_IMAGE = re.compile(r'<img[^>]*src="data:image/png;base64,')


def resolve(path: str) -> object:
    """The object at a dotted path: the longest importable module prefix, then attributes."""
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for part in parts[split:]:
            target = getattr(target, part, MISSING)
        return target
    return MISSING


def missing_api_names(site: Path) -> list[str]:
    import ddpmkit

    anchors: set[str] = set()
    for page in (site / "api").rglob("*.html"):
        anchors.update(ANCHOR.findall(page.read_text(encoding="utf-8")))
    missing = []
    for name in ddpmkit.__all__:
        public = getattr(ddpmkit, name)
        candidates = [anchor for anchor in anchors if anchor.endswith(f".{name}")]
        if not any(resolve(anchor) is public for anchor in candidates):
            missing.append(name)
    return missing


def tutorial_problems(site: Path) -> list[str]:
    problems = []
    sources = sorted((DOCS / "tutorials").glob("*.py"))
    if not sources:
        problems.append("no tutorials found in docs/tutorials")
    for source in sources:
        page = site / "tutorials" / source.stem / "index.html"
        if not page.is_file():
            problems.append(f"{source.name}: no page {page}")
            continue
        html = page.read_text(encoding="utf-8")
        if not OUTPUT_IMAGE.search(html):
            problems.append(f"{source.name}: the executed page shows no output image")
    return problems


def main(argv: list[str]) -> int:
    site = Path(argv[1] if len(argv) > 1 else "site")
    if not (site / "index.html").is_file():
        print(f"check_site: {site} is not a built site (run mkdocs build first)", file=sys.stderr)
        return 1
    missing = missing_api_names(site)
    problems = tutorial_problems(site)
    for name in missing:
        print(
            f"check_site: ddpmkit.{name} (in ddpmkit.__all__) has no anchor in the API reference "
            "(add a '::: ddpmkit.<module>.<name>' block to a page in docs/api/)",
            file=sys.stderr,
        )
    for problem in problems:
        print(f"check_site: tutorial {problem}", file=sys.stderr)
    if missing or problems:
        return 1
    import ddpmkit

    print(
        f"check_site: {len(ddpmkit.__all__)} public names documented, "
        f"{len(list((DOCS / 'tutorials').glob('*.py')))} tutorials with executed images"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
