"""Text conditioning: the word tokenizer, the built-in text transformer, cross-attention, the
text-conditioned U-Net (including a short overfit showing that the prompt controls the output)
and the frozen local CLIP text encoder.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ddpmkit import UNet, UNetConfig
from ddpmkit.networks import (
    ClipTextEncoder,
    TextConditionedUNet,
    TextEncoderConfig,
    TextTransformer,
    WordTokenizer,
    build_text_encoder,
    tokenizer_for,
)
from ddpmkit.networks.layers import CrossAttentionBlock

VOCABULARY = ("a", "blue", "cat", "dog", "red")
TEXT = TextEncoderConfig(vocabulary=VOCABULARY, max_length=6, width=16, layers=2, heads=4)
UNET = UNetConfig(
    in_channels=1,
    sample_size=8,
    base_channels=8,
    channel_mults=(1, 2),
    layers_per_block=1,
    attention_resolutions=(4,),
    dropout=0.0,
    norm_groups=4,
    attention_head_dim=4,
)


def _cross_attentions(module: nn.Module) -> list[CrossAttentionBlock]:
    return [m for m in module.modules() if isinstance(m, CrossAttentionBlock)]


def _randomize_outputs(module: nn.Module) -> None:
    """Give every cross-attention block a non-zero output projection."""
    for block in _cross_attentions(module):
        nn.init.normal_(block.to_out.weight, std=0.3)
        nn.init.normal_(block.to_out.bias, std=0.3)


def _text_unet(seed: int = 0) -> TextConditionedUNet:
    torch.manual_seed(seed)
    unet = UNet(replace(UNET, cross_attention_dim=TEXT.width))
    return TextConditionedUNet(unet, build_text_encoder(TEXT))


# --- tokenizer ---------------------------------------------------------------------------------


def test_word_tokenizer_ids_unknown_words_and_padding() -> None:
    tokenizer = WordTokenizer(VOCABULARY, max_length=5)
    tokens = tokenizer.encode(["A red cat!", "blue-dog, zebra", ""])
    assert tokens.dtype == torch.int64
    assert tokens.tolist() == [[2, 6, 4, 0, 0], [3, 5, 1, 0, 0], [0, 0, 0, 0, 0]]
    assert tokenizer.vocab_size == len(VOCABULARY) + 2


def test_word_tokenizer_rejects_long_prompts_and_builds_vocabularies() -> None:
    with pytest.raises(ValueError, match=r"a red cat.*max_length=2"):
        WordTokenizer(VOCABULARY, max_length=2).encode(["a red cat"])
    assert WordTokenizer.vocabulary_of(["A red cat.", "a_blue  Cat", "7 cats"]) == (
        "7",
        "a",
        "blue",
        "cat",
        "cats",
        "red",
    )


def test_text_encoder_config_validation() -> None:
    with pytest.raises(ValueError, match="clip_path"):
        TextEncoderConfig(kind="clip")
    with pytest.raises(ValueError, match="heads"):
        TextEncoderConfig(width=10, heads=4)
    with pytest.raises(ValueError, match="vocabulary"):
        TextEncoderConfig(vocabulary=("cat", "cat"))
    with pytest.raises(ValueError, match="max_length"):
        TextEncoderConfig(max_length=0)


# --- text transformer --------------------------------------------------------------------------


def test_text_transformer_shapes_and_mask() -> None:
    torch.manual_seed(0)
    encoder = TextTransformer(TEXT)
    context, mask = encoder(encoder.tokenize(["a red cat", ""]))
    assert context.shape == (2, TEXT.max_length + 1, TEXT.width)
    assert mask.dtype == torch.bool
    assert mask.tolist() == [[True] * 4 + [False] * 3, [True] + [False] * 6]
    assert torch.isfinite(context).all()


@pytest.mark.parametrize("train", [True, False])
def test_text_transformer_ignores_padding(train: bool) -> None:
    torch.manual_seed(0)
    encoder = TextTransformer(replace(TEXT, max_length=10)).train(train)
    prompts = ["a red cat", "blue dog"]
    short, long = WordTokenizer(VOCABULARY, 6).encode(prompts), encoder.tokenize(prompts)
    with torch.set_grad_enabled(train):
        (context_short, mask_short), (context_long, mask_long) = encoder(short), encoder(long)
    for row, words in enumerate((3, 2)):
        real = slice(0, 1 + words)
        torch.testing.assert_close(context_short[row, real], context_long[row, real])
        assert mask_short[row, real].all() and mask_long[row, real].all()
        assert not mask_short[row, 1 + words :].any() and not mask_long[row, 1 + words :].any()


# --- cross-attention ---------------------------------------------------------------------------


def _reference_cross_attention(
    block: CrossAttentionBlock, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """x + to_out(softmax(Q Kᵀ / √d, masked) V), one batch element and head at a time."""
    batch, channels, height, width = x.shape
    heads, d = block.num_heads, channels // block.num_heads
    h = block.group_norm(x).reshape(batch, channels, height * width).transpose(1, 2)
    q, k, v = block.to_q(h), block.to_k(context), block.to_v(context)
    out = torch.zeros_like(q)
    for b in range(batch):
        for head in range(heads):
            cols = slice(head * d, (head + 1) * d)
            scores = q[b, :, cols] @ k[b, :, cols].T / math.sqrt(d)  # (HW, L)
            scores = scores.masked_fill(~mask[b][None, :], float("-inf"))
            out[b, :, cols] = torch.softmax(scores, dim=-1) @ v[b, :, cols]
    out = block.to_out(out).transpose(1, 2).reshape(batch, channels, height, width)
    return x + out


def _cross_case(seed: int = 0):
    torch.manual_seed(seed)
    block = CrossAttentionBlock(8, 6, head_dim=4, norm_groups=4).double()
    x = torch.randn(2, 8, 3, 3, dtype=torch.float64)
    context = torch.randn(2, 5, 6, dtype=torch.float64)
    mask = torch.tensor([[True, True, False, True, False], [True, False, False, False, False]])
    return block, x, context, mask


def test_cross_attention_matches_a_literal_transcription() -> None:
    block, x, context, mask = _cross_case()
    _randomize_outputs(block)
    with torch.no_grad():
        expected = _reference_cross_attention(block, x, context, mask)
        torch.testing.assert_close(block(x, context, mask), expected, rtol=1e-10, atol=1e-10)


def test_cross_attention_ignores_masked_context() -> None:
    block, x, context, mask = _cross_case()
    _randomize_outputs(block)
    changed = torch.where(mask[..., None], context, 100 * torch.randn_like(context))
    with torch.no_grad():
        torch.testing.assert_close(block(x, changed, mask), block(x, context, mask))
        assert not torch.allclose(block(x, changed), block(x, context))


def test_cross_attention_is_the_identity_at_initialisation() -> None:
    block, x, context, mask = _cross_case()
    with torch.no_grad():
        assert torch.equal(block(x, context, mask), x)


# --- U-Net with cross-attention ----------------------------------------------------------------


def test_unet_without_cross_attention_is_unchanged() -> None:
    plain = UNet(UNET).state_dict()
    torch.manual_seed(0)
    conditional = UNet(replace(UNET, cross_attention_dim=16))
    keys = list(conditional.state_dict())
    assert not any("cross" in key for key in plain)
    assert [key for key in keys if "cross_attentions" not in key] == list(plain)
    assert len(_cross_attentions(conditional)) == 2 + 1 + 1  # down level 1, mid, up level 1
    # a fresh conditional U-Net computes what the unconditional one with its weights computes
    unconditional = UNet(UNET)
    unconditional.load_state_dict(conditional.state_dict(), strict=False)
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3.0, 70.0])
    context = torch.randn(2, 4, 16)
    with torch.no_grad():
        torch.testing.assert_close(conditional(x, t, context=context), unconditional(x, t))


def test_unet_context_is_required_and_used() -> None:
    torch.manual_seed(0)
    unet = UNet(replace(UNET, cross_attention_dim=16))
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3.0, 70.0])
    with pytest.raises(ValueError, match="context"):
        unet(x, t)
    with pytest.raises(ValueError, match="context"):
        UNet(UNET)(x, t, context=torch.randn(2, 4, 16))
    _randomize_outputs(unet)
    with torch.no_grad():
        first = unet(x, t, context=torch.randn(2, 4, 16))
        second = unet(x, t, context=torch.randn(2, 4, 16))
    assert not torch.allclose(first, second)
    with pytest.raises(ValueError, match="cross_attention_dim"):
        UNetConfig(cross_attention_dim=0)


# --- text-conditioned U-Net --------------------------------------------------------------------


def test_text_unet_none_is_the_empty_prompt() -> None:
    network = _text_unet()
    _randomize_outputs(network)
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3.0, 70.0])
    with torch.no_grad():
        empty = network(x, t, torch.zeros(2, TEXT.max_length, dtype=torch.int64))
        torch.testing.assert_close(network(x, t), empty)
        tokens = network.text_encoder.tokenize(["a red cat", "blue dog"])
        assert not torch.allclose(network(x, t, tokens), empty)
    assert network.config == network.unet.config


def test_text_unet_trains_the_text_encoder() -> None:
    network = _text_unet()
    _randomize_outputs(network)
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3.0, 70.0])
    network(
        x, t, network.text_encoder.tokenize(["a red cat", "blue dog"])
    ).square().mean().backward()
    grads = [p.grad for p in network.text_encoder.parameters()]
    assert all(g is not None for g in grads)
    assert network.text_encoder.token_embedding.weight.grad.abs().sum() > 0


def test_tokenizer_for_checks_the_config() -> None:
    encoder = build_text_encoder(TEXT)
    torch.testing.assert_close(
        tokenizer_for(TEXT, encoder)(["red cat"]), encoder.tokenize(["red cat"])
    )
    with pytest.raises(ValueError, match="max_length"):
        tokenizer_for(replace(TEXT, max_length=7), encoder)


def test_text_unet_rejects_a_mismatched_width() -> None:
    with pytest.raises(ValueError, match="cross_attention_dim"):
        TextConditionedUNet(UNet(replace(UNET, cross_attention_dim=8)), build_text_encoder(TEXT))


def test_text_controls_the_output_after_a_short_overfit() -> None:
    """Two prompts, one input: the network can only tell which image to give from the text."""
    network = _text_unet(seed=1)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(2, 1, 8, 8, generator=generator) * 2 - 1
    x = torch.randn(1, 1, 8, 8, generator=generator).expand(2, -1, -1, -1)
    tokens = network.text_encoder.tokenize(["a red cat", "a blue dog"])
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-2)
    for _ in range(30):
        optimizer.zero_grad()
        F.mse_loss(network(x, 10.0, tokens), images).backward()
        optimizer.step()
    with torch.no_grad():
        output = network(x, 10.0, tokens)
    distances = torch.cdist(output.flatten(1), images.flatten(1))  # (output, image)
    assert distances[0, 0] < distances[0, 1] / 4 and distances[1, 1] < distances[1, 0] / 4, (
        distances
    )


# --- frozen CLIP text encoder ------------------------------------------------------------------

CLIP_TOKENS = (
    "<|startoftext|>",
    "<|endoftext|>",
    *("a", "c", "d", "g", "o", "t", "a</w>", "g</w>", "t</w>"),
    *("ca", "cat</w>", "do", "dog</w>"),
)


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    """A tiny random CLIPTextModel and a CLIPTokenizer of a handful of words, saved together."""
    transformers = pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp("clip")
    vocabulary = {token: i for i, token in enumerate(CLIP_TOKENS)}
    (folder / "vocab.json").write_text(json.dumps(vocabulary))
    (folder / "merges.txt").write_text("#version: 0.2\nc a\nca t</w>\nd o\ndo g</w>\n")
    tokenizer = transformers.CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
    torch.manual_seed(0)
    config = transformers.CLIPTextConfig(
        vocab_size=len(CLIP_TOKENS),
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=16,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    transformers.CLIPTextModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def test_clip_weights_stay_out_of_parameters_and_state_dict(clip_folder) -> None:
    encoder = ClipTextEncoder(str(clip_folder), max_length=6)
    assert encoder.width == 32
    assert list(encoder.parameters()) == [] and list(encoder.state_dict()) == []
    network = TextConditionedUNet(UNet(replace(UNET, cross_attention_dim=32)), encoder)
    assert not any(key.startswith("text_encoder") for key in network.state_dict())
    assert copy.deepcopy(encoder)._clip.model is encoder._clip.model  # EMA copies share it
    encoder.double()  # ._apply still reaches the frozen model
    context, _ = encoder(encoder.tokenize(["a cat"]))
    assert context.dtype == torch.float64


def test_clip_encoder_matches_the_model(clip_folder) -> None:
    import transformers

    encoder = ClipTextEncoder(str(clip_folder), max_length=6)
    prompts = ["a cat", "dog dog cat", "cat a dog cat dog a cat dog"]  # the last one is truncated
    context, mask = encoder(encoder.tokenize(prompts))
    tokenizer = transformers.CLIPTokenizer.from_pretrained(str(clip_folder), local_files_only=True)
    model = transformers.CLIPTextModel.from_pretrained(str(clip_folder), local_files_only=True)
    inputs = tokenizer(
        prompts, padding="max_length", truncation=True, max_length=7, return_tensors="pt"
    )
    with torch.no_grad():
        expected = model(**inputs).last_hidden_state
    assert torch.equal(mask, inputs["attention_mask"].bool())
    torch.testing.assert_close(context, expected)
    empty, empty_mask = encoder(torch.zeros(1, 6, dtype=torch.int64))
    torch.testing.assert_close(empty, encoder(encoder.tokenize([""]))[0])
    assert empty_mask.sum() == 2  # the start and end tokens of ""


def test_clip_encoder_needs_a_folder(tmp_path) -> None:
    pytest.importorskip("transformers")
    missing = tmp_path / "no-clip-here"
    with pytest.raises(ValueError, match="no-clip-here"):
        ClipTextEncoder(str(missing), max_length=6)
    with pytest.raises(ValueError, match="clip_path"):
        build_text_encoder(TextEncoderConfig(kind="clip", clip_path=str(missing)))
