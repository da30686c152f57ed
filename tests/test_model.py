"""LRRNet: released-checkpoint compatibility, shapes, numerics of the fast paths, padding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lrrnet.engine.checkpoint import load_model_weights
from lrrnet.errors import ConfigError
from lrrnet.losses import LRRNetLoss
from lrrnet.models import LRRNet, build_model, crop_to, pad_to_multiple
from lrrnet.models.blocks import AttentionBlock, Dropout, GroupNorm

# Keys and shapes of the released checkpoints (267 entries), as listed from the .pkl files.
RELEASED_KEYS = Path(__file__).with_name("data") / "official_lrrnet_state_dict_keys.json"

SMALL = {"base_channels": 8, "num_groups": 4}  # same topology, a fraction of the cost
CHANNELS_LAST = torch.channels_last


def released_shapes() -> dict[str, list[int]]:
    return json.loads(RELEASED_KEYS.read_text())


def random_released_state(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        key: torch.randn(shape, generator=generator) * 0.1
        for key, shape in released_shapes().items()
    }


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.fixture(scope="module")
def released_model() -> LRRNet:
    """The default network holding random weights in the released format, eval mode."""
    model = LRRNet().eval()
    model.load_state_dict(random_released_state())
    return model


def test_default_parameter_count() -> None:
    assert sum(p.numel() for p in LRRNet().parameters()) == 3_454_994


def test_state_dict_has_the_released_keys_shapes_and_order() -> None:
    expected = released_shapes()
    state = LRRNet().state_dict()
    assert len(state) == 267
    assert list(state) == list(expected)
    assert {key: list(value.shape) for key, value in state.items()} == expected


@pytest.mark.parametrize(
    ("suffix", "wrap", "prefix"),
    [
        (".pkl", False, ""),  # the released files: a bare state dict
        (".pth", True, ""),  # this project's checkpoints
        (".pth", True, "module."),  # saved from DistributedDataParallel
        (".pkl", False, "module._orig_mod."),  # DDP around torch.compile
    ],
)
def test_released_state_dict_loads(tmp_path: Path, suffix: str, wrap: bool, prefix: str) -> None:
    state = random_released_state(seed=1)
    stored = {prefix + key: value for key, value in state.items()}
    path = tmp_path / f"weights{suffix}"
    torch.save({"model": stored, "iteration": 7} if wrap else stored, path)
    model = LRRNet()
    checkpoint = load_model_weights(model, path)
    loaded = model.state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in state.items())
    if wrap:
        assert checkpoint["iteration"] == 7


def _top_level_group(key: str) -> str:
    """init_conv, downs.3, mid.0, ups.14, out_conv …"""
    parts = key.split(".")
    return ".".join(parts[:2]) if parts[0] in ("downs", "mid", "ups") else parts[0]


def reference_forward(
    state: dict[str, torch.Tensor], image: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The published architecture written out with functional ops on the released state dict
    alone."""

    def conv(x: torch.Tensor, name: str, stride: int = 1) -> torch.Tensor:
        weight = state[f"{name}.weight"]
        padding = weight.shape[-1] // 2
        return F.conv2d(x, weight, state[f"{name}.bias"], stride=stride, padding=padding)

    def norm_relu(x: torch.Tensor, name: str) -> torch.Tensor:
        return F.relu(F.group_norm(x, 16, state[f"{name}.weight"], state[f"{name}.bias"]))

    def attention(x: torch.Tensor, name: str) -> torch.Tensor:
        b, c, h, w = x.shape
        normed = F.group_norm(x, 16, state[f"{name}.norm.weight"], state[f"{name}.norm.bias"])
        q, k, v = conv(normed, f"{name}.to_qkv").reshape(b, 3, c, h * w).unbind(1)
        weights = torch.softmax(q.transpose(1, 2) @ k * c**-0.5, dim=-1)  # query × key
        attended = (weights @ v.transpose(1, 2)).transpose(1, 2).reshape(b, c, h, w)
        return conv(attended, f"{name}.to_out") + x

    def residual_block(x: torch.Tensor, name: str) -> torch.Tensor:
        branch = conv(norm_relu(x, f"{name}.norm_1"), f"{name}.conv_1")
        branch = conv(norm_relu(branch, f"{name}.norm_2"), f"{name}.conv_2.1")
        shortcut = (
            conv(x, f"{name}.residual_connection")
            if (f"{name}.residual_connection.weight" in state)
            else x
        )
        out = branch * state[f"{name}.scale"] + shortcut
        return (
            attention(out, f"{name}.attention") if f"{name}.attention.norm.weight" in state else out
        )

    shallow = conv(image, "init_conv")
    x = conv(shallow, "second_conv")
    skips = [x]
    for i in range(11):
        if f"downs.{i}.downsample.weight" in state:
            x = conv(x, f"downs.{i}.downsample", stride=2)
        else:
            x = residual_block(x, f"downs.{i}")
        skips.append(x)
    x = residual_block(residual_block(x, "mid.0"), "mid.1")
    for i in range(15):
        if f"ups.{i}.upsample.1.weight" in state:
            x = conv(F.interpolate(x, scale_factor=2, mode="nearest"), f"ups.{i}.upsample.1")
        else:
            x = residual_block(torch.cat([x, skips.pop()], dim=1), f"ups.{i}")
    target = residual_block(shallow - x, "out_resblock")
    reconstruction = target + x
    return (
        conv(norm_relu(reconstruction, "out_norm1"), "out_conv1"),
        conv(norm_relu(target, "out_norm"), "out_conv"),
    )


