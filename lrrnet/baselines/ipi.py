"""IPI: the infrared patch-image model (Gao et al., IEEE TIP 2013).

A frame is cut into overlapping patches, each patch becomes one column of the *patch
image* D. A smooth, self-similar background makes D nearly low-rank while a small target
touches few entries, so robust PCA splits ``D = L + S`` (low-rank background, sparse
target) by solving ``min ||L||_* + λ||S||_1`` subject to ``L + S = D``. The target image is
rebuilt from S by taking, at each pixel, the median over the patches that cover it.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import scipy.linalg
import scipy.sparse.linalg
from numpy.lib.stride_tricks import sliding_window_view

from lrrnet.baselines.threshold import response_to_map
from lrrnet.errors import ConfigError

logger = logging.getLogger(__name__)

# Partial SVD (Lanczos, PROPACK) beats the Gram route only while the predicted rank is a
# small fraction of the short side, as its cost grows with the number of triplets it finds
# (docs/baselines.md, "Top-hat and IPI").
_PARTIAL_SVD_MAX_FRACTION = 0.1
_SVD_MODES = ("auto", "full", "gram", "partial")


def _window_starts(length: int, patch: int, step: int) -> np.ndarray:
    """Top/left coordinates of the windows along one axis, the last one flush with the end."""
    starts = list(range(0, length - patch + 1, step))
    # When the step does not divide (length - patch), the regular grid stops short of the
    # border; one extra window flush with it keeps every pixel covered.
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return np.asarray(starts, dtype=np.int64)


def build_patch_image(
    image: np.ndarray, patch: int = 50, step: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Stack the sliding windows of an image as the columns of a matrix.

    Args:
        image: ``H×W`` intensities.
        patch: window width and height; at most ``min(H, W)``.
        step: stride between windows, ``1 <= step <= patch`` so every pixel is covered.

    Returns:
        ``D``, a ``patch²×N`` float64 matrix whose column ``j`` is the window at
        ``positions[j]`` flattened row by row, and ``positions``, an ``N×2`` int array of
        the windows' (top, left) corners in row-major order.

    Raises:
        ConfigError: a window larger than the image or a step out of range.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ConfigError(f"ipi: expected an H×W image, got shape {image.shape}")
    height, width = image.shape
    if not 1 <= patch <= min(height, width):
        raise ConfigError(f"ipi: patch must be in [1, {min(height, width)}], got {patch}")
    if not 1 <= step <= patch:
        raise ConfigError(f"ipi: step must be in [1, patch={patch}], got {step}")
    rows = _window_starts(height, patch, step)
    cols = _window_starts(width, patch, step)
    windows = sliding_window_view(image, (patch, patch))  # a view: (H-p+1)×(W-p+1)×p×p
    selected = windows[rows[:, None], cols[None, :]]  # copies only the chosen windows
    patch_image = np.ascontiguousarray(selected.reshape(len(rows) * len(cols), patch * patch).T)
    positions = np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1).reshape(-1, 2)
    return patch_image, positions


def _interval_groups(starts: np.ndarray, patch: int) -> np.ndarray:
    """Give each window start a group so that windows in one group never overlap.

    Greedy colouring of intervals ``[s, s + patch)`` in sorted order; it uses as many
    groups as the deepest overlap (``ceil(patch / step)``, plus one for a flush window).
    """
    unique = np.unique(starts)
    group_ends: list[int] = []
    group_of: dict[int, int] = {}
    for start in unique.tolist():
        for group, end in enumerate(group_ends):
            if end <= start:
                group_ends[group] = start + patch
                group_of[start] = group
                break
        else:
            group_of[start] = len(group_ends)
            group_ends.append(start + patch)
    return np.asarray([group_of[s] for s in starts.tolist()], dtype=np.int64)


def reconstruct_from_patches(
    patch_image: np.ndarray,
    positions: np.ndarray,
    shape: tuple[int, int],
    patch: int,
    reduce: str = "median",
) -> np.ndarray:
    """Fold a patch image back into an image, reducing overlapping windows per pixel.

    Args:
        patch_image: ``patch²×N`` matrix, columns laid out as by :func:`build_patch_image`.
        positions: ``N×2`` (top, left) corners of the windows.
        shape: ``(H, W)`` of the image to rebuild.
        patch: window width and height.
        reduce: ``"median"`` (Gao et al.: robust to a target seen by only some windows) or
            ``"mean"``.

    Returns:
        ``H×W`` float32 image; pixels no window covers are 0.
    """
    if reduce not in ("median", "mean"):
        raise ConfigError(f"ipi: reduce must be 'median' or 'mean', got {reduce!r}")
    positions = np.asarray(positions, dtype=np.int64)
    if patch_image.shape != (patch * patch, len(positions)):
        raise ValueError(
            f"patch image of shape {patch_image.shape} does not match {len(positions)} "
            f"windows of {patch}×{patch}"
        )
    windows = np.asarray(patch_image, dtype=np.float32).T.reshape(-1, patch, patch)
    height, width = shape
    if reduce == "mean":
        total = np.zeros(shape, dtype=np.float64)
        count = np.zeros(shape, dtype=np.int64)
        for (top, left), window in zip(positions, windows, strict=True):
            total[top : top + patch, left : left + patch] += window
            count[top : top + patch, left : left + patch] += 1
        return (total / np.maximum(count, 1)).astype(np.float32)

    # Median: lay the windows out on layers in which no two overlap, so each layer is a
    # plain image (NaN where no window of it lies); the per-pixel median over the layers is
    # then one sort along the last axis instead of a Python loop over pixels.
    row_groups = _interval_groups(positions[:, 0], patch)
    col_groups = _interval_groups(positions[:, 1], patch)
    num_col_groups = int(col_groups.max()) + 1
    layer_of = row_groups * num_col_groups + col_groups
    layers = np.full((height, width, int(layer_of.max()) + 1), np.nan, dtype=np.float32)
    for (top, left), layer, window in zip(positions, layer_of, windows, strict=True):
        layers[top : top + patch, left : left + patch, layer] = window
    layers.sort(axis=-1)  # NaN sorts last
    count = np.count_nonzero(~np.isnan(layers), axis=-1)
    low = np.take_along_axis(layers, np.maximum(count - 1, 0)[..., None] // 2, axis=-1)
    high = np.take_along_axis(layers, (count // 2)[..., None], axis=-1)
    median = 0.5 * (low[..., 0] + high[..., 0])
    median[count == 0] = 0.0
    return median.astype(np.float32)


def _shrink_by_gram(matrix: np.ndarray, threshold: float) -> tuple[np.ndarray, int]:
    """Singular value thresholding through the eigenvectors of the smaller Gram matrix.

    With ``M = U Σ Vᵀ`` and ``MᵀM = V Σ² Vᵀ``, the thresholded matrix is
    ``U (Σ - t)₊ Vᵀ = M V diag((1 - t/σ)₊) Vᵀ``: the left vectors are never formed, so the
    cost is one ``m×n×n`` product and an ``n×n`` symmetric eigenproblem, about 2.5× less
    than a full SVD of a tall patch image. Squaring loses precision only for singular values
    near ``sqrt(eps)·σ_max``, whose shrunk contribution ``σ - t`` is that small too; the tests
    check the result against the full SVD.
    """
    tall = matrix.shape[0] >= matrix.shape[1]
    gram = matrix.T @ matrix if tall else matrix @ matrix.T
    eigenvalues, vectors = np.linalg.eigh(gram)
    singular_values = np.sqrt(np.maximum(eigenvalues, 0.0))
    keep = singular_values > threshold
    vectors = vectors[:, keep]
    factors = 1.0 - threshold / singular_values[keep]
    if tall:
        return ((matrix @ vectors) * factors) @ vectors.T, int(keep.sum())
    return (vectors * factors) @ (vectors.T @ matrix), int(keep.sum())


def _singular_value_threshold(
    matrix: np.ndarray, threshold: float, rank_guess: int, svd: str
) -> tuple[np.ndarray, int]:
    """Shrink the singular values of ``matrix`` by ``threshold`` (the prox of the nuclear norm).

    Only singular values above ``threshold`` survive, so a partial SVD of ``rank_guess``
    triplets is exact when its smallest value is already below the threshold; otherwise
    it may have missed some and the Gram route (or the full SVD) is taken instead.

    Returns:
        The shrunk matrix and its rank.
    """
    short_side = min(matrix.shape)
    use_partial = svd == "partial" or (
        svd == "auto" and rank_guess <= _PARTIAL_SVD_MAX_FRACTION * short_side
    )
    # PROPACK needs k < short side; beyond that a partial SVD is no longer partial.
    if use_partial and rank_guess < short_side - 1:
        try:
            left, values, right = scipy.sparse.linalg.svds(
                matrix, k=rank_guess, solver="propack", rng=np.random.default_rng(0)
            )
        except np.linalg.LinAlgError:
            # Lanczos may not converge on nearly equal singular values; the exact routes
            # below do not have that failure mode.
            values = np.array([np.inf])
        if values.min() <= threshold:
            keep = values > threshold
            return (left[:, keep] * (values[keep] - threshold)) @ right[keep], int(keep.sum())
    if svd == "full":
        left, values, right = scipy.linalg.svd(
            matrix, full_matrices=False, lapack_driver="gesdd", check_finite=False
        )
        rank = int(np.count_nonzero(values > threshold))
        return (left[:, :rank] * (values[:rank] - threshold)) @ right[:rank], rank
    return _shrink_by_gram(matrix, threshold)


def _soft_threshold(matrix: np.ndarray, threshold: float) -> np.ndarray:
    """Entry-wise shrinkage towards zero (the prox of the l1 norm)."""
    return np.sign(matrix) * np.maximum(np.abs(matrix) - threshold, 0.0)


def _largest_singular_value(matrix: np.ndarray) -> float:
    """The spectral norm, by Lanczos (one triplet) with the full SVD as the fallback."""
    if min(matrix.shape) >= 3:
        try:
            values = scipy.sparse.linalg.svds(
                matrix,
                k=1,
                solver="propack",
                rng=np.random.default_rng(0),
                return_singular_vectors=False,
            )
            return float(values[0])
        except np.linalg.LinAlgError:
            pass
    return float(scipy.linalg.norm(matrix, 2))


def rpca_ialm(
    matrix: np.ndarray,
    lam: float | None = None,
    tol: float = 1e-7,
    max_iter: int = 500,
    svd: str = "auto",
) -> tuple[np.ndarray, np.ndarray, int]:
    """Robust PCA by the inexact augmented Lagrange multiplier method.

    Solves ``min ||L||_* + lam·||S||_1`` s.t. ``L + S = D`` by alternating the two
    proximal steps on the augmented Lagrangian
    ``||L||_* + lam||S||_1 + <Y, D - L - S> + mu/2 ||D - L - S||_F²``:
    ``S`` = soft-threshold of ``D - L + Y/mu`` by ``lam/mu``, ``L`` = singular value
    threshold of ``D - S + Y/mu`` by ``1/mu``, then ``Y += mu (D - L - S)`` and
    ``mu *= 1.5`` (capped at ``1e7`` times its start). ``Y`` starts at
    ``D / max(||D||_2, ||D||_inf / lam)`` and ``mu`` at ``1.25 / ||D||_2``.

    Args:
        matrix: ``m×n`` data matrix ``D``.
        lam: weight of the sparse term; ``1 / sqrt(max(m, n))`` when None.
        tol: stop when ``||D - L - S||_F / ||D||_F < tol``.
        max_iter: iteration cap.
        svd: how the singular value thresholding is computed, all exact to the
            tolerance: ``"full"`` (LAPACK SVD every iteration), ``"gram"`` (eigenvectors
            of the smaller Gram matrix, about 2.5× faster on patch images), ``"partial"``
            (Lanczos for the predicted rank, Gram route when the prediction falls short)
            or ``"auto"`` (partial while the predicted rank is under a tenth of the short
            side, Gram route otherwise).

    Returns:
        ``(L, S, n_iter)``: the ``m×n`` low-rank and sparse parts and the iterations run.
    """
    data = np.asarray(matrix, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"rpca_ialm expects a matrix, got shape {data.shape}")
    if svd not in _SVD_MODES:
        raise ConfigError(f"ipi: svd must be one of {_SVD_MODES}, got {svd!r}")
    if not tol > 0 or max_iter < 1:
        raise ConfigError(f"ipi: need tol > 0 and max_iter >= 1, got {tol}, {max_iter}")
    rows, cols = data.shape
    if lam is None:
        lam = 1.0 / math.sqrt(max(rows, cols))
    norm_fro = float(np.linalg.norm(data))
    low_rank = np.zeros_like(data)
    sparse = np.zeros_like(data)
    if norm_fro == 0.0:
        return low_rank, sparse, 0

    norm_two = _largest_singular_value(data)
    # Y starts as the scaled dual certificate: feasible for the dual norm of both terms.
    dual = data / max(norm_two, float(np.abs(data).max()) / lam)
    mu = 1.25 / norm_two
    mu_max = mu * 1e7
    rho = 1.5
    short_side = min(rows, cols)
    rank_guess = min(10, short_side)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 (n_iter is returned)
        sparse = _soft_threshold(data - low_rank + dual / mu, lam / mu)
        low_rank, rank = _singular_value_threshold(
            data - sparse + dual / mu, 1.0 / mu, rank_guess, svd
        )
        residual = data - low_rank - sparse
        dual += mu * residual
        mu = min(mu * rho, mu_max)
        error = float(np.linalg.norm(residual)) / norm_fro
        logger.debug("ialm iter %d rank %d residual %.3e", n_iter, rank, error)
        if error < tol:
            break
        # Rank prediction for the next partial SVD: one more than now when the rank has
        # settled, a 5 % jump of the short side while it is still growing.
        if rank < rank_guess:
            rank_guess = min(rank + 1, short_side)
        else:
            rank_guess = min(rank + max(1, round(0.05 * short_side)), short_side)
    return low_rank, sparse, n_iter


def ipi_response(
    image: np.ndarray,
    patch: int = 50,
    step: int = 10,
    lam: float | None = None,
    tol: float = 1e-7,
    max_iter: int = 500,
    svd: str = "auto",
) -> np.ndarray:
    """The IPI target image in intensity units: the positive part of the rebuilt sparse part.

    Arguments as for :func:`ipi`.

    Returns:
        ``H×W`` float32 response, ``>= 0``.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ConfigError(f"ipi: expected an H×W image, got shape {image.shape}")
    if int(patch) != patch or patch < 1 or int(step) != step or step < 1:
        raise ConfigError(f"ipi: patch and step must be positive integers, got {patch}, {step}")
    patch = min(int(patch), *image.shape)
    step = min(int(step), patch)
    patch_image, positions = build_patch_image(image, patch=patch, step=step)
    _, sparse, n_iter = rpca_ialm(patch_image, lam=lam, tol=tol, max_iter=max_iter, svd=svd)
    if n_iter == max_iter:
        logger.warning("ipi: robust PCA hit max_iter=%d before tol=%g", max_iter, tol)
    target = reconstruct_from_patches(sparse, positions, image.shape, patch, reduce="median")
    return np.maximum(target, 0.0).astype(np.float32)


