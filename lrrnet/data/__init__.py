"""Datasets: layouts and splits, validation, transforms, PyTorch datasets, synthetic data."""

from lrrnet.data.dataset import EpochSampler, TrainDataset, seed_worker, train_loader
from lrrnet.data.from_config import ensure_dataset, splits_from_config
from lrrnet.data.io import (
    IMAGE_SUFFIXES,
    list_images,
    read_image,
    read_mask,
    read_prediction,
    write_prediction,
)
from lrrnet.data.layouts import (
    LAYOUTS,
    VAL_SPLITS,
    Sample,
    Splits,
    build_splits,
    detect_layout,
    find_splits,
    folder_samples,
    mask_index,
)
from lrrnet.data.synthetic import Difficulty, generate_dataset, generate_frame
from lrrnet.data.validation import read_sample, validate_samples

__all__ = [
    "IMAGE_SUFFIXES",
    "LAYOUTS",
    "VAL_SPLITS",
    "Difficulty",
    "EpochSampler",
    "Sample",
    "Splits",
    "TrainDataset",
    "build_splits",
    "detect_layout",
    "ensure_dataset",
    "find_splits",
    "folder_samples",
    "generate_dataset",
    "generate_frame",
    "list_images",
    "mask_index",
    "read_image",
    "read_mask",
    "read_prediction",
    "read_sample",
    "seed_worker",
    "splits_from_config",
    "train_loader",
    "validate_samples",
    "write_prediction",
]
