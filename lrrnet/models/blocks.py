"""Building blocks of LRRNet: residual block, self-attention, down- and upsampling.

Attribute names (``norm_1``, ``conv_2``, ``residual_connection``, ``attention.to_qkv``,
``downsample``, ``upsample`` …) are those of the released checkpoints, so their state dicts
load with no key mapping. Do not rename them.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

AttentionImpl = Literal["sdpa", "naive"]
ATTENTION_IMPLS: tuple[str, ...] = ("sdpa", "naive")


def check_attention_impl(impl: str) -> str:
    """Returns ``impl`` when it names an attention path, raises ValueError otherwise."""
    if impl not in ATTENTION_IMPLS:
        raise ValueError(f"attention_impl must be one of {ATTENTION_IMPLS}, got {impl!r}")
    return impl


class GroupNorm(nn.GroupNorm):
    """``nn.GroupNorm`` that stays accurate for channels_last tensors on the CPU.

    PyTorch's CPU kernel for channels_last inputs computes the variance in one pass as
    E[x²] − E[x]², which cancels catastrophically in float32 when a group's mean is large
    next to its spread, while the contiguous kernel stays accurate (docs/speed.md, "CPU",
    has the errors). Such inputs are common here (bright, flat infrared backgrounds), so
    channels_last CPU tensors take a two-pass path instead: group mean from per-channel
    means, then the variance of the centred values. It keeps the channels_last layout (the
    convolutions are what gain from it) and matches the contiguous kernel to float rounding.
    Other inputs use the stock kernel. Same parameters and state dict keys as
    ``nn.GroupNorm``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.dim() != 4 or x.is_contiguous():
            return super().forward(x)
        return self._two_pass(x)

    def _two_pass(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: B×C×H×W (any layout). Returns: B×C×H×W in x's layout and dtype."""
        batch, channels = x.shape[:2]
        groups = self.num_groups
        values = x.float()  # statistics in float32 even for bf16 activations

        def per_group(per_channel: torch.Tensor) -> torch.Tensor:
            """B×C×1×1 → group average broadcast back to B×C×1×1."""
            grouped = per_channel.view(batch, groups, channels // groups)
            averaged = grouped.mean(dim=-1, keepdim=True).expand_as(grouped)
            return averaged.reshape(batch, channels, 1, 1)

        # Equal-sized channels make the group mean the mean of the channel means.
        centred = values - per_group(values.mean(dim=(2, 3), keepdim=True))
        variance = per_group(centred.square().mean(dim=(2, 3), keepdim=True))
        scale = torch.rsqrt(variance + self.eps)
        if self.weight is not None:
            scale = scale * self.weight.view(1, channels, 1, 1)
        if self.bias is None:
            return (centred * scale).to(x.dtype)
        return torch.addcmul(self.bias.view(1, channels, 1, 1), centred, scale).to(x.dtype)


class AttentionBlock(nn.Module):
    """Single-head self-attention over all H·W positions, with a residual add.

    Every query position attends to every key position of the same image:
    ``softmax(q·kᵀ · C^-0.5) · v`` with the softmax over the H·W keys.

    Two paths give the same numbers (within float rounding): ``"sdpa"`` calls
    :func:`torch.nn.functional.scaled_dot_product_attention` (fused kernels, no H·W × H·W
    matrix kept for backward on GPU), ``"naive"`` spells the formula out, as the original
    code did. Switch with the ``impl`` attribute.

    Args:
        channels: C, the feature width.
        num_groups: GroupNorm groups.
        impl: ``"sdpa"`` or ``"naive"``.
    """

    def __init__(self, channels: int, *, num_groups: int, impl: AttentionImpl = "sdpa") -> None:
        super().__init__()
        self.channels = channels
        self.impl = check_attention_impl(impl)
        self.norm = GroupNorm(num_groups, channels)
        self.to_qkv = nn.Conv2d(channels, 3 * channels, kernel_size=1)
        self.to_out = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: B×C×H×W. Returns: B×C×H×W."""
        batch, channels, height, width = x.shape
        qkv = self.to_qkv(self.norm(x))
        # Tokens B×(H·W)×3C with the channels contiguous: free for channels_last inputs, one
        # copy otherwise. The copy matters: for a contiguous input the reshape alone is a view
        # whose channel stride is H·W, and CUDA's sdpa then falls back to its slow math path
        # (docs/speed.md, "GPU").
        tokens = qkv.permute(0, 2, 3, 1).reshape(batch, height * width, 3 * channels).contiguous()
        query, key, value = tokens.split(channels, dim=-1)
        attended = self._attend(query, key, value)
        attended = attended.reshape(batch, height, width, channels).permute(0, 3, 1, 2)
        return self.to_out(attended) + x

    def _attend(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """Args: query, key, value: B×N×C. Returns: B×N×C."""
        scale = self.channels**-0.5
        # The fused CUDA attention kernels accumulate gradients with atomics; a run that asked
        # for deterministic algorithms takes the explicit formula there (same function).
        deterministic_cuda = query.is_cuda and torch.are_deterministic_algorithms_enabled()
        if self.impl == "sdpa" and not deterministic_cuda:
            # A head axis of size 1 lets every backend (flash, memory-efficient, CPU) accept it.
            attended = F.scaled_dot_product_attention(
                query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1), scale=scale
            )
            return attended.squeeze(1)
        weights = torch.softmax(query @ key.transpose(1, 2) * scale, dim=-1)  # B×N(query)×N(key)
        return weights @ value


class Dropout(nn.Dropout):
    """``nn.Dropout`` whose CPU training mask is drawn from uniform numbers.

    The same distribution (each element kept with probability 1 − p, kept ones scaled by
    1 / (1 − p)) and the same gradient, but PyTorch's CPU ``bernoulli_`` is slow: more than
    twice the time of this uniform draw, and a noticeable share of a CPU training step
    (docs/speed.md, "CPU"). The random stream differs from ``F.dropout``'s, not its law.
    CUDA, eval mode and p = 0 or 1 use the stock path. No parameters, so no state dict keys.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or x.device.type != "cpu" or not 0.0 < self.p < 1.0:
            return super().forward(x)
        # Drawn in float32 whatever x's dtype, so that p is not rounded to a bf16 step.
        mask = torch.rand_like(x, dtype=torch.float32).ge_(self.p).mul_(1.0 / (1.0 - self.p))
        if self.inplace:
            return x.mul_(mask.to(x.dtype))
        return x * mask.to(x.dtype)


class ResidualBlock(nn.Module):
    """GN → ReLU → 3×3 conv → GN → ReLU → dropout → 3×3 conv, × scale, + shortcut, [attention].

    Args:
        in_channels: input width.
        out_channels: output width.
        dropout: dropout probability before the second conv.
        num_groups: GroupNorm groups (must divide both widths).
        use_attention: append an :class:`AttentionBlock` after the residual add.
        attention_impl: ``"sdpa"`` or ``"naive"`` (only used with attention).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        dropout: float,
        num_groups: int,
        use_attention: bool = False,
        attention_impl: AttentionImpl = "sdpa",
    ) -> None:
        super().__init__()
        self.norm_1 = GroupNorm(num_groups, in_channels)
        self.conv_1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.norm_2 = GroupNorm(num_groups, out_channels)
        # Dropout sits at index 0 so the conv's key is "conv_2.1", as in the released weights.
        self.conv_2 = nn.Sequential(
            Dropout(p=dropout),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1),
        )
        # A learned per-channel gain on the residual branch, starting as the identity.
        self.scale = nn.Parameter(torch.ones(1, out_channels, 1, 1))
        self.residual_connection: nn.Module = (
            nn.Conv2d(in_channels, out_channels, kernel_size=1)
            if in_channels != out_channels
            else nn.Identity()
        )
        self.attention: nn.Module = (
            AttentionBlock(out_channels, num_groups=num_groups, impl=attention_impl)
            if use_attention
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: B×in×H×W. Returns: B×out×H×W."""
        # In-place ReLU: the norm's output is a fresh tensor that nothing else reads, and
        # neither GroupNorm's backward nor ReLU's needs it, so this saves one full-size pass.
        branch = self.conv_1(F.relu(self.norm_1(x), inplace=True))
        branch = self.conv_2(F.relu(self.norm_2(branch), inplace=True))
        # residual + branch · scale in one pass.
        return self.attention(torch.addcmul(self.residual_connection(x), branch, self.scale))


class Downsample(nn.Module):
    """3×3 conv with stride 2: B×C×H×W → B×C×H/2×W/2 (H and W even)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.downsample = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x)


class Upsample(nn.Module):
    """Nearest ×2, then 3×3 conv: B×C×H×W → B×C×2H×2W."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        # Sequential with the resize at index 0 so the conv's key is "upsample.1".
        self.upsample = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(channels, channels, kernel_size=3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample(x)
