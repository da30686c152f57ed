"""The dataset a config names: generated on first use when asked, then split."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lrrnet.data.layouts import Splits, build_splits
from lrrnet.data.synthetic import GENERATOR_VERSION, generate_dataset, parse_frame_size
from lrrnet.errors import DataError

logger = logging.getLogger(__name__)


def ensure_dataset(cfg: Mapping[str, Any]) -> None:
    """Generate the synthetic dataset at ``data.root`` when ``data.generate`` is set.

    A dataset already there is used only when its ``synthetic.json`` records the settings
    the config asks for (generator version, data.split_seed, frame size, frame counts); otherwise a
    DataError names the folder and every setting that differs, before any work.
    """
    data = cfg["data"]
    if not data["generate"]:
        return
    root = Path(data["root"])
    height, width = parse_frame_size(data["synthetic"]["size"])
    wanted = {
        "version": GENERATOR_VERSION,
        "seed": data["split_seed"],
        "height": height,
        "width": width,
        "num_train": data["synthetic"]["num_train"],
        "num_test": data["synthetic"]["num_test"],
    }
    if not root.exists():
        logger.info("generating the synthetic dataset at %s", root)
        # The data seed, not the training seed: runs of several seeds share one dataset.
        generate_dataset(root, seed=data["split_seed"], **data["synthetic"])
        return
    record = root / "synthetic.json"
    try:
        found = json.loads(record.read_text())
    except (OSError, ValueError):
        raise DataError(
            f"{record}: missing or unreadable, so {root} is not a synthetic dataset this config "
            "can check (data.generate is set); point data.root elsewhere or remove the folder"
        ) from None
    differ = [
        f"{key} {found.get(key)!r} (config wants {value!r})"
        for key, value in wanted.items()
        if found.get(key) != value
    ]
    if differ:
        raise DataError(
            f"{root} was generated with other settings: {', '.join(differ)}; point data.root "
            "elsewhere or remove the folder to regenerate it"
        )


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
