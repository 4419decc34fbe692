"""MkDocs hooks of the ddpmkit site (mkdocs.yml ``hooks:``).

- Times each tutorial's execution (mkdocs-jupyter runs a notebook while rendering its page,
  between the ``page_markdown`` and ``page_content`` events) and logs the times after the build.
- Replaces ``<!-- ddpmkit:config-keys -->`` in a page with tables of every ``--section.key``
  option of a run, built from the same dataclass fields and help texts as ``ddpmkit train --help``.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

log = logging.getLogger("mkdocs.hooks.ddpmkit")
CONFIG_MARKER = "<!-- ddpmkit:config-keys -->"
_started: dict[str, float] = {}
_seconds: dict[str, float] = {}


def _is_tutorial(page: Any) -> bool:
    return page.file.src_uri.startswith("tutorials/") and page.file.src_uri.endswith(".py")


def on_pre_build(config: Any) -> None:
    _started.clear()
    _seconds.clear()


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if _is_tutorial(page):
        _started[page.file.src_uri] = time.perf_counter()
    if CONFIG_MARKER in markdown:
        markdown = markdown.replace(CONFIG_MARKER, config_tables())
    return markdown


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri in _started:
        seconds = time.perf_counter() - _started.pop(page.file.src_uri)
        _seconds[page.file.src_uri] = seconds
        log.info("executed %s in %.1f s", page.file.src_uri, seconds)
    return html


def on_post_build(config: Any) -> None:
    if _seconds:
        times = ", ".join(f"{uri.split('/')[-1]} {s:.1f} s" for uri, s in sorted(_seconds.items()))
        log.info("tutorials executed in %.1f s: %s", sum(_seconds.values()), times)


def config_tables() -> str:
    """Markdown: one table per section of ``RunConfig``, from ``ddpmkit train``'s own flags."""
    from ddpmkit.config.parsing import add_config_flags
    from ddpmkit.config.schema import RunConfig

    parser = argparse.ArgumentParser(add_help=False)
    add_config_flags(parser, RunConfig, title="run")
    blocks = []
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if a.option_strings]
        if not actions:
            continue
        rows = ["| key | value | meaning (default) |", "| --- | --- | --- |"]
        for action in actions:
            key = action.option_strings[0].removeprefix("--")
            metavar = str(action.metavar)  # a code span: its pipes need no escaping
            rows.append(f"| `{key}` | `{metavar}` | {_cell(action.help)} |")
        blocks.append(f"### {_cell(group.title)}\n\n" + "\n".join(rows))
    return "\n\n".join(blocks)


def _cell(text: Any) -> str:
    """Text for a table cell: no pipes, no line breaks, no emphasis, no HTML."""
    text = str(text or "").replace("%%", "%")
    for raw, escaped in (("|", "\\|"), ("\n", " "), ("*", "\\*"), ("<", "&lt;")):
        text = text.replace(raw, escaped)
    return text
