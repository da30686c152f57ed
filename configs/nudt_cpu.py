"""NUDT-SIRST trained from scratch on a 2-core CPU, 30 minutes of training (the CPU recipe).

The published recipe (``nudt``: 512×512 frames, 400 epochs) needs a GPU. This one keeps the
network and the loss and changes how the time is spent (``CPU_RECIPE``, which ``sirst_cpu``
shares):

- 128×128 crops of the native frames, 80 % of them around a target (a 512×512 frame costs
  16 crops' worth of compute, and most of it is background);
- lr 1e-3 with a 20-iteration warm-up, the poly decay spread over ``train.max_iters``;
- ``model.target_prior`` 0.1: training starts from "few pixels are targets" instead of
  p ≈ 0.5 everywhere, which the original initialisation spends its first hundred
  iterations unlearning. 0.01 collapsed some seeds to an empty map (below);
- native evaluation (no resize to 512), every ``train.eval_every`` iterations and not at
  epoch ends; no image panels in TensorBoard (each evaluation would run them);
- contiguous tensors (``train.channels_last``'s default for eager training): 1.39× faster
  steps on this CPU than the channels_last of the first runs.

On top of it, NUDT-SIRST takes 60 % of its crops around a target (its first 450-iteration
runs, at 80 %, drew maps too wide: pixel precision 55 %, recall 83 %), 700 iterations (what
the faster steps fit in the 30 minutes, with four validations), lr 5e-4, and the test is
reported at 0.5 and at the threshold with the best val IoU (``eval.val_threshold``). It
selects on the seeded 10 % holdout of its training split (it has no val list).

Half of its crops, per axis, lie against the frame's edge (``data.edge_prob`` 0.5). In 77 %
of NUDT-SIRST's training frames the first row and column are about 40 % darker than the
next; uniform 128² crops of its 256² frames almost never show them, while every full frame
at evaluation does. Without it, 91 % of the false-alarm pixels of the five
``nudt_cpu_bf16`` runs' final checkpoints on the holdout lay within 8 pixels of a frame
border, and some seeds drew more of them as training went on.

Chosen on that holdout, with an H100 running the same maths (600 iterations, seeds 1–3):
- lr 5e-4: best val IoU 58.60 and 60.47 for seeds 1 and 3 (58.00 for seed 1 on a 2-core
  AMD EPYC), against 54.04 for lr 1e-3 (60.94 on the EPYC); smaller batches or crops in the
  same time were worse;
- ``target_prior`` 0.1: seed 2 collapsed to an empty map at 0.01 in every variant tried
  (lr, warm-up, gradient clipping, positive share, flips); at 0.1 no seed collapsed. Val
  IoU at the val-chosen threshold, seeds 1/2/3: 60.46/59.70/50.82 at 0.1, 61.76/0/61.91 at
  0.01, 53.78/57.81/48.05 at 0.03.
The README's "Real data" section gives the measured time and test figures, and "The CPU
recipe" the collapse.
"""

from configs.nudt import config as nudt
from lrrnet.config import override

CPU_RECIPE = {
    "model": {"target_prior": 0.1},
    "data": {"train_mode": "crop", "crop_size": 128, "pos_prob": 0.8, "eval_size": "native"},
    "train": {
        "epochs": 100,  # max_iters decides
        "lr": 1e-3,
        "warmup_iters": 20,
        "eval_epoch_end": False,
        "num_log_images": 0,
    },
}

config = override(
    override(nudt, CPU_RECIPE),
    {
        "name": "nudt_cpu",
        "data": {"val_split": "holdout", "pos_prob": 0.6, "edge_prob": 0.5},
        "train": {"max_iters": 700, "eval_every": 175, "lr": 5e-4},
        "eval": {"val_threshold": "miou"},
    },
)