def ipi(
    image: np.ndarray,
    patch: int = 50,
    step: int = 10,
    lam: float | None = None,
    tol: float = 1e-7,
    max_iter: int = 500,
    svd: str = "auto",
    gain: float = 1.0,
    k: float | None = None,
) -> np.ndarray:
    """Target map of the infrared patch-image model.

    Images narrower or shorter than ``patch`` are processed with the patch shrunk to the
    image's short side (and the step to at most the patch), so every frame gets a map
    instead of an error.

    Scaling: the target image is the positive part of the rebuilt sparse component (a
    target is brighter than its background; negative residue is background the low-rank
    part overshot), kept in the image's intensity units, multiplied by the fixed ``gain``
    and clipped to [0, 1]. As for the top-hat, a fixed gain rather than the per-image
    maximum keeps a threshold comparable across frames. With ``k``, the frame's own
    ``mean + k·std`` of the response is the threshold instead (see
    :mod:`lrrnet.baselines.threshold`).

    Args:
        image: ``H×W`` intensities in [0, 1].
        patch: sliding window size (Gao et al.: 50).
        step: sliding window stride (Gao et al.: 10).
        lam: sparse weight; ``1 / sqrt(max(m, n))`` of the patch image when None.
        tol: relative residual at which robust PCA stops.
        max_iter: robust PCA iteration cap.
        svd: SVD strategy of :func:`rpca_ialm`.
        gain: fixed factor on the target image before clipping to [0, 1].
        k: per-frame threshold ``mean + k·std``; None uses the fixed gain.

    Returns:
        ``H×W`` float32 target map in [0, 1].
    """
    if not gain > 0:
        raise ConfigError(f"ipi: gain must be > 0, got {gain!r}")
    response = ipi_response(image, patch, step, lam, tol, max_iter, svd)
    return response_to_map(response, gain, k)
