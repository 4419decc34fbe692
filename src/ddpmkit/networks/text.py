"""Text encoders for text-conditioned denoising: a word tokenizer, a small transformer trained with
the U-Net and an optional frozen, local CLIP text encoder.

Prompts travel through the library where class labels go, as int64 token ids of shape (B, L) with
0 = padding; a row of zeros is the empty prompt ∅, so classifier-free guidance with
``null_label=0`` needs no change. An encoder maps the ids to a context (B, L+1, width) and a key
mask (B, L+1), True where a position may be attended: it prepends its own start position, which is
always attendable, so that even ∅ has something to attend to. The U-Net reads the context with
cross-attention (Rombach et al. 2022, §3.3).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from transformers import CLIPTextModel

__all__ = [
    "ClipTextEncoder",
    "TextEncoder",
    "TextEncoderConfig",
    "TextTransformer",
    "WordTokenizer",
    "build_text_encoder",
    "tokenizer_for",
]

_WORD = re.compile(r"[^\W_]+")  # a run of letters and digits


def _words(text: str) -> list[str]:
    """The lower-cased words of ``text``, split on anything that is not a letter or a digit."""
    return _WORD.findall(text.lower())


def _check_vocabulary(vocabulary: Sequence[str], where: str) -> None:
    """ValueError unless the vocabulary holds distinct words as ``_words`` produces them."""
    bad = [word for word in vocabulary if _words(word) != [word]]
    if bad:
        raise ValueError(
            f"{where} must hold lower-case words of letters and digits only, got {bad[:5]}"
        )
    if len(set(vocabulary)) != len(vocabulary):
        raise ValueError(f"{where} holds repeated words")


class WordTokenizer:
    """Whole-word tokenizer: id 0 is padding, 1 an unknown word, 2… the vocabulary's words."""

    PAD = 0
    UNKNOWN = 1

    def __init__(self, vocabulary: Sequence[str], max_length: int) -> None:
        _check_vocabulary(vocabulary, "WordTokenizer vocabulary")
        if max_length <= 0:
            raise ValueError(f"WordTokenizer max_length must be positive, got {max_length}")
        self.vocabulary = tuple(vocabulary)
        self.max_length = max_length
        self._ids = {word: i + 2 for i, word in enumerate(self.vocabulary)}

    @property
    def vocab_size(self) -> int:
        """Number of ids: the vocabulary plus padding and the unknown word."""
        return len(self.vocabulary) + 2

    @staticmethod
    def vocabulary_of(captions: Iterable[str]) -> tuple[str, ...]:
        """The sorted distinct words of some captions."""
        return tuple(sorted({word for caption in captions for word in _words(caption)}))

    def encode(self, prompts: Sequence[str]) -> Tensor:
        """Token ids (B, max_length) int64, zero-padded; ValueError for a prompt that is too long."""
        tokens = torch.zeros(len(prompts), self.max_length, dtype=torch.int64)
        for row, prompt in enumerate(prompts):
            words = _words(prompt)
            if len(words) > self.max_length:
                raise ValueError(
                    f"prompt {prompt!r} has {len(words)} words, more than "
                    f"max_length={self.max_length}"
                )
            ids = [self._ids.get(word, self.UNKNOWN) for word in words]
            tokens[row, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
        return tokens


@dataclass(frozen=True)
class TextEncoderConfig:
    """Hyper-parameters of the text encoder (``build_text_encoder``)."""

    kind: Literal["builtin", "clip"] = field(
        default="builtin",
        metadata={
            "help": "builtin: a small transformer trained with the U-Net; clip: a frozen local "
            "CLIP text encoder (clip_path)"
        },
    )
    vocabulary: tuple[str, ...] = field(
        default=(),
        metadata={"help": "words of the builtin tokenizer; filled from the captions by training"},
    )
    max_length: int = field(default=8, metadata={"help": "tokens per prompt (without the start)"})
    width: int = field(
        default=64, metadata={"help": "builtin: width of the context (clip: the model's)"}
    )
    layers: int = field(default=2, metadata={"help": "builtin: transformer layers"})
    heads: int = field(default=4, metadata={"help": "builtin: attention heads; must divide width"})
    clip_path: str | None = field(
        default=None,
        metadata={
            "help": "clip: local folder with a Hugging Face CLIPTextModel and CLIPTokenizer "
            "(save_pretrained of both)"
        },
    )

    def __post_init__(self) -> None:
        if self.kind not in ("builtin", "clip"):
            raise ValueError(
                f"TextEncoderConfig.kind must be 'builtin' or 'clip', got {self.kind!r}"
            )
        for name in ("max_length", "width", "layers", "heads"):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"TextEncoderConfig.{name} must be positive, got {getattr(self, name)}"
                )
        if self.width % self.heads != 0:
            raise ValueError(
                f"TextEncoderConfig.width={self.width} is not divisible by heads={self.heads}"
            )
        _check_vocabulary(self.vocabulary, "TextEncoderConfig.vocabulary")
        if self.kind == "clip" and self.clip_path is None:
            raise ValueError("TextEncoderConfig.clip_path must be set for kind='clip'")


