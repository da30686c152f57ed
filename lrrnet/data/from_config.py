"""The dataset a config names: generated on first use when asked, then split."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lrrnet.data.layouts import Splits, build_splits
from lrrnet.data.synthetic import generate_dataset

logger = logging.getLogger(__name__)


def ensure_dataset(cfg: Mapping[str, Any]) -> None:
    """Generate the synthetic dataset at ``data.root`` when ``data.generate`` is set and it is missing."""
    data = cfg["data"]
    root = Path(data["root"])
    if data["generate"] and not root.exists():
        logger.info("generating the synthetic dataset at %s", root)
        # The data seed, not the training seed: runs of several seeds share one dataset.
        generate_dataset(root, seed=data["split_seed"], **data["synthetic"])


def splits_from_config(cfg: Mapping[str, Any], generate: bool = True) -> Splits:
    """Train/val/test samples of a config's ``data`` section (see :func:`build_splits`).

    Args:
        cfg: a resolved config.
        generate: create the synthetic dataset first when the config asks for it. Under DDP
            the trainer generates on rank 0 only and passes False.
    """
    if generate:
        ensure_dataset(cfg)
    data = cfg["data"]
    return build_splits(
        data["root"],
        layout=data["layout"],
        dataset_name=data["dataset_name"],
        val_split=data["val_split"],
        val_fraction=data["val_fraction"],
        seed=data["split_seed"],
    )
