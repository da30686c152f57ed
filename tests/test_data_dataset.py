"""Training and evaluation datasets: outputs, sizes, determinism across workers and epochs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lrrnet.data.dataset import EpochSampler, TrainDataset, seed_worker, train_loader
from lrrnet.data.layouts import Sample
from lrrnet.errors import ConfigError, DataError, UserError


def _write_sample(folder: Path, name: str, height: int, width: int, seed: int) -> Sample:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width), dtype=np.uint8)
    mask = np.zeros((height, width), np.uint8)
    mask[height // 2 : height // 2 + 3, width // 3 : width // 3 + 3] = 255
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "images" / f"{name}.png"), image)
    cv2.imwrite(str(folder / "masks" / f"{name}.png"), mask)
    return Sample(name, folder / "images" / f"{name}.png", folder / "masks" / f"{name}.png")


@pytest.fixture
def samples(tmp_path: Path) -> list[Sample]:
    sizes = [(40, 40), (24, 56), (40, 40), (30, 20), (40, 40), (24, 56)]
    return [_write_sample(tmp_path, f"f{i}", h, w, i) for i, (h, w) in enumerate(sizes)]


@pytest.mark.parametrize("mode", ["resize", "crop"])
def test_mask_of_another_size_is_resized_to_its_frame(tmp_path: Path, mode):
    # A 12×16 frame whose mask was drawn at 24×32 (as SIRST v1 Misc_111): the target's 2×2
    # block becomes 1×1 at the frame's size, then follows the frame through resize or crop.
    image = np.full((12, 16), 50, np.uint8)
    image[6, 8] = 250
    mask = np.zeros((24, 32), np.uint8)
    mask[12:14, 16:18] = 255
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), image)
    cv2.imwrite(str(tmp_path / "masks" / "a.png"), mask)
    sample = Sample("a", tmp_path / "images" / "a.png", tmp_path / "masks" / "a.png")
    item = TrainDataset([sample], mode=mode, base_size=16, crop_size=16, pos_prob=1.0)[0]
    assert item["image"].shape == item["mask"].shape == (1, 16, 16)
    target = torch.nonzero(item["mask"][0]).tolist()
    brightest = divmod(int(item["image"][0].argmax()), 16)
    assert len(target) == (1 if mode == "crop" else 2) and list(brightest) in target


def _epoch(dataset: TrainDataset, epoch: int, num_workers: int) -> list[dict]:
    """Every item of ``epoch`` in order, in batches of 2."""
    loader = DataLoader(
        dataset,
        batch_size=2,
        sampler=[(epoch, index) for index in range(len(dataset))],
        num_workers=num_workers,
        worker_init_fn=seed_worker,
    )
    return list(loader)


def test_resize_mode_outputs(samples):
    dataset = TrainDataset(samples, mode="resize", base_size=32)
    item = dataset[1]
    assert item["image"].shape == item["mask"].shape == (1, 32, 32)
    assert item["image"].dtype == item["mask"].dtype == torch.float32
    assert set(item["mask"].unique().tolist()) == {0.0, 1.0}
    assert item["image"].min() >= 0.0 and item["image"].max() <= 1.0
    assert item["name"] == "f1"


def test_crop_mode_pads_and_finds_targets(samples):
    dataset = TrainDataset(samples, mode="crop", crop_size=32, pos_prob=1.0, augment=True)
    for index in range(len(dataset)):
        item = dataset[index]
        assert item["image"].shape == (1, 32, 32)
        assert item["mask"].sum() > 0  # pos_prob=1 always keeps the target in the crop


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"mode": "resize", "base_size": 30}, "data.base_size"),
        ({"mode": "crop", "crop_size": 20}, "data.crop_size"),
        ({"mode": "tile"}, "data.train_mode"),
    ],
)
def test_invalid_geometry_names_the_key(samples, kwargs, key):
    with pytest.raises(ConfigError, match=key):
        TrainDataset(samples, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"pos_prob": 1.5}, "'data.pos_prob' = 1.5 must be in \\[0, 1\\]"),
        ({"noise_sigma": -1.0}, "'data.noise_sigma' must be >= 0"),
        ({"noise_sigma": float("nan")}, "'data.noise_sigma' = nan must be finite"),
        ({"seed": -1}, "'seed' must be >= 0"),
        ({"base_size": 32.0}, "'data.base_size' expects an int"),
    ],
)
def test_training_numbers_outside_their_domain_name_the_key(samples, kwargs, pattern):
    with pytest.raises(ConfigError, match=pattern):
        TrainDataset(samples, **kwargs)


def test_a_negative_worker_count_is_refused_before_any_loader(samples):
    with pytest.raises(ConfigError, match="'data.num_workers' must be >= 0"):
        train_loader(TrainDataset(samples, base_size=32), 2, seed=1, num_workers=-1)


def test_training_sample_without_mask_is_refused(samples):
    unmasked = Sample("x", samples[0].image, None)
    with pytest.raises(DataError, match="f0.png: training image without a mask"):
        TrainDataset([unmasked])


def test_same_batches_with_any_number_of_workers_and_after_recreation(samples):
    options = {"mode": "crop", "crop_size": 16, "augment": True, "noise_sigma": 3.0, "seed": 7}
    dataset = TrainDataset(samples, **options)
    single = _epoch(dataset, 2, num_workers=0)
    parallel = _epoch(dataset, 2, num_workers=2)
    resumed_item = TrainDataset(samples, **options)[(2, 3)]  # a resume mid-epoch: item 3 alone
    for a, b in zip(single, parallel, strict=True):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    assert torch.equal(single[1]["image"][1], resumed_item["image"])

    next_epoch = _epoch(dataset, 3, num_workers=0)
    assert not torch.equal(single[0]["image"], next_epoch[0]["image"])
    other_seed = TrainDataset(samples, **{**options, "seed": 8})
    assert not torch.equal(other_seed[(2, 0)]["image"], single[0]["image"][0])
    assert torch.equal(dataset[0]["image"], dataset[(0, 0)]["image"])  # a position: epoch 0


def test_epoch_sampler_orders_are_seeded_disjoint_across_ranks_and_resumable():
    def order(rank=0, world=1, epoch=0, start=0):
        sampler = EpochSampler(20, batch_size=3, seed=1, rank=rank, world_size=world)
        sampler.set_epoch(epoch, start_batch=start)
        return list(sampler)

    assert order() == order()  # a pure function of (seed, epoch)
    assert [i for _, i in order(epoch=0)] != [i for _, i in order(epoch=1)]
    assert {e for e, _ in order(epoch=4)} == {4}  # the epoch travels with every index
    assert len(order()) == 18  # drop_last: 6 whole batches of 3
    rank0, rank1 = order(0, 2), order(1, 2)
    assert len(rank0) == len(rank1) == 9 and not {i for _, i in rank0} & {i for _, i in rank1}
    assert order(start=2) == order()[6:]


def test_train_loader_gives_whole_batches_of_an_epoch_sampler(samples):
    dataset = TrainDataset(samples, mode="crop", crop_size=16, seed=7)
    loader = train_loader(dataset, batch_size=2, seed=7, rank=1, world_size=2)
    assert isinstance(loader.sampler, EpochSampler) and loader.sampler.batches_per_epoch == 1
    (batch,) = list(loader)  # 6 images, 3 per rank: one whole batch of 2
    assert batch["image"].shape == (2, 1, 16, 16)
    with pytest.raises(UserError, match="6 images, fewer than one batch per process"):
        train_loader(dataset, batch_size=4, seed=7, rank=0, world_size=2)


def test_seed_worker_seeds_numpy_from_torch():
    torch.manual_seed(123)
    seed_worker(0)
    first = np.random.random()
    torch.manual_seed(123)
    seed_worker(0)
    assert np.random.random() == first


def test_sizes_follow_the_models_multiple(samples):
    TrainDataset(samples, mode="resize", base_size=40)  # a multiple of 8: fine for 4 levels
    with pytest.raises(ConfigError, match="'data.base_size' = 40 must be a multiple of 16"):
        TrainDataset(samples, mode="resize", base_size=40, size_multiple=16)
    assert TrainDataset(samples, mode="crop", crop_size=48, size_multiple=16)[0]["image"].shape == (
        1,
        48,
        48,
    )


def _one_sample(folder: Path, image: np.ndarray, mask: np.ndarray) -> Sample:
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "image.png"), image)
    cv2.imwrite(str(folder / "mask.png"), mask)
    return Sample("x", folder / "image.png", folder / "mask.png")


def test_uint8_pixel_v_becomes_exactly_v_over_255(tmp_path):
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    mask = np.zeros((16, 16), np.uint8)
    mask[3, 4] = 255
    sample = _one_sample(tmp_path, values, mask)
    item = TrainDataset([sample], mode="resize", base_size=16)[0]  # no resize
    np.testing.assert_array_equal(item["image"][0].numpy(), values.astype(np.float32) / 255)
    # Resized as uint8, as the original does: every value is a grey level / 255.
    resized = TrainDataset([sample], mode="resize", base_size=24)[0]["image"][0].numpy()
    expected = cv2.resize(values, (24, 24), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(resized, expected.astype(np.float32) / 255)


def test_uint16_pixel_v_becomes_v_over_65535(tmp_path):
    values = (np.arange(64, dtype=np.uint32).reshape(8, 8) * 1031 % 65536).astype(np.uint16)
    values[0, 0], values[0, 1] = 0, 65535
    sample = _one_sample(tmp_path, values, np.full((8, 8), 255, np.uint8))
    item = TrainDataset([sample], mode="resize", base_size=8)[0]
    np.testing.assert_array_equal(item["image"][0].numpy(), values.astype(np.float32) / 65535)
    resized = TrainDataset([sample], mode="resize", base_size=16)[0]["image"][0].numpy()
    expected = cv2.resize(values, (16, 16), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(resized, expected.astype(np.float32) / 65535)


def test_masks_are_divided_by_their_maximum(tmp_path):
    mask = np.zeros((16, 16), np.uint8)
    mask[2:4, 2:4] = 200
    mask[9:11, 9:11] = 100  # a second grey level: half of the maximum
    sample = _one_sample(tmp_path, np.zeros((16, 16), np.uint8), mask)
    for mode, extra in (("resize", {"base_size": 16}), ("crop", {"crop_size": 16})):
        target = TrainDataset([sample], mode=mode, **extra)[0]["mask"][0].numpy()
        np.testing.assert_array_equal(target, mask.astype(np.float32) / 200)


def test_edge_prob_reaches_the_crops_and_is_checked(tmp_path: Path):
    sample = _write_sample(tmp_path, "e", 40, 40, seed=7)
    frame = cv2.imread(str(sample.image), cv2.IMREAD_UNCHANGED).astype(np.float32) / 255
    corners = {
        frame[top : top + 16, left : left + 16].tobytes() for top in (0, 24) for left in (0, 24)
    }
    dataset = TrainDataset([sample], mode="crop", crop_size=16, pos_prob=0.0, edge_prob=1.0)
    crops = {dataset[(epoch, 0)]["image"][0].numpy().tobytes() for epoch in range(40)}
    assert crops == corners
    with pytest.raises(ConfigError, match="data.edge_prob"):
        TrainDataset([sample], mode="crop", crop_size=16, edge_prob=-0.1)