@pytest.mark.parametrize("impl", ["sdpa", "naive"])
def test_outputs_equal_the_written_out_architecture(impl: str) -> None:
    """In float64, so rounding stays far below any difference a wrong wiring would make."""
    state = {key: value.double() for key, value in random_released_state(seed=6).items()}
    model = LRRNet(attention_impl=impl).double().eval()
    model.load_state_dict(state)
    image = torch.rand(2, 1, 32, 48, generator=torch.Generator().manual_seed(7)).double()
    with torch.inference_mode():
        outputs = model(image)
        expected = reference_forward(state, image)
    for output, reference in zip(outputs, expected, strict=True):
        assert max_diff(output, reference) < 1e-7  # a wrong wiring differs by ~0.1


# The T head reads only y, the D head only d.
ONLY_TARGET = ("out_norm", "out_conv")
ONLY_RECONSTRUCTION = ("out_norm1", "out_conv1")
# Biases that no output can depend on, by the architecture (the original's too): with
# 16 channels and 16 groups a GroupNorm normalises each channel alone, so a per-channel
# constant is subtracted again right away. That hits conv_1.bias of every 16-channel block;
# ups.14's output biases shift B, which cancels in d = y + B (y holds u − B through the
# identity shortcut) and is normalised away before T; out_resblock.conv_2's bias shifts y
# and d alike, both normalised per channel before the output convs.
DEAD_BY_DESIGN = {
    "downs.0.conv_1.bias",
    "downs.1.conv_1.bias",
    "ups.12.conv_1.bias",
    "ups.13.conv_1.bias",
    "ups.14.conv_1.bias",
    "ups.14.conv_2.1.bias",
    "ups.14.residual_connection.bias",
    "out_resblock.conv_1.bias",
    "out_resblock.conv_2.1.bias",
}


def test_every_parameter_group_changes_the_outputs(released_model: LRRNet) -> None:
    """Perturbing each top-level module changes the outputs it feeds, and only those."""
    image = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        reference = released_model(image)
    groups: dict[str, list[torch.nn.Parameter]] = {}
    for name, parameter in released_model.named_parameters():
        groups.setdefault(_top_level_group(name), []).append(parameter)
    assert len(groups) == 2 + 11 + 2 + 15 + 5
    generator = torch.Generator().manual_seed(1)
    for group, parameters in groups.items():
        originals = [parameter.detach().clone() for parameter in parameters]
        with torch.no_grad():
            for parameter in parameters:
                parameter.add_(0.2 * torch.randn(parameter.shape, generator=generator))
        with torch.inference_mode():
            reconstruction, target_logits = released_model(image)
        with torch.no_grad():
            for parameter, original in zip(parameters, originals, strict=True):
                parameter.copy_(original)
        assert (max_diff(reconstruction, reference[0]) > 1e-6) == (group not in ONLY_TARGET)
        assert (max_diff(target_logits, reference[1]) > 1e-6) == (
            group not in ONLY_RECONSTRUCTION
        ), group


