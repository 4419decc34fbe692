"""Captions made from class names: a template per caption, ``{name}`` and ``{label}`` filled in."""

from __future__ import annotations

from collections.abc import Sequence


def fill(template: str, names: Sequence[str], label: int) -> str:
    """One caption: ``template`` with ``{name}`` and ``{label}`` of class ``label``."""
    return template.format(name=names[label], label=label)


def all_captions(templates: Sequence[str], names: Sequence[str]) -> list[str]:
    """Every caption of every class, class by class, template by template."""
    return [fill(t, names, k) for k in range(len(names)) for t in templates]
