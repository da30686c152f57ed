"""LRRNet: deep low-rank background network for infrared small target detection.

Zhang et al., "It's Not the Target, It's the Background: Rethinking Infrared Small Target
Detection via Deep Patch-Free Low-Rank Representations", IEEE TGRS 2025.

What a script of one's own needs is importable from here::

    from lrrnet import MetricAccumulator, Predictor, read_image, read_mask

    predictor = Predictor.from_checkpoint("LRRNet_IRSTD1k.pkl", device="auto")
    prediction = predictor.predict(read_image("images/XDU0.png"))  # H×W maps
    metrics = MetricAccumulator(threshold=0.5)
    metrics.update(prediction.target_prob, read_mask("masks/XDU0.png"))
    print(metrics.compute()["miou"])

and ``train(load_config("demo"))`` trains a config as ``run_configs.py`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lrrnet.lazy import lazy_getattr

__version__ = "0.1.0"

# Each name is imported from its module on first use (PEP 562). Importing any submodule runs
# this file first, so importing them here would make ``import lrrnet.errors`` load torch, the
# trainer and the config schema, and would make every submodule's import depend on them all.
_MODULE_OF = {
    "CheckpointError": "lrrnet.errors",
    "ConfigError": "lrrnet.errors",
    "DataError": "lrrnet.errors",
    "LRRNet": "lrrnet.models",
    "MetricAccumulator": "lrrnet.metrics",
    "PredictedMaps": "lrrnet.engine.predictor",
    "Predictor": "lrrnet.engine.predictor",
    "RunResult": "lrrnet.engine.trainer",
    "UserError": "lrrnet.errors",
    "build_model": "lrrnet.models",
    "format_table": "lrrnet.metrics",
    "load_config": "lrrnet.config",
    "override": "lrrnet.config",
    "read_image": "lrrnet.data.io",
    "read_mask": "lrrnet.data.io",
    "read_prediction": "lrrnet.data.io",
    "train": "lrrnet.engine.trainer",
    "write_prediction": "lrrnet.data.io",
}

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "LRRNet",
    "MetricAccumulator",
    "PredictedMaps",
    "Predictor",
    "RunResult",
    "UserError",
    "build_model",
    "format_table",
    "load_config",
    "override",
    "read_image",
    "read_mask",
    "read_prediction",
    "train",
    "write_prediction",
]

if TYPE_CHECKING:  # what type checkers and editors see; at run time __getattr__ imports
    from lrrnet.config import load_config, override
    from lrrnet.data.io import read_image, read_mask, read_prediction, write_prediction
    from lrrnet.engine.predictor import PredictedMaps, Predictor
    from lrrnet.engine.trainer import RunResult, train
    from lrrnet.errors import CheckpointError, ConfigError, DataError, UserError
    from lrrnet.metrics import MetricAccumulator, format_table
    from lrrnet.models import LRRNet, build_model


__getattr__ = lazy_getattr(__name__, _MODULE_OF, globals())


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