def test_every_weight_tensor_reaches_its_outputs(released_model: LRRNet) -> None:
    """Per tensor, through gradients: live ones matter, the known dead biases do not."""
    image = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(4))
    names, parameters = zip(*released_model.named_parameters(), strict=True)
    reconstruction, target_logits = released_model(image)
    probe = torch.Generator().manual_seed(5)
    gradients = {}
    for output_name, output in (("D", reconstruction), ("T", target_logits)):
        projection = torch.randn(output.shape, generator=probe)
        grads = torch.autograd.grad(
            (output * projection).sum(), parameters, allow_unused=True, retain_graph=True
        )
        gradients[output_name] = [0.0 if g is None else g.abs().max().item() for g in grads]
    for index, name in enumerate(names):
        group = _top_level_group(name)
        for output_name, excluded in (("D", ONLY_TARGET), ("T", ONLY_RECONSTRUCTION)):
            magnitude = gradients[output_name][index]
            # Dead: float rounding only (≤ 1e-5 seen); live: ≥ 8e-4 seen, most ≫ 1.
            if name in DEAD_BY_DESIGN or group in excluded:
                assert magnitude < 5e-5, (name, output_name, magnitude)
            else:
                assert magnitude > 2e-4, (name, output_name, magnitude)


@pytest.mark.parametrize("size", [(64, 64), (48, 80)])
def test_forward_backward_is_finite(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = LRRNet(**SMALL).train()
    image = torch.rand(2, 1, *size)
    mask = torch.zeros(2, 1, *size)
    mask[:, :, 10:13, 20:23] = 1
    reconstruction, target_logits = model(image)
    assert reconstruction.shape == target_logits.shape == (2, 1, *size)
    total, _ = LRRNetLoss()(reconstruction, target_logits, image, mask)
    total.backward()
    assert torch.isfinite(reconstruction).all() and torch.isfinite(target_logits).all()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name


@pytest.mark.parametrize("size", [(60, 64), (64, 36), (63, 63)])
def test_size_not_multiple_of_8_is_a_clear_error(size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match=r"multiples of 8.*pad_to_multiple"):
        LRRNet(**SMALL)(torch.rand(1, 1, *size))


def test_forward_maps_are_consistent_with_forward() -> None:
    torch.manual_seed(0)
    model = LRRNet(**SMALL).eval()
    image = torch.rand(1, 1, 32, 48)
    with torch.inference_mode():
        reconstruction, target_logits = model(image)
        maps = model.forward_maps(image)
    assert torch.equal(maps["reconstruction"], reconstruction)
    assert torch.equal(maps["target_logits"], target_logits)
    assert torch.equal(maps["target_prob"], torch.sigmoid(target_logits))
    assert maps["background_feature"].shape == (1, 8, 32, 48)
    # d = y + B, and y is computed from u − B.
    torch.testing.assert_close(
        maps["reconstruction_feature"], maps["target_feature"] + maps["background_feature"]
    )
    with torch.inference_mode():
        refined = model.out_resblock(maps["shallow_feature"] - maps["background_feature"])
    torch.testing.assert_close(refined, maps["target_feature"])


def _attention_output(model: LRRNet, image: torch.Tensor, impl: str) -> tuple[torch.Tensor, ...]:
    model.set_attention_impl(impl)
    image = image.clone().requires_grad_(True)
    reconstruction, target_logits = model(image)
    (reconstruction.square().mean() + target_logits.mean()).backward()
    return reconstruction.detach(), target_logits.detach(), image.grad


def test_sdpa_and_naive_attention_agree(released_model: LRRNet) -> None:
    image = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(2))
    fast = _attention_output(released_model, image, "sdpa")
    naive = _attention_output(released_model, image, "naive")
    released_model.set_attention_impl("sdpa")
    released_model.zero_grad(set_to_none=True)
    for fast_value, naive_value in zip(fast, naive, strict=True):
        assert max_diff(fast_value, naive_value) < 1e-5


