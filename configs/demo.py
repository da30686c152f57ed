"""The README's demo: a detector that detects, trained in minutes on a 2-core CPU.

Same data as `synthetic`; the schedule is shortened to fit about ten minutes of training.
"""

from configs.synthetic import config as synthetic
from lrrnet.config import override

config = override(
    synthetic,
    {
        "name": "demo",
        "train": {"epochs": 4, "lr": 1e-3},
    },
)
