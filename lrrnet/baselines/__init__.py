"""Classical baselines under the same protocol as the network: top-hat, Max-Median, IPI,
MPCM and PSTNN.

Each baseline maps an ``H×W`` frame in [0, 1] to an ``H×W`` target map in [0, 1]
(:mod:`~lrrnet.baselines.tophat`, :mod:`~lrrnet.baselines.maxmedian`,
:mod:`~lrrnet.baselines.ipi`, :mod:`~lrrnet.baselines.mpcm`, :mod:`~lrrnet.baselines.pstnn`,
thresholded by :mod:`~lrrnet.baselines.threshold`); ``BASELINES[name](frame, **params)``
is that function for every name. :mod:`~lrrnet.baselines.runner` writes their maps as
inference does; :mod:`~lrrnet.baselines.tune` chooses their parameters on a validation split.
"""

from lrrnet.baselines.ipi import build_patch_image, ipi, reconstruct_from_patches, rpca_ialm
from lrrnet.baselines.maxmedian import max_median
from lrrnet.baselines.mpcm import mpcm
from lrrnet.baselines.pstnn import pstnn
from lrrnet.baselines.runner import (
    BASELINES,
    BaselineRun,
    parse_params,
    run_baseline_on_config,
    run_baseline_on_files,
    run_baseline_on_folder,
)
from lrrnet.baselines.tophat import white_tophat

__all__ = [
    "BASELINES",
    "BaselineRun",
    "build_patch_image",
    "ipi",
    "max_median",
    "mpcm",
    "parse_params",
    "pstnn",
    "reconstruct_from_patches",
    "rpca_ialm",
    "run_baseline_on_config",
    "run_baseline_on_files",
    "run_baseline_on_folder",
    "white_tophat",
]
