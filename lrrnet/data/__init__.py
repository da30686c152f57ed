"""Datasets: layouts and splits, validation, transforms, PyTorch datasets, synthetic data.

Each name below is imported from its module on first use (PEP 562), like the package's
top-level names: importing ``lrrnet.data.io`` runs this file first, and importing the
PyTorch datasets here would make reading a frame, or scoring a folder of maps, load PyTorch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lrrnet.lazy import lazy_getattr

_MODULE_OF = {
    "EpochSampler": "lrrnet.data.dataset",
    "TrainDataset": "lrrnet.data.dataset",
    "seed_worker": "lrrnet.data.dataset",
    "train_loader": "lrrnet.data.dataset",
    "ensure_dataset": "lrrnet.data.from_config",
    "splits_from_config": "lrrnet.data.from_config",
    "IMAGE_SUFFIXES": "lrrnet.data.io",
    "list_images": "lrrnet.data.io",
    "read_image": "lrrnet.data.io",
    "read_mask": "lrrnet.data.io",
    "read_prediction": "lrrnet.data.io",
    "write_prediction": "lrrnet.data.io",
    "LAYOUTS": "lrrnet.data.layouts",
    "VAL_SPLITS": "lrrnet.data.layouts",
    "Sample": "lrrnet.data.layouts",
    "Splits": "lrrnet.data.layouts",
    "build_splits": "lrrnet.data.layouts",
    "detect_layout": "lrrnet.data.layouts",
    "find_splits": "lrrnet.data.layouts",
    "folder_samples": "lrrnet.data.layouts",
    "mask_index": "lrrnet.data.layouts",
    "Difficulty": "lrrnet.data.synthetic",
    "generate_dataset": "lrrnet.data.synthetic",
    "generate_frame": "lrrnet.data.synthetic",
    "read_sample": "lrrnet.data.validation",
    "validate_samples": "lrrnet.data.validation",
}

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

if TYPE_CHECKING:  # what type checkers and editors see; at run time __getattr__ imports
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


__getattr__ = lazy_getattr(__name__, _MODULE_OF, globals())
