"""Captions made from class names (a template per caption, ``{name}`` and ``{label}`` filled in),
and their token ids: int64 (B, L), 0 = padding; an all-zero row is the empty prompt ∅."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

_WORD = re.compile(r"[^\W_]+")


def _words(text: str) -> list[str]:
    """The lower-cased words of ``text`` (runs of letters and digits)."""
    return _WORD.findall(text.lower())


def fill(template: str, names: Sequence[str], label: int) -> str:
    """One caption: ``template`` with ``{name}`` and ``{label}`` of class ``label``."""
    return template.format(name=names[label], label=label)


def all_captions(templates: Sequence[str], names: Sequence[str]) -> list[str]:
    """Every caption of every class, class by class, template by template."""
    return [fill(t, names, k) for k in range(len(names)) for t in templates]


class Captions:
    """The token ids of every (class, template) caption, looked up per batch on the device, and
    the tokenizer that turns free prompts into ids of the same kind."""

    def __init__(
        self,
        templates: Sequence[str],
        names: Sequence[str],
        tokenize: Callable[[Sequence[str]], Tensor],
    ) -> None:
        self.templates, self.names, self.tokenize = tuple(templates), tuple(names), tokenize
        ids = tokenize(all_captions(self.templates, self.names))  # (K·M, L)
        self.table = ids.reshape(len(self.names), len(self.templates), -1)  # (K, M, L)

    def caption(self, label: int, template: int = 0) -> str:
        """The text of class ``label``'s caption number ``template``."""
        return fill(self.templates[template], self.names, label)

    def tokens(self, labels: Tensor, choice: Tensor | None = None) -> Tensor:
        """(B, L) ids of the captions of ``labels`` (B,): template ``choice`` (B,) of each, or the
        first template."""
        table = self.table.to(labels.device)
        choice = torch.zeros_like(labels) if choice is None else choice.to(labels.device)
        return table[labels.long(), choice.long()]

    @property
    def words(self) -> tuple[str, ...]:
        """The words of the captions the model was trained on, sorted."""
        return tuple(
            sorted({w for c in all_captions(self.templates, self.names) for w in _words(c)})
        )

    def prompt(self, text: str, count: int) -> Tensor:
        """(count, L) ids of one prompt, for ``count`` samples; words the training captions
        never held are named in a warning (the model never learned what they mean)."""
        known = set(self.words)
        unknown = [word for word in _words(text) if word not in known]
        if unknown:
            warnings.warn(
                f"prompt {text!r}: {', '.join(map(repr, unknown))} never appeared in the "
                f"captions this model was trained on, so it never learned them; its words are: "
                f"{', '.join(self.words)}",
                stacklevel=3,
            )
        return self.tokenize([text]).expand(count, -1).clone()

    def draw_template(self, uniform: Tensor) -> Tensor:
        """Template indices from uniform draws in [0, 1) (one per row)."""
        return (uniform * len(self.templates)).long().clamp(max=len(self.templates) - 1)
