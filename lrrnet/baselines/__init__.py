"""Classical baselines under the same protocol as the network: top-hat and IPI.

Each baseline maps an ``H×W`` frame in [0, 1] to an ``H×W`` target map in [0, 1]
(:mod:`~lrrnet.baselines.tophat`, :mod:`~lrrnet.baselines.ipi`, thresholded by
:mod:`~lrrnet.baselines.threshold`). :mod:`~lrrnet.baselines.runner` writes their maps as
inference does; :mod:`~lrrnet.baselines.tune` chooses their parameters on a validation split.
"""

from lrrnet.baselines.ipi import build_patch_image, ipi, reconstruct_from_patches, rpca_ialm
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
    "parse_params",
    "reconstruct_from_patches",
    "rpca_ialm",
    "run_baseline_on_config",
    "run_baseline_on_files",
    "run_baseline_on_folder",
    "white_tophat",
]
