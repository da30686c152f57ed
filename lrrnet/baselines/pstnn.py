"""PSTNN: low-rank patch tensor by the partial sum of the tensor nuclear norm.

Zhang and Peng, "Infrared small target detection based on partial sum of the tensor
nuclear norm", Remote Sensing 11(4), 382, 2019.

The frame is cut into ``patch×patch`` windows at stride ``step``, stacked as the frontal
slices of the patch tensor ``D`` (``n1×n2×n3``: ``patch×patch×windows``). A self-similar
background makes ``D`` low-rank in the t-SVD sense, a small target sparse, so ``D = B + T``
is split by

    min ||B||_PSTNN + λ ||W ⊙ T||_1   subject to   D = B + T,

where ``||B||_PSTNN`` sums, over the frontal slices of ``B``'s Fourier transform along the
third axis, every singular value but the ``N`` largest: the dominant background structure is
not penalised at all, unlike the tensor nuclear norm, which shrinks it too. The weight
``W = W_rec ⊙ W_prior`` is small where a target is likely: ``W_prior = 1 / (P + ε)`` with the
local prior ``P``, and ``W_rec = 1 / (|T| + ε)`` from the last iterate (reweighting, which
makes the l1 norm act more like a count; the first iteration uses ``W_rec = 1``). The prior comes from the structure tensor
``J = G * (∇I ∇Iᵀ)`` with eigenvalues ``λ1 >= λ2``: the corner strength
``λ1 λ2 / (λ1 + λ2)`` (large only where the gradient turns, as around a blob, not along an
edge) times ``λ1``, scaled to [0, 1]. ADMM alternates the prox of the PSTNN (per Fourier
slice, an SVD whose singular values beyond the ``N``-th shrink by ``1/μ``), a weighted
soft threshold for ``T`` and the multiplier step, with ``μ`` growing by ``ρ``.

Parameters (``--param KEY=VALUE``) and their defaults:

- ``patch`` (40) and ``step`` (40): the windows, the paper's; a frame smaller than the patch
  uses its short side.
- ``lambda_l`` (0.6): ``λ = lambda_l / sqrt(max(n1, n2) · n3)``, the paper's.
- ``epsilon`` (0.01): the ``ε`` of both weights, in grey levels.
- ``mu`` (2e-3), ``rho`` (1.05), ``mu_max`` (1e10): the ADMM penalty, its growth and cap.
- ``tol`` (1e-7) and ``max_iter`` (500): stop when ``||D - B - T||_F / ||D||_F < tol``, or
  when the number of nonzero target entries stops changing (it is then the detection), or
  after ``max_iter`` iterations.
- ``rank_ratio`` (0.1): ``N`` is the number of singular values of ``D``'s mode-1 unfolding
  of at least ``rank_ratio`` times the largest (at least 1); a Fourier slice leaves unshrunk
  at most ``N`` of its own, those of at least ``rank_ratio`` times the largest of any slice
  (:func:`background_ranks` says why).
- ``gain`` (1.0) and ``k`` (None): the threshold rule of :mod:`lrrnet.baselines.threshold`.

The solver works in grey levels (the frame times 255), where ``ε`` and ``μ`` have the scale
they were set for; the response is returned in [0, 1] intensity units like the others.
docs/baselines.md, "Max-Median, MPCM and PSTNN", says which defaults are the paper's.
"""

from __future__ import annotations

import logging
import math

import cv2
import numpy as np

from lrrnet.baselines.ipi import build_patch_image, reconstruct_from_patches
from lrrnet.baselines.threshold import response_to_map
from lrrnet.errors import ConfigError

logger = logging.getLogger(__name__)

GREY_LEVELS = 255.0


def structure_prior(image: np.ndarray) -> np.ndarray:
    """The local target prior: corner strength times the larger structure-tensor eigenvalue.

    Gradients of the 3×3-Gaussian-smoothed frame, their outer products smoothed by a 3×3
    Gaussian again, ``λ1 λ2 / (λ1 + λ2) · λ1``, min-max scaled.

    Args:
        image: ``H×W`` intensities.

    Returns:
        ``H×W`` float64 prior in [0, 1] (all 0 on a frame without structure).
    """
    smooth = cv2.GaussianBlur(np.asarray(image, dtype=np.float64), (3, 3), 0)
    grad_rows, grad_cols = np.gradient(smooth)
    jxx = cv2.GaussianBlur(grad_cols * grad_cols, (3, 3), 0)
    jyy = cv2.GaussianBlur(grad_rows * grad_rows, (3, 3), 0)
    jxy = cv2.GaussianBlur(grad_rows * grad_cols, (3, 3), 0)
    half_trace = 0.5 * (jxx + jyy)
    spread = np.sqrt(np.maximum(0.25 * (jxx - jyy) ** 2 + jxy**2, 0.0))
    larger = half_trace + spread
    smaller = np.maximum(half_trace - spread, 0.0)
    total = larger + smaller
    corner = np.divide(larger * smaller, total, out=np.zeros_like(total), where=total > 0)
    prior = corner * larger
    span = float(prior.max() - prior.min())
    if span <= 0:
        return np.zeros_like(prior)
    return (prior - prior.min()) / span


