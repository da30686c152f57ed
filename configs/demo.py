"""The README's demo: a detector that detects, trained in minutes on a 2-core CPU.

Same data as `synthetic` (128×128 frames); the schedule is cut to 300 iterations (3⅓
epochs at batch 8, the poly decay spread over them). Its training time and test scores:
docs/results.md, "Synthetic".
"""

from configs.synthetic import config as synthetic
from lrrnet.config import override

config = override(
    synthetic,
    {
        "name": "demo",
        "train": {"epochs": 4, "max_iters": 300, "lr": 1e-3},
    },
)
