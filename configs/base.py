"""Every default, commented. Dataset configs import this and override a few fields.

The defaults are the published recipe: Adam 1e-4, poly 0.9 per iteration, 400 epochs,
batch 8, seed 1, every image resized to 512×512, loss SoftIoU + 0.1·MSE + (0.8·SoftIoU +
0.2·L1) (docs/training.md, "The published recipe").
"""

config = {
    # Run name: the folder under checkpoints/ and results/. Dataset configs set it.
    "name": "base",
    # Seed for Python, NumPy and torch; data order and augmentation derive from it.
    "seed": 1,
    "model": {
        # Constructor arguments of lrrnet.models.LRRNet; defaults match the released weights.
        "in_channels": 1,
        "base_channels": 16,
        # Width multipliers per level; H and W must be multiples of 2 ** (len - 1).
        "channel_mults": (1, 2, 4, 8),
        "num_res_blocks": 2,
        "dropout": 0.2,
        "num_groups": 16,  # GroupNorm groups; must divide every width
        # Attention kernel: "sdpa" (fused) or "naive" (the original formula); same numbers.
        "attention_impl": "sdpa",
        # Ablation switches (defaults: the paper's design, which the released weights fit).
        # What the subtraction head refines into the target feature: "difference" (u − B),
        # "background" (B alone) or "shallow" (u alone): without the subtraction.
        "head_input": "difference",
        # Self-attention in the first bottleneck block; False removes it.
        "mid_attention": True,
        # Initial target probability (bias of the target logits), e.g. 0.01; None: PyTorch's
        # default initialisation, as the original code. Changes the start of training only.
        "target_prior": None,
    },
    "data": {
        # Dataset folder. Layout is detected ("auto") or one of: split_folders, basicirstd,
        # dnanet, sirst_v1, sirst_devkit, sirst_v2, irstd1k, folder.
        "root": "datasets/SIRST-Synth",
        "layout": "auto",
        # Which split lists: the BasicIRSTD suffix (img_idx/train_<NAME>.txt; None: the only
        # one present) or the SIRST-V2 lists (splits/train_<NAME>.txt: "full" or "v1"; None:
        # "full").
        "dataset_name": None,
        # A mask of another size than its image (SIRST v1 Misc_111: image 325×220, mask
        # 592×400) is named once in a warning; training resizes the mask to the image
        # (nearest), standard scoring resizes the prediction to the mask (bilinear). True:
        # such a mask is an error, as any other bad file.
        "strict_sizes": False,
        # Where checkpoint selection happens: "holdout" (val_fraction of the training split,
        # fixed seed), "val" (the dataset's own val list: SIRST v1, SIRST-V2, IRSTD-1k copies
        # with train.txt / val.txt; training then uses the train list), "test" (the original
        # code's best-on-test selection; optimistic, logged as such), or "none" (train on the
        # whole training split and report the last checkpoint, as BasicIRSTD does).
        "val_split": "holdout",
        "val_fraction": 0.1,
        # Seed of the data: the holdout choice and the generated synthetic frames. Separate
        # from the training seed so that runs with different seeds (run_configs.py --seeds)
        # vary the training, not the data.
        "split_seed": 1,
        # Training geometry: "resize" every image to base_size (the published recipe) or
        # random "crop"s of crop_size (padded when smaller), with a pos_prob chance of a crop
        # that contains a target and an edge_prob chance, per axis, of a crop placed against
        # the frame's edge (uniform placement seldom puts the frame's border rows in a crop,
        # while every full frame at evaluation has them; lrrnet/data/transforms.py).
        "train_mode": "resize",
        "base_size": 512,
        "crop_size": 256,
        "pos_prob": 0.5,
        "edge_prob": 0.0,
        # Random vertical/horizontal flips and transposes, p = 0.5 each.
        "augment": False,
        # Gaussian sensor noise added to training inputs, std in grey levels (0–255); 0: off.
        "noise_sigma": 0.0,
        # Evaluation geometry: "resize" to base_size (and the map back) or "native"
        # (pad to a multiple of 8 and crop back).
        "eval_size": "resize",
        "num_workers": 2,
        # Generate the synthetic dataset at root when it is missing (synthetic configs only).
        "generate": False,
        "synthetic": {"num_train": 800, "num_test": 200, "size": 256},
    },
    "loss": {
        # total = softiou·SoftIoU + mse·MSE(D, X) + softiou_l1·(0.8·SoftIoU + 0.2·L1)
        "softiou": 1.0,
        "mse": 0.1,
        "softiou_l1": 1.0,
        # "hard": the original mean(T > 0), which has no gradient; "soft": mean(sigmoid(T)).
        "l1_mode": "hard",
    },
    "train": {
        "epochs": 400,
        "batch_size": 8,
        # Cap on iterations (None: epochs decide). For smoke runs.
        "max_iters": None,
        # Seconds of wall time a run may train in this process, counted from its start (None:
        # no limit; else finite > 0): it stops before the step that would pass it, saves
        # latest.pth, skips the test, and `--resume auto` continues it exactly
        # (docs/training.md, "Runs longer than an allocation"). Leave a few minutes of the
        # job's limit for start-up, the last validation and the save.
        "time_limit": None,
        "optimizer": "adam",  # adam | adamw
        "lr": 1e-4,
        "weight_decay": 0.0,
        # LR as a pure function of the iteration: poly | cosine | step | constant.
        "schedule": "poly",
        "poly_power": 0.9,
        "step_milestones": (),  # fractions of the run, for "step"
        "step_gamma": 0.1,
        "min_lr": 0.0,
        "warmup_iters": 0,
        "grad_clip": None,  # max gradient norm; None: off
        # Exponential moving average of the weights (lrrnet/engine/weight_average.py): when
        # > 0, validation, checkpoint selection, best.pth and the test use the average; e.g.
        # 0.99 averages over roughly the last 100 steps. 0: off (the live weights).
        "ema_decay": 0.0,
        # Validation every eval_every iterations (None: only at epoch ends) and, when
        # eval_epoch_end, at every epoch end as the original code did. Turning the latter off
        # saves time where epochs are short (fast GPUs, small datasets).
        "eval_every": None,
        "eval_epoch_end": True,
        "select_metric": "miou",  # miou | niou | f1 | pd | auc
        "early_stop_patience": None,  # evaluations without improvement; None: off
        "device": "auto",  # auto | cpu | cuda | cuda:N
        # Autocast of the forward passes (training and validation): off | bf16 | fp16. fp16
        # needs CUDA; bf16 on the CPU pays only where it is native (avx512_bf16 or AMX; the
        # run warns otherwise, as emulated bf16 is slower than fp32). docs/speed.md, "CPU".
        "amp": "off",
        # None: the faster layout, contiguous for eager training (on the CPU the accurate
        # channels_last GroupNorm costs more than the convolutions gain; on CUDA GroupNorm
        # makes channels_last inputs contiguous) and channels_last under train.compile; True
        # or False forces one. docs/speed.md, "CPU" and "GPU".
        "channels_last": None,
        "compile": False,
        "deterministic": False,
        "log_every": 20,
        "num_log_images": 4,
    },
    "eval": {
        "threshold": 0.5,
        # Final test only: also report test at the threshold (0.05 … 0.999) that gives the best
        # "f1" or "miou" on the validation split with the same checkpoint; "off": only 0.5.
        "val_threshold": "off",
        "protocol": "standard",  # standard | lrrnet
        "batch_size": 8,
    },
    "paths": {
        "checkpoints": "checkpoints",
        "results": "results",
    },
}
