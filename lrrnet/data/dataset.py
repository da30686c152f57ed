"""The PyTorch training dataset and the sampler that feeds it.

Training randomness comes only from ``np.random.default_rng([seed, epoch, index])`` and the
order of an epoch from ``(seed, epoch)``, so a sample is the same whatever the number of
DataLoader workers, the order they run in, or a resume in the middle of an epoch.
Evaluation does not go through a Dataset: the evaluator (:mod:`lrrnet.engine.evaluator`)
reads each frame at its own size and groups equal sizes into batches, so that one
unreadable frame is reported instead of ending the run.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from lrrnet.data.io import image_to_unit, read_image_gray, read_mask_levels
from lrrnet.data.layouts import Sample
from lrrnet.data.transforms import (
    add_gaussian_noise,
    random_crop_pair,
    random_flip_transpose,
    resize_mask,
    resize_pair,
)
from lrrnet.domains import Domain
from lrrnet.errors import ConfigError, DataError, UserError
from lrrnet.models.padding import SIZE_MULTIPLE

TRAIN_MODES = ("resize", "crop")

# Training sides in pixels; each must also be a multiple of what the network halves it to
# (:func:`check_size`).
BASE_SIZE = Domain("data.base_size", low=0, low_open=True, integer=True)
CROP_SIZE = Domain("data.crop_size", low=0, low_open=True, integer=True)
POS_PROB = Domain("data.pos_prob", 0.0, 1.0)
EDGE_PROB = Domain("data.edge_prob", 0.0, 1.0)
# Grey levels (0–255) of added training noise.
NOISE_SIGMA = Domain("data.noise_sigma", low=0.0, note="0: off")
NUM_WORKERS = Domain("data.num_workers", low=0, integer=True, note="0: load in the main process")
# The run's seed; every draw of the data derives from it, and NumPy's generators take
# non-negative seeds only.
SEED = Domain("seed", low=0, integer=True)
DOMAINS = (BASE_SIZE, CROP_SIZE, POS_PROB, EDGE_PROB, NOISE_SIGMA, NUM_WORKERS, SEED)


def check_size(domain: Domain, value: int, multiple: int) -> int:
    """Returns ``value`` when it is in ``domain`` (:data:`BASE_SIZE`, :data:`CROP_SIZE`) and a
    multiple of ``multiple``, the network's ``size_multiple``; raises ConfigError otherwise."""
    domain.check(value)
    if value % multiple:
        halvings = multiple.bit_length() - 1
        raise ConfigError(
            f"config key '{domain.key}' = {value} must be a multiple of {multiple} "
            f"(the network halves it {halvings} times: len(model.channel_mults) - 1)"
        )
    return value


