"""LRRNet: a deep low-rank background network for infrared small target detection.

The background of an infrared frame is low-rank and compressible; a network that learns to
reconstruct it finds targets as what remains after subtracting it. Three parts:

1. **Encoder** (:meth:`LRRNet.encode`): a stem (``init_conv`` gives the shallow feature
   ``u``, ``second_conv``), residual levels with stride-2 downsampling (``downs``) and a
   bottleneck with self-attention (``mid``). The narrow bottleneck is what forces a
   compressed, low-rank description of the frame: small targets do not fit through it.
2. **Background decoder** (:meth:`LRRNet.decode_background`, ``ups``): a U-Net decoder that
   rebuilds the background feature ``B`` at full resolution from the bottleneck and the
   skip features.
3. **Subtraction head** (:meth:`LRRNet.subtraction_head`, :meth:`LRRNet.output_heads`):
   target feature ``y = refine(u − B)``, reconstruction feature ``d = y + B``, and two 3×3
   output convs: target logits ``T`` from ``y`` and the reconstructed image ``D`` from ``d``.

Module attribute names are those of the released checkpoints (``init_conv`` … ``out_conv1``)
so their plain state dicts load without any key mapping. Do not rename them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lrrnet.domains import Domain
from lrrnet.errors import ConfigError
from lrrnet.models.blocks import (
    AttentionBlock,
    AttentionImpl,
    Downsample,
    GroupNorm,
    ResidualBlock,
    Upsample,
    check_attention_impl,
)
from lrrnet.models.padding import size_multiple_for

# What the subtraction head refines (an ablation switch; "difference" is the paper's u − B).
HEAD_INPUTS = ("difference", "background", "shallow")

# The constructor's numbers (the config's model section). num_groups must also divide every
# width (check_widths).
IN_CHANNELS = Domain("model.in_channels", low=0, low_open=True, integer=True)
BASE_CHANNELS = Domain("model.base_channels", low=0, low_open=True, integer=True)
CHANNEL_MULTS = Domain("model.channel_mults", low=0, low_open=True, integer=True, min_items=1)
NUM_RES_BLOCKS = Domain("model.num_res_blocks", low=0, integer=True)
DROPOUT = Domain("model.dropout", 0.0, 1.0)
NUM_GROUPS = Domain("model.num_groups", low=0, low_open=True, integer=True)
# An initial probability: 0 and 1 have no finite logit.
TARGET_PRIOR = Domain("model.target_prior", 0.0, 1.0, low_open=True, high_open=True, nullable=True)
DOMAINS = (
    IN_CHANNELS,
    BASE_CHANNELS,
    CHANNEL_MULTS,
    NUM_RES_BLOCKS,
    DROPOUT,
    NUM_GROUPS,
    TARGET_PRIOR,
)


def check_widths(base_channels: int, channel_mults: Sequence[int], num_groups: int) -> None:
    """Raises ConfigError unless ``num_groups`` divides every level's width, as GroupNorm needs."""
    widths = sorted({base_channels * mult for mult in channel_mults})
    if any(width % num_groups for width in widths):
        raise ConfigError(
            f"config key 'model.num_groups' = {num_groups} must divide every width {widths} "
            "(model.base_channels × model.channel_mults)"
        )