def test_naive_attention_is_softmax_over_key_positions() -> None:
    """The written-out formula, per query position, against the block's naive path."""
    torch.manual_seed(0)
    block = LRRNet(**SMALL).mid[0].attention.eval()
    block.impl = "naive"
    features = torch.randn(1, 64, 3, 5)
    with torch.no_grad():
        q, k, v = block.to_qkv(block.norm(features))[0].reshape(3, 64, 15)
        expected = torch.empty(64, 15)
        for position in range(15):
            weights = torch.softmax((q[:, position] @ k) / 8.0, dim=0)  # over 15 keys
            expected[:, position] = v @ weights
        expected = block.to_out(expected.reshape(1, 64, 3, 5)) + features
        torch.testing.assert_close(block(features), expected)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_sdpa_gets_tokens_with_contiguous_channels(monkeypatch, memory_format) -> None:
    """CUDA's fused attention kernels need the last (channel) stride to be 1; a contiguous
    input once reached sdpa with stride H·W there and took the slow math path."""
    strides = []
    attention = F.scaled_dot_product_attention

    def spy(query, key, value, **kwargs):
        strides.extend(tensor.stride(-1) for tensor in (query, key, value))
        return attention(query, key, value, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    block = LRRNet(**SMALL).mid[0].attention.eval().to(memory_format=memory_format)
    features = torch.randn(2, 64, 3, 5).contiguous(memory_format=memory_format)
    with torch.no_grad():
        block(features)
    assert strides == [1, 1, 1]


def test_channels_last_matches_contiguous(released_model: LRRNet) -> None:
    # A bright, flat frame: the case where a one-pass GroupNorm variance cancels.
    generator = torch.Generator().manual_seed(3)
    image = 0.8 + 0.01 * torch.rand(1, 1, 64, 64, generator=generator)
    with torch.inference_mode():
        contiguous = released_model(image)
        released_model.to(memory_format=CHANNELS_LAST)
        channels_last = released_model(image.contiguous(memory_format=CHANNELS_LAST))
        released_model.to(memory_format=torch.contiguous_format)
    for a, b in zip(contiguous, channels_last, strict=True):
        assert max_diff(a, b) < 1e-5


def test_group_norm_is_accurate_for_channels_last() -> None:
    """Against float64: PyTorch's own channels_last CPU kernel is off by ~1 here."""
    generator = torch.Generator().manual_seed(0)
    values = 10 + 0.03 * torch.randn(2, 32, 40, 40, generator=generator)
    norm = GroupNorm(8, 32)
    with torch.no_grad():
        norm.weight.normal_(generator=generator)
        norm.bias.normal_(generator=generator)
    reference = F.group_norm(values.double(), 8, norm.weight.double(), norm.bias.double())
    channels_last = values.contiguous(memory_format=CHANNELS_LAST).requires_grad_(True)
    output = norm(channels_last)
    assert output.is_contiguous(memory_format=CHANNELS_LAST)
    assert max_diff(output.double(), reference) < 1e-4
    # Gradients: float64 as the reference too (the stock contiguous kernel is ~10× further).
    output.square().sum().backward()
    reference_input = values.double().requires_grad_(True)
    norm.double()(reference_input).square().sum().backward()
    scale = reference_input.grad.abs().max().item()
    assert max_diff(channels_last.grad.double(), reference_input.grad) < 1e-5 * scale


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cpu_dropout_keeps_the_law_and_gradient_of_nn_dropout(dtype) -> None:
    """Kept share 1 − p, kept values scaled by 1 / (1 − p), gradient through the same mask."""
    torch.manual_seed(0)
    dropout = Dropout(p=0.2).train()
    values = (torch.rand(4, 8, 64, 64) + 0.5).to(dtype).requires_grad_(True)
    output = dropout(values)
    kept = output != 0
    assert output.dtype == dtype
    assert abs(kept.float().mean().item() - 0.8) < 0.01  # 131,072 draws: 1 % is 9 std
    assert torch.equal(output[kept], (values * 1.25)[kept].detach())
    output.float().sum().backward()
    assert torch.equal(values.grad, kept.to(dtype) * 1.25)
    # Each call draws a new mask; eval mode and p = 0 are the identity.
    assert not torch.equal(kept, dropout(values) != 0)
    assert torch.equal(dropout.eval()(values), values)
    assert torch.equal(Dropout(p=0.0).train()(values), values)
    assert Dropout(p=1.0).train()(values).abs().sum() == 0
    # inplace=True writes the result into its input, as nn.Dropout's does.
    target = values.detach().clone()
    result = Dropout(p=0.2, inplace=True).train()(target)
    assert result.data_ptr() == target.data_ptr()
    assert 0 < torch.count_nonzero(target) < target.numel()


def test_pad_to_multiple_reflects_and_falls_back_for_tiny_inputs() -> None:
    image = torch.arange(12.0).reshape(1, 1, 3, 4)
    padded, size = pad_to_multiple(image, multiple=4)
    assert size == (3, 4) and padded.shape == (1, 1, 4, 4)
    assert torch.equal(padded[0, 0, 3], image[0, 0, 1])  # reflection of row 1 about row 2
    assert torch.equal(crop_to(padded, size), image)
    tiny, size = pad_to_multiple(image, multiple=8)  # 5 rows of pad on 3: replicate
    assert size == (3, 4) and tiny.shape == (1, 1, 8, 8)
    assert torch.equal(tiny[0, 0, 7, :4], image[0, 0, 2])
    untouched, _ = pad_to_multiple(torch.rand(1, 1, 16, 8))
    assert untouched.shape == (1, 1, 16, 8)


def test_build_model_takes_the_model_section_and_rejects_unknown_keys() -> None:
    model = build_model({"model": {"base_channels": 8, "num_groups": 4}})
    assert model.init_conv.out_channels == 8
    with pytest.raises(ConfigError, match="model.base_width"):
        build_model({"model": {"base_width": 8}})


def test_unknown_attention_impl_is_rejected() -> None:
    with pytest.raises(ValueError, match="attention_impl"):
        LRRNet(**SMALL, attention_impl="flash")
    with pytest.raises(ValueError, match="attention_impl"):
        LRRNet(**SMALL).set_attention_impl("flash")


@pytest.mark.parametrize(
    ("head_input", "refined_from"),
    [
        ("difference", lambda u, b: u - b),
        ("background", lambda u, b: b),
        ("shallow", lambda u, b: u),
    ],
)
def test_head_input_ablation_refines_what_it_names(head_input, refined_from) -> None:
    torch.manual_seed(0)
    model = LRRNet(**SMALL, head_input=head_input).eval()
    image = torch.rand(2, 1, 32, 40)
    with torch.inference_mode():
        maps = model.forward_maps(image)
        refined = model.out_resblock(
            refined_from(maps["shallow_feature"], maps["background_feature"])
        )
    assert maps["reconstruction"].shape == maps["target_logits"].shape == (2, 1, 32, 40)
    torch.testing.assert_close(maps["target_feature"], refined)
    torch.testing.assert_close(
        maps["reconstruction_feature"], maps["target_feature"] + maps["background_feature"]
    )
    # The same parameters, so a state dict moves between the variants.
    assert list(model.state_dict()) == list(LRRNet(**SMALL).state_dict())


def test_head_input_variants_differ_on_the_same_weights(released_model: LRRNet) -> None:
    image = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    outputs = {}
    for head_input in ("difference", "background", "shallow"):
        model = LRRNet(head_input=head_input).eval()
        model.load_state_dict(released_model.state_dict())
        with torch.inference_mode():
            outputs[head_input] = model(image)[1]
    with torch.inference_mode():
        assert torch.equal(outputs["difference"], released_model(image)[1])  # the default
    assert max_diff(outputs["difference"], outputs["background"]) > 1e-3
    assert max_diff(outputs["difference"], outputs["shallow"]) > 1e-3


def test_mid_attention_off_drops_only_the_bottleneck_attention() -> None:
    with_attention = LRRNet().state_dict()
    without = LRRNet(mid_attention=False).state_dict()
    dropped = set(with_attention) - set(without)
    assert dropped and all(key.startswith("mid.0.attention.") for key in dropped)
    assert set(without) < set(with_attention)
    assert not any(isinstance(m, AttentionBlock) for m in LRRNet(mid_attention=False).modules())
    model = LRRNet(**SMALL, mid_attention=False).eval()
    with torch.inference_mode():
        reconstruction, target_logits = model(torch.rand(1, 1, 24, 32))
    assert reconstruction.shape == target_logits.shape == (1, 1, 24, 32)


def test_ablations_come_from_the_config_and_bad_values_are_named() -> None:
    from lrrnet.config import load_config

    cfg = load_config("demo", ["model.head_input='background'", "model.mid_attention=False"])
    model = build_model(cfg)
    assert model.head_input == "background" and "mid.0.attention.to_qkv.weight" not in (
        model.state_dict()
    )
    assert len(build_model(load_config("demo")).state_dict()) == 267  # defaults: the paper's
    with pytest.raises(ConfigError, match="model.head_input"):
        load_config("demo", ["model.head_input='none'"])
    with pytest.raises(ValueError, match="head_input"):
        LRRNet(head_input="none")


def test_target_prior_sets_the_starting_target_probability_only() -> None:
    torch.manual_seed(0)
    default = LRRNet(**SMALL).eval()
    torch.manual_seed(0)
    prior = LRRNet(**SMALL, target_prior=0.01).eval()
    changed = [
        key
        for key, value in prior.state_dict().items()
        if not torch.equal(value, default.state_dict()[key])
    ]
    assert changed == ["out_conv.bias"]
    image = torch.rand(2, 1, 32, 32)
    with torch.inference_mode():
        start = torch.sigmoid(prior(image)[1]).mean().item()
        plain = torch.sigmoid(default(image)[1]).mean().item()
    assert 0.003 < start < 0.03 and plain > 0.1
    from lrrnet.config import load_config

    assert build_model(load_config("demo", ["model.target_prior=0.01"])).out_conv.bias.item() == (
        pytest.approx(-4.59512, abs=1e-5)
    )
    with pytest.raises(ConfigError, match="model.target_prior"):
        load_config("demo", ["model.target_prior=1.5"])
    with pytest.raises(ConfigError, match="model.target_prior"):
        LRRNet(target_prior=0.0)


@pytest.mark.parametrize(
    ("item", "kwargs"),
    [
        ("model.dropout=1.5", {"dropout": 1.5}),
        ("model.num_groups=12", {"num_groups": 12}),
        ("model.base_channels=0", {"base_channels": 0}),
        ("model.num_res_blocks=-1", {"num_res_blocks": -1}),
        ("model.channel_mults=(1, 0)", {"channel_mults": (1, 0)}),
        ("model.target_prior=.nan", {"target_prior": float("nan")}),
    ],
)
def test_the_network_and_the_config_refuse_a_value_in_the_same_words(item, kwargs) -> None:
    from lrrnet.config import load_config

    with pytest.raises(ConfigError) as from_config:
        load_config("demo", [item])
    with pytest.raises(ConfigError) as from_model:
        LRRNet(**kwargs)
    assert str(from_model.value) == str(from_config.value)
    assert f"config key '{item.split('=')[0]}" in str(from_model.value)