class TrainDataset(Dataset):
    """Training samples: image and binary mask of one fixed size, augmented.

    Args:
        samples: training samples; every one needs a mask.
        mode: ``"resize"`` every frame to ``base_size`` (the published recipe) or ``"crop"``
            a random ``crop_size`` window from the frame at its own size (padded with zeros
            when smaller).
        base_size: output side in ``"resize"`` mode, a multiple of ``size_multiple``.
        crop_size: output side in ``"crop"`` mode, a multiple of ``size_multiple``.
        pos_prob: in ``"crop"`` mode, chance of a crop forced to contain a target.
        edge_prob: in ``"crop"`` mode, chance per axis of a crop placed against a frame
            edge (:func:`~lrrnet.data.transforms.random_crop_pair`).
        augment: random vertical/horizontal flips and transposes, p = 0.5 each.
        noise_sigma: std of added Gaussian noise in grey levels (0–255); 0 is off.
        seed: the run's seed.
        size_multiple: what the network needs sides to be multiples of (its
            ``size_multiple``: 8 for the published network, 16 with five levels).

    The augmentation of an item is a pure function of (seed, epoch, index); the epoch
    travels with the index, ``dataset[(epoch, index)]``, as :class:`EpochSampler` yields,
    because persistent DataLoader workers hold a copy of the dataset that a setter on it
    would never reach.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        mode: str = "resize",
        base_size: int = 512,
        crop_size: int = 256,
        pos_prob: float = 0.5,
        edge_prob: float = 0.0,
        augment: bool = False,
        noise_sigma: float = 0.0,
        seed: int = 1,
        size_multiple: int = SIZE_MULTIPLE,
    ) -> None:
        if mode not in TRAIN_MODES:
            raise ConfigError(f"data.train_mode: unknown mode {mode!r}; expected {TRAIN_MODES}")
        if mode == "resize":
            check_size(BASE_SIZE, base_size, size_multiple)
        else:
            check_size(CROP_SIZE, crop_size, size_multiple)
        POS_PROB.check(pos_prob)
        EDGE_PROB.check(edge_prob)
        NOISE_SIGMA.check(noise_sigma)
        SEED.check(seed)
        unmasked = [s.image for s in samples if s.mask is None]
        if unmasked:
            raise DataError(
                f"{unmasked[0]}: training image without a mask ({len(unmasked)} in all)"
            )
        self.samples = list(samples)
        self.mode = mode
        self.base_size = base_size
        self.crop_size = crop_size
        self.pos_prob = pos_prob
        self.edge_prob = edge_prob
        self.augment = augment
        self.noise_sigma = noise_sigma
        self.seed = seed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int | tuple[int, int]) -> dict:
        """One augmented sample; ``index`` is an ``(epoch, position)`` pair (a position alone
        is one of epoch 0).

        Returns:
            ``image``: ``1×S×S`` float32 in [0, 1]; ``mask``: ``1×S×S`` float32 in [0, 1]
            (the mask divided by its maximum: {0, 1} for a binary mask);
            ``name``: the sample's name.
        """
        epoch, index = index if isinstance(index, tuple) else (0, index)
        sample = self.samples[index]
        rng = np.random.default_rng([self.seed, epoch, index])
        # As the published recipe: the frame resized in its own type (uint8 for 8-bit files)
        # and then divided by 255 (65535 for 16-bit), the mask divided by its maximum. A mask
        # drawn at another size (SIRST v1 Misc_111) is fitted to its frame first.
        image = read_image_gray(sample.image)
        mask = resize_mask(read_mask_levels(sample.mask), image.shape)
        if self.mode == "resize":
            image, mask = resize_pair(image, mask, self.base_size)
        image = image_to_unit(image, sample.image)
        if self.mode == "crop":
            image, mask = random_crop_pair(
                image, mask, self.crop_size, self.pos_prob, rng, edge_prob=self.edge_prob
            )
        if self.augment:
            image, mask = random_flip_transpose(image, mask, rng)
        image = add_gaussian_noise(image, self.noise_sigma, rng)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)[None]),
            "mask": torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32)[None]),
            "name": sample.name,
        }


class EpochSampler(Sampler[tuple[int, int]]):
    """A permutation per epoch from (seed, epoch), split across ranks, resumable mid-epoch.

    Like ``DistributedSampler`` with ``drop_last=True`` (every rank gets the same number of
    indices), plus ``start_batch`` to skip the batches an interrupted run already trained on
    without loading them. It yields ``(epoch, index)`` pairs for :class:`TrainDataset`.
    """

    def __init__(self, size: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.per_rank = size // world_size
        self.batches_per_epoch = self.per_rank // batch_size
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """The epoch the next iterator draws, from its batch ``start_batch`` on."""
        self.epoch, self.start_batch = epoch, start_batch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.size, generator=generator)[: self.per_rank * self.world_size]
        mine = order[self.rank :: self.world_size][: self.batches_per_epoch * self.batch_size]
        # The epoch travels with each index: persistent workers hold their own copy of the
        # dataset, which no setter called here would reach.
        return iter(
            (self.epoch, index) for index in mine[self.start_batch * self.batch_size :].tolist()
        )

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size


def train_loader(
    dataset: TrainDataset,
    batch_size: int,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """Whole batches of ``dataset`` in the order of an :class:`EpochSampler` (its ``sampler``).

    Raises:
        UserError: the split holds fewer images than one batch per process.
        ConfigError: a negative ``num_workers``.
    """
    NUM_WORKERS.check(num_workers)
    sampler = EpochSampler(len(dataset), batch_size, seed, rank, world_size)
    if sampler.batches_per_epoch == 0:
        raise UserError(
            f"train split has {len(dataset)} images, fewer than one batch per process "
            f"(train.batch_size={batch_size}, {world_size} process(es))"
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        worker_init_fn=seed_worker,
        # A private generator: creating an iterator must not draw from the global RNG, or a
        # mid-epoch resume would shift every later dropout mask.
        generator=torch.Generator().manual_seed(seed),
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        drop_last=True,
    )


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn`` seeding NumPy and ``random`` from the worker's torch seed.

    The dataset above does not need it (they seed per sample), but code added later that
    calls ``np.random`` directly would otherwise draw the same numbers in every worker.
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