class TextTransformer(nn.Module):
    """The built-in text encoder: a pre-LayerNorm Transformer encoder (Vaswani et al. 2017) over
    a learned start vector and the word embeddings, with learned positions, trained jointly with
    the U-Net as in Rombach et al. (2022), §3.3.

    Padding positions are masked out of every attention, so a prompt's context at its real
    positions does not depend on how much padding follows it.
    """

    def __init__(self, config: TextEncoderConfig) -> None:
        super().__init__()
        self.tokenizer = WordTokenizer(config.vocabulary, config.max_length)
        self.max_length = config.max_length
        self.width = config.width
        self.token_embedding = nn.Embedding(self.tokenizer.vocab_size, config.width)
        self.start = nn.Parameter(torch.randn(config.width) * 0.02)
        self.positions = nn.Parameter(torch.randn(config.max_length + 1, config.width) * 0.02)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                config.width,
                config.heads,
                dim_feedforward=4 * config.width,
                dropout=0.0,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(config.layers)
        )
        self.final_norm = nn.LayerNorm(config.width)

    def tokenize(self, prompts: Sequence[str]) -> Tensor:
        """Token ids (B, max_length) of some prompts, for ``forward``."""
        return self.tokenizer.encode(prompts)

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Token ids (B, L ≤ max_length) -> context (B, L+1, width), key mask (B, L+1) bool."""
        batch, length = tokens.shape
        if length > self.max_length:
            raise ValueError(
                f"got {length} tokens per prompt, more than max_length={self.max_length}"
            )
        start = self.start.expand(batch, 1, self.width)
        h = torch.cat([start, self.token_embedding(tokens)], dim=1) + self.positions[: length + 1]
        mask = torch.cat([tokens.new_ones(batch, 1, dtype=torch.bool), tokens != 0], dim=1)
        for layer in self.layers:
            h = layer(h, src_key_padding_mask=~mask)
        return self.final_norm(h), mask


@dataclass(eq=False)
class _FrozenClip:
    """A frozen CLIP model and its tokenizer, held outside the owning module's parameters and
    state dict; deep copies (e.g. the EMA copy of the network) share it."""

    model: CLIPTextModel
    tokenizer: Any

    def __deepcopy__(self, memo: dict[int, Any]) -> _FrozenClip:
        return self


def _load_clip(clip_path: str) -> _FrozenClip:
    """The CLIPTextModel and CLIPTokenizer saved in a local folder, frozen."""
    try:
        import transformers
    except ImportError as error:
        raise ValueError(
            f"clip_path={clip_path!r} needs the transformers package: pip install transformers"
        ) from error
    if not Path(clip_path).is_dir():
        raise ValueError(
            f"clip_path={clip_path!r} is not a folder; put a CLIPTextModel and its CLIPTokenizer "
            "there (save_pretrained of both)"
        )
    try:
        model = transformers.CLIPTextModel.from_pretrained(clip_path, local_files_only=True)
        tokenizer = transformers.CLIPTokenizer.from_pretrained(clip_path, local_files_only=True)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"clip_path={clip_path!r} does not hold a CLIPTextModel and a CLIPTokenizer "
            f"(save_pretrained of both): {error}"
        ) from error
    frozen: nn.Module = model.requires_grad_(False)
    frozen.eval()  # transformers' eval(), called through nn.Module's annotated signature
    return _FrozenClip(model, tokenizer)


class ClipTextEncoder(nn.Module):
    """A frozen CLIP text encoder (Radford et al. 2021) loaded from a local folder, the text
    encoder of Stable Diffusion (Rombach et al. 2022, §4.3).

    Its weights are no parameters of this module: they stay out of the state dict (checkpoints)
    and ``parameters()`` (optimizers), while ``.to()``/``.float()`` still move them. ddpmkit ids
    are CLIP ids + 1 with 0 = padding, without CLIP's start token (``forward`` prepends it); an
    all-padding row is encoded as the empty string.
    """

    def __init__(self, clip_path: str, max_length: int) -> None:
        super().__init__()
        self._clip = _load_clip(clip_path)
        positions = self._clip.model.config.max_position_embeddings
        if max_length + 1 > positions:
            raise ValueError(
                f"max_length={max_length} does not fit the CLIP model's {positions} positions "
                "(one is the start token)"
            )
        self.max_length = max_length
        self.width: int = self._clip.model.config.hidden_size
        tokenizer = self._clip.tokenizer
        self._start_id: int = tokenizer.bos_token_id
        self._pad_id: int = tokenizer.pad_token_id
        self._empty: list[int] = self.tokenize([""])[0].tolist()  # the ids of ∅

    def _apply(self, fn: Any, recurse: bool = True) -> ClipTextEncoder:
        """Also converts (moves, casts) the frozen CLIP model."""
        # torch leaves nn.Module._apply unannotated
        self._clip.model._apply(fn, recurse)  # type: ignore[no-untyped-call]
        return cast(ClipTextEncoder, super()._apply(fn, recurse))  # type: ignore[no-untyped-call]

    def tokenize(self, prompts: Sequence[str]) -> Tensor:
        """ddpmkit token ids (B, max_length) of some prompts: CLIP's, truncated, + 1."""
        encoded = self._clip.tokenizer(
            list(prompts), truncation=True, max_length=self.max_length + 1
        )
        tokens = torch.zeros(len(prompts), self.max_length, dtype=torch.int64)
        for row, ids in enumerate(encoded["input_ids"]):
            tokens[row, : len(ids) - 1] = torch.tensor(ids[1:], dtype=torch.int64) + 1
        return tokens

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Token ids (B, L ≤ max_length) -> context (B, L+1, width), key mask (B, L+1) bool."""
        batch, length = tokens.shape
        if length > self.max_length:
            raise ValueError(
                f"got {length} tokens per prompt, more than max_length={self.max_length}"
            )
        empty = torch.tensor(self._empty[:length], dtype=tokens.dtype, device=tokens.device)
        tokens = torch.where((tokens == 0).all(dim=1, keepdim=True), empty, tokens)
        mask = torch.cat([tokens.new_ones(batch, 1, dtype=torch.bool), tokens != 0], dim=1)
        ids = torch.where(tokens != 0, tokens - 1, self._pad_id)
        ids = torch.cat([tokens.new_full((batch, 1), self._start_id), ids], dim=1)
        with torch.no_grad():
            output = self._clip.model(input_ids=ids, attention_mask=mask.long())
        return output.last_hidden_state, mask


TextEncoder = TextTransformer | ClipTextEncoder


def build_text_encoder(config: TextEncoderConfig) -> TextEncoder:
    """The text encoder a config describes."""
    if config.kind == "clip":
        assert config.clip_path is not None  # checked by TextEncoderConfig
        return ClipTextEncoder(config.clip_path, config.max_length)
    return TextTransformer(config)


def encoder_width(config: TextEncoderConfig) -> int:
    """The width of the context the encoder produces, without loading CLIP's weights."""
    if config.kind == "builtin":
        return config.width
    assert config.clip_path is not None  # checked by TextEncoderConfig
    try:
        import transformers

        clip = transformers.CLIPTextConfig.from_pretrained(config.clip_path, local_files_only=True)
    except (ImportError, OSError, ValueError):
        return build_text_encoder(config).width  # its errors name the package or the folder
    return int(clip.hidden_size)


def tokenizer_for(
    config: TextEncoderConfig, encoder: TextEncoder
) -> Callable[[Sequence[str]], Tensor]:
    """Prompts -> token ids (B, max_length) for ``encoder``, which ``config`` built."""
    kind = "clip" if isinstance(encoder, ClipTextEncoder) else "builtin"
    if (config.kind, config.max_length) != (kind, encoder.max_length):
        raise ValueError(
            f"the text encoder ({kind}, max_length={encoder.max_length}) was not built from "
            f"this config ({config.kind}, max_length={config.max_length})"
        )
    return encoder.tokenize