def background_ranks(tensor: np.ndarray, ratio: float) -> np.ndarray:
    """How many singular values each Fourier slice keeps unshrunk, from ``D`` itself.

    ``N`` is the number of singular values of the mode-1 unfolding of at least ``ratio``
    times the largest (at least 1). A slice keeps at most ``N``, and only those of at least
    ``ratio`` times the largest singular value of any slice: on a flat background every
    slice but the mean one holds nothing but the target, which must not count as
    background there.

    Returns:
        ``n3 // 2 + 1`` int64 counts, one per slice that :func:`prox_pstnn` decomposes.
    """
    values = np.linalg.svd(tensor.reshape(tensor.shape[0], -1), compute_uv=False)
    rank = max(1, int(np.count_nonzero(values >= ratio * values[0]))) if values[0] > 0 else 1
    spectrum = np.fft.rfft(tensor, axis=2)
    per_slice = np.linalg.svd(np.moveaxis(spectrum, 2, 0), compute_uv=False)  # slices×n
    large = per_slice >= ratio * per_slice.max() if per_slice.max() > 0 else per_slice > 0
    return np.minimum(rank, large.sum(axis=1)).astype(np.int64)


def prox_pstnn(tensor: np.ndarray, ranks: np.ndarray, threshold: float) -> np.ndarray:
    """The proximal map of ``threshold · ||·||_PSTNN``.

    In the Fourier domain along the third axis frontal slice ``i`` keeps its ``ranks[i]``
    largest singular values and shrinks the others by ``threshold``. A real tensor's
    slices ``i`` and ``n3 - i`` are conjugate, so only the first ``n3 // 2 + 1`` are
    decomposed.

    Args:
        tensor: real ``n1×n2×n3`` tensor.
        ranks: singular values left unshrunk, per slice (``n3 // 2 + 1`` of them).
        threshold: shrinkage of the others.

    Returns:
        The real ``n1×n2×n3`` result.
    """
    spectrum = np.fft.rfft(tensor, axis=2)
    result = np.empty_like(spectrum)
    for index in range(spectrum.shape[2]):
        left, values, right = np.linalg.svd(spectrum[:, :, index], full_matrices=False)
        values = values.copy()
        keep = int(ranks[index])
        values[keep:] = np.maximum(values[keep:] - threshold, 0.0)
        result[:, :, index] = (left * values) @ right
    return np.fft.irfft(result, n=tensor.shape[2], axis=2)