class LRRNet(nn.Module):
    """The LRRNet encoder, low-rank background decoder and subtraction head.

    The defaults are the published network (3,454,994 parameters) that the released
    checkpoints fit.

    Args:
        in_channels: channels of the input frame (1 for infrared).
        base_channels: width of the first level; level i has ``base_channels ·
            channel_mults[i]`` channels.
        channel_mults: width multipliers per level; ``len − 1`` stride-2 steps, so inputs
            must be multiples of ``2 ** (len − 1)`` (8 by default).
        num_res_blocks: residual blocks per encoder level (the decoder has one more).
        dropout: dropout probability inside every residual block.
        num_groups: GroupNorm groups everywhere (must divide every width).
        attention_impl: ``"sdpa"`` (fused scaled_dot_product_attention, the default) or
            ``"naive"`` (the explicit formula of the original code); same numbers.
        head_input: ablation of the subtraction: what the head refines into the target
            feature. ``"difference"`` (``u − B``, the paper's design), ``"background"``
            (``B`` alone) or ``"shallow"`` (``u`` alone). The parameters are the same.
        mid_attention: self-attention in the first bottleneck block (the paper's design);
            False drops it (and its ``mid.0.attention.*`` parameters).
        target_prior: initial target probability everywhere, or None (PyTorch's default
            initialisation, as the original code). A value such as 0.01 sets the bias of
            the target logits to ``log(p / (1 − p))``, so training starts from "almost no
            pixel is a target" instead of p ≈ 0.5 everywhere; it changes the start only,
            not the architecture or the state-dict keys.

    Raises:
        ConfigError: a number outside its domain (:data:`DOMAINS`) or ``num_groups`` that
            does not divide every width, named by its config key.
        ValueError: an unknown ``attention_impl`` or ``head_input``.
    """

    def __init__(
        self,
        *,
        in_channels: int = 1,
        base_channels: int = 16,
        channel_mults: Sequence[int] = (1, 2, 4, 8),
        num_res_blocks: int = 2,
        dropout: float = 0.2,
        num_groups: int = 16,
        attention_impl: AttentionImpl = "sdpa",
        head_input: str = "difference",
        mid_attention: bool = True,
        target_prior: float | None = None,
    ) -> None:
        super().__init__()
        check_attention_impl(attention_impl)
        if head_input not in HEAD_INPUTS:
            raise ValueError(f"head_input must be one of {HEAD_INPUTS}, got {head_input!r}")
        self.head_input = head_input
        channel_mults = tuple(channel_mults)
        for domain, value in (
            (IN_CHANNELS, in_channels),
            (BASE_CHANNELS, base_channels),
            (CHANNEL_MULTS, channel_mults),
            (NUM_RES_BLOCKS, num_res_blocks),
            (DROPOUT, dropout),
            (NUM_GROUPS, num_groups),
            (TARGET_PRIOR, target_prior),
        ):
            domain.check(value)
        check_widths(base_channels, channel_mults, num_groups)
        self.size_multiple = size_multiple_for(len(channel_mults))

        def residual(in_ch: int, out_ch: int, use_attention: bool = False) -> ResidualBlock:
            return ResidualBlock(
                in_ch,
                out_ch,
                dropout=dropout,
                num_groups=num_groups,
                use_attention=use_attention,
                attention_impl=attention_impl,
            )

        # Stem. init_conv's output u is the shallow feature the subtraction head needs.
        self.init_conv = nn.Conv2d(in_channels, base_channels, kernel_size=3, padding=1)
        self.second_conv = nn.Conv2d(base_channels, base_channels, kernel_size=3, padding=1)

        # Registered in the original order (downs, ups, mid) so the state dict lists its
        # keys in the same order as the released files.
        self.downs = nn.ModuleList()
        self.ups = nn.ModuleList()

        # Encoder: the width of every feature pushed on the skip stack, bottom to top.
        skip_channels = [base_channels]
        channels = base_channels
        for level, mult in enumerate(channel_mults):
            for _ in range(num_res_blocks):
                self.downs.append(residual(channels, base_channels * mult))
                channels = base_channels * mult
                skip_channels.append(channels)
            if level != len(channel_mults) - 1:
                self.downs.append(Downsample(channels))
                skip_channels.append(channels)

        # Bottleneck: attention only in the first block (the coarsest grid keeps it cheap).
        self.mid = nn.ModuleList(
            [
                residual(channels, channels, use_attention=mid_attention),
                residual(channels, channels),
            ]
        )

        # Background decoder: each block consumes one skip feature, so one more block per
        # level than the encoder pushed there.
        for level, mult in reversed(list(enumerate(channel_mults))):
            for _ in range(num_res_blocks + 1):
                self.ups.append(residual(channels + skip_channels.pop(), base_channels * mult))
                channels = base_channels * mult
            if level != 0:
                self.ups.append(Upsample(channels))
        assert not skip_channels, "decoder must consume every skip feature"

        # Subtraction head.
        self.out_resblock = residual(base_channels, base_channels)
        self.out_norm = GroupNorm(num_groups, base_channels)
        self.out_conv = nn.Conv2d(base_channels, 1, kernel_size=3, padding=1)
        self.out_norm1 = GroupNorm(num_groups, base_channels)
        self.out_conv1 = nn.Conv2d(base_channels, in_channels, kernel_size=3, padding=1)
        if target_prior is not None:
            nn.init.constant_(self.out_conv.bias, math.log(target_prior / (1.0 - target_prior)))

    # -- configuration -------------------------------------------------------------------

    @property
    def attention_impl(self) -> str:
        """The attention path in use, ``"sdpa"`` or ``"naive"``."""
        impls = {m.impl for m in self.modules() if isinstance(m, AttentionBlock)}
        return impls.pop() if len(impls) == 1 else ",".join(sorted(impls))

    def set_attention_impl(self, impl: AttentionImpl) -> LRRNet:
        """Switches every attention block to ``"sdpa"`` or ``"naive"``; returns ``self``."""
        check_attention_impl(impl)
        for module in self.modules():
            if isinstance(module, AttentionBlock):
                module.impl = impl
        return self

    def check_input_size(self, image: torch.Tensor) -> None:
        """Raises ValueError unless ``image`` is B×C×H×W with H, W multiples of 8."""
        if image.dim() != 4:
            raise ValueError(f"LRRNet expects a B×C×H×W tensor, got shape {tuple(image.shape)}")
        height, width = image.shape[-2:]
        if height % self.size_multiple or width % self.size_multiple:
            raise ValueError(
                f"LRRNet needs H and W to be multiples of {self.size_multiple}, got {height}×"
                f"{width}; pad with lrrnet.models.pad_to_multiple (and crop_to), or run it "
                "through lrrnet.engine.predictor.Predictor, which does"
            )

    # -- the three parts -----------------------------------------------------------------

    def encode(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """Encoder: stem, downsampling levels and attention bottleneck.

        Args:
            image: B×C×H×W, H and W multiples of 8.

        Returns:
            ``(shallow, skips, bottleneck)``: the shallow feature ``u`` (B×16×H×W), the skip
            stack (12 features bottom to top, the decoder pops from the end) and the
            bottleneck feature (B×128×H/8×W/8).
        """
        shallow = self.init_conv(image)
        features = self.second_conv(shallow)
        skips = [features]
        for layer in self.downs:
            features = layer(features)
            skips.append(features)
        for layer in self.mid:
            features = layer(features)
        return shallow, skips, features

    def decode_background(
        self, bottleneck: torch.Tensor, skips: list[torch.Tensor]
    ) -> torch.Tensor:
        """Low-rank background decoder.

        Args:
            bottleneck: B×128×H/8×W/8 from :meth:`encode`.
            skips: the skip stack from :meth:`encode` (not modified).

        Returns:
            The background feature ``B``, B×16×H×W.
        """
        remaining = list(skips)
        features = bottleneck
        for layer in self.ups:
            if isinstance(layer, ResidualBlock):
                features = torch.cat([features, remaining.pop()], dim=1)
            features = layer(features)
        return features

    def subtraction_head(
        self, shallow: torch.Tensor, background: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Subtracts the background from the shallow feature and refines the remainder.

        Args:
            shallow: the shallow feature ``u``, B×16×H×W.
            background: the background feature ``B``, B×16×H×W.

        Returns:
            ``(target_feature, reconstruction_feature)``: ``y = out_resblock(u − B)`` and
            ``d = y + B``, each B×16×H×W. The ``head_input`` ablations refine ``B`` or ``u``
            alone instead of ``u − B``.
        """
        if self.head_input == "difference":
            remainder = shallow - background
        elif self.head_input == "background":
            remainder = background
        else:
            remainder = shallow
        target_feature = self.out_resblock(remainder)
        # Adding the background back asks target + background to explain the whole frame.
        return target_feature, target_feature + background

    def output_heads(
        self, target_feature: torch.Tensor, reconstruction_feature: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """GN → ReLU → 3×3 conv on each feature.

        Returns:
            ``(reconstruction, target_logits)``: D (B×C_in×H×W) and T (B×1×H×W).
        """
        target_logits = self.out_conv(F.relu(self.out_norm(target_feature), inplace=True))
        reconstruction = self.out_conv1(
            F.relu(self.out_norm1(reconstruction_feature), inplace=True)
        )
        return reconstruction, target_logits

    # -- entry points --------------------------------------------------------------------

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: image: B×1×H×W, H and W multiples of 8 (see :func:`pad_to_multiple`).

        Returns:
            ``(D, T)``: the reconstructed image B×1×H×W and the target logits B×1×H×W
            (``sigmoid(T)`` is the target probability map), as the original network.
        """
        maps = self._run_parts(image)
        return maps["reconstruction"], maps["target_logits"]

    def forward_maps(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every intermediate map of interest, for visualisation.

        Args:
            image: B×1×H×W, H and W multiples of 8.

        Returns:
            A dict with ``reconstruction`` (D, B×1×H×W), ``target_logits`` (T, B×1×H×W),
            ``target_prob`` (sigmoid T, B×1×H×W), and the B×16×H×W features
            ``background_feature`` (B), ``target_feature`` (y), ``reconstruction_feature``
            (d) and ``shallow_feature`` (u).
        """
        maps = self._run_parts(image)
        maps["target_prob"] = torch.sigmoid(maps["target_logits"])
        return maps

    def _run_parts(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        self.check_input_size(image)
        shallow, skips, bottleneck = self.encode(image)
        background = self.decode_background(bottleneck, skips)
        target_feature, reconstruction_feature = self.subtraction_head(shallow, background)
        reconstruction, target_logits = self.output_heads(target_feature, reconstruction_feature)
        return {
            "reconstruction": reconstruction,
            "target_logits": target_logits,
            "background_feature": background,
            "target_feature": target_feature,
            "reconstruction_feature": reconstruction_feature,
            "shallow_feature": shallow,
        }