def pstnn_decompose(
    tensor: np.ndarray,
    prior: np.ndarray,
    lambda_l: float = 0.6,
    epsilon: float = 0.01,
    mu: float = 2e-3,
    rho: float = 1.05,
    mu_max: float = 1e10,
    tol: float = 1e-7,
    max_iter: int = 500,
    rank_ratio: float = 0.1,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Split a patch tensor into background and target by ADMM on the PSTNN model.

    Args:
        tensor: ``n1×n2×n3`` patch tensor ``D``.
        prior: its local prior ``P``, the same shape, in [0, 1].
        lambda_l, epsilon, mu, rho, mu_max, tol, max_iter, rank_ratio: as in the module
            docstring.

    Returns:
        ``(B, T, n_iter)``: background and target tensors and the iterations run.
    """
    data = np.asarray(tensor, dtype=np.float64)
    n1, n2, n3 = data.shape
    lam = lambda_l / math.sqrt(max(n1, n2) * n3)
    prior_weight = 1.0 / (prior + epsilon)
    ranks = background_ranks(data, rank_ratio)
    norm = float(np.linalg.norm(data))
    background = np.zeros_like(data)
    target = np.zeros_like(data)
    dual = np.zeros_like(data)
    if norm == 0.0:
        return background, target, 0
    # Reweighting starts from the plain l1 norm, as reweighted l1 does: 1 / (0 + ε) would
    # price every entry 1/ε times higher and leave the whole frame to the background.
    weight = prior_weight
    nonzero_before = 0
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 (n_iter is returned)
        background = prox_pstnn(data - target + dual / mu, ranks, 1.0 / mu)
        residue = data - background + dual / mu
        target = np.sign(residue) * np.maximum(np.abs(residue) - lam * weight / mu, 0.0)
        weight = prior_weight / (np.abs(target) + epsilon)
        gap = data - background - target
        dual += mu * gap
        mu = min(rho * mu, mu_max)
        error = float(np.linalg.norm(gap)) / norm
        nonzero = int(np.count_nonzero(target))
        logger.debug("pstnn iter %d residual %.3e, %d target entries", n_iter, error, nonzero)
        if error < tol or (nonzero > 0 and nonzero == nonzero_before):
            break
        nonzero_before = nonzero
    return background, target, n_iter


def _check(patch: int, step: int, values: dict[str, float]) -> None:
    if int(patch) != patch or patch < 2 or int(step) != step or step < 1:
        raise ConfigError(f"pstnn: need integers patch >= 2 and step >= 1, got {patch}, {step}")
    for name, value in values.items():
        if not value > 0 or not math.isfinite(value):
            raise ConfigError(f"pstnn: {name} must be a finite number > 0, got {value!r}")
    if values["rho"] < 1:
        raise ConfigError(f"pstnn: rho must be >= 1, got {values['rho']!r}")
    if values["rank_ratio"] > 1:
        raise ConfigError(f"pstnn: rank_ratio must be in (0, 1], got {values['rank_ratio']!r}")


def pstnn_response(
    image: np.ndarray,
    patch: int = 40,
    step: int = 40,
    lambda_l: float = 0.6,
    epsilon: float = 0.01,
    mu: float = 2e-3,
    rho: float = 1.05,
    mu_max: float = 1e10,
    tol: float = 1e-7,
    max_iter: int = 500,
    rank_ratio: float = 0.1,
) -> np.ndarray:
    """The PSTNN target image: the positive part of the rebuilt target tensor.

    Arguments as for :func:`pstnn`.

    Returns:
        ``H×W`` float32 response, ``>= 0``, in the image's intensity units.

    Raises:
        ConfigError: a parameter out of range.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ConfigError(f"pstnn: expected an H×W image, got shape {image.shape}")
    numbers = {"lambda_l": lambda_l, "epsilon": epsilon, "mu": mu, "rho": rho}
    numbers |= {"mu_max": mu_max, "tol": tol, "rank_ratio": rank_ratio}
    _check(patch, step, numbers)
    if int(max_iter) != max_iter or max_iter < 1:
        raise ConfigError(f"pstnn: max_iter must be a positive integer, got {max_iter!r}")
    patch = min(int(patch), *image.shape)
    step = min(int(step), patch)
    grey = image * GREY_LEVELS
    patches, positions = build_patch_image(grey, patch=patch, step=step)
    prior_patches, _ = build_patch_image(structure_prior(grey), patch=patch, step=step)
    shape = (patch, patch, patches.shape[1])  # column j is window j, row by row
    _, target, n_iter = pstnn_decompose(
        patches.reshape(shape),
        prior_patches.reshape(shape),
        lambda_l,
        epsilon,
        mu,
        rho,
        mu_max,
        tol,
        int(max_iter),
        rank_ratio,
    )
    if n_iter == max_iter:
        logger.warning("pstnn: ADMM hit max_iter=%d before converging", max_iter)
    rebuilt = reconstruct_from_patches(
        target.reshape(patch * patch, -1), positions, image.shape, patch, reduce="median"
    )
    return (np.maximum(rebuilt, 0.0) / GREY_LEVELS).astype(np.float32)


def pstnn(
    image: np.ndarray,
    patch: int = 40,
    step: int = 40,
    lambda_l: float = 0.6,
    epsilon: float = 0.01,
    mu: float = 2e-3,
    rho: float = 1.05,
    mu_max: float = 1e10,
    tol: float = 1e-7,
    max_iter: int = 500,
    rank_ratio: float = 0.1,
    gain: float = 1.0,
    k: float | None = None,
) -> np.ndarray:
    """Target map of the PSTNN patch-tensor model.

    Args:
        image: ``H×W`` intensities in [0, 1].
        patch: window size (the paper's 40).
        step: window stride (the paper's 40).
        lambda_l: ``λ = lambda_l / sqrt(max(n1, n2) · n3)`` (the paper's 0.6).
        epsilon: ``ε`` of the prior and reweighting weights, in grey levels.
        mu: initial ADMM penalty.
        rho: growth of the penalty per iteration.
        mu_max: cap of the penalty.
        tol: relative residual at which ADMM stops.
        max_iter: iteration cap.
        rank_ratio: the singular-value ratio that sets ``N``.
        gain: fixed factor on the response before clipping to [0, 1].
        k: per-frame threshold ``mean + k·std``; None uses the fixed gain.

    Returns:
        ``H×W`` float32 target map in [0, 1].

    Raises:
        ConfigError: a parameter out of range.
    """
    if not gain > 0:
        raise ConfigError(f"pstnn: gain must be > 0, got {gain!r}")
    response = pstnn_response(
        image, patch, step, lambda_l, epsilon, mu, rho, mu_max, tol, max_iter, rank_ratio
    )
    return response_to_map(response, gain, k)
