"""Training: one explicit loop.

Read :func:`train` top to bottom to see everything a run does: data, model, optimizer, the
iteration loop with its LR step, finiteness check and logging, validation and checkpointing
where the config asks for them (:func:`~lrrnet.engine.selection.validate_and_save`), then
the test of the selected and the last checkpoint
(:func:`~lrrnet.engine.selection.test_best_and_last`), which a stop by ``train.time_limit``
skips after saving ``latest.pth`` (docs/training.md, "Runs longer than an allocation").
Each is a plain call in the loop, given the :class:`~lrrnet.engine.training_run.TrainingRun`
that holds what they share; there is no hook or callback system on purpose. What a
checkpoint holds is :mod:`lrrnet.engine.checkpoint`; the other files of the run folder are
:mod:`lrrnet.engine.run_files`.

Exact resume: the data order is a pure function of (seed, epoch), augmentation of
(seed, epoch, index), the LR of the iteration, and the checkpoint holds model, optimizer,
scaler and RNG states, so a run killed at any point and resumed from ``latest.pth`` ends
with the same weights as an uninterrupted one (on the CPU; CUDA kernels may differ).
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from lrrnet.data import (
    Splits,
    TrainDataset,
    ensure_dataset,
    splits_from_config,
    train_loader,
    validate_samples,
)
from lrrnet.engine import distributed, run_files
from lrrnet.engine.checkpoint import (
    TrainState,
    gather_rng_states,
    load_for_resume,
    restore_training,
    save_checkpoint,
    unwrap_model,
)
from lrrnet.engine.hardware import EMULATED_BF16, bf16_is_emulated
from lrrnet.engine.predictor import Predictor, autocast_context, config_eval_size
from lrrnet.engine.schedule import lr_at, make_optimizer, total_iterations
from lrrnet.engine.selection import log_test_report, test_best_and_last, validate_and_save
from lrrnet.engine.training_run import TrainingRun, training_checkpoint
from lrrnet.engine.weight_average import WeightAverage
from lrrnet.errors import ConfigError, UserError
from lrrnet.losses import LRRNetLoss
from lrrnet.models import build_model
from lrrnet.progress import Progress

logger = logging.getLogger(__name__)

# Steps a run's median step time leaves out: torch.compile compiles in the first, and the
# loader and the allocator warm up.
WARM_UP_STEPS = 10
# The clock of train.time_limit, a name of its own so that a test can replace it alone.
clock = time.monotonic


class NonFiniteLossError(UserError):
    """The loss became NaN or infinite; the run stopped and kept its last good checkpoint."""


@dataclass
class RunResult:
    """What ``run_configs.py`` prints for a run."""

    name: str
    run_dir: Path
    test: dict[str, dict[str, Any]] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)  # what test_metrics.json holds
    # False when train.time_limit stopped the run before its end: latest.pth holds
    # `iteration` of `total_iterations`, there is no test, and --resume auto continues it.
    finished: bool = True
    iteration: int = 0
    total_iterations: int = 0
    # The median step of this process after its first WARM_UP_STEPS (data, forward, backward
    # and update, validations left out): the speed of a run, torch.compile's start and the
    # loader's warm-up aside. None for a process that took WARM_UP_STEPS steps or fewer.
    median_step_seconds: float | None = None


def train(cfg: Mapping[str, Any], resume: str | None = None) -> RunResult:
    """Train one config; returns the run folder and the test metrics of best and last.

    Args:
        cfg: a resolved config (:func:`lrrnet.config.load_config`).
        resume: None for a new run; ``"auto"`` for the newest run of this config; or a
            checkpoint, or a run folder (its ``latest.pth``), to continue.
    """
    process = distributed.init_distributed(cfg["train"]["device"])
    try:
        result = _train(cfg, process, run_files.resolve_resume(cfg, resume))
        # Every rank is done talking before any tears the group down: a rank that destroys
        # it while another is still in its last collective can abort that process.
        distributed.barrier(process)
        return result
    finally:
        distributed.cleanup(process)


def _train(
    cfg: Mapping[str, Any], process: distributed.DistInfo, resume_path: Path | None
) -> RunResult:
    train_cfg, data_cfg, device = cfg["train"], cfg["data"], process.device
    run_started, time_limit = clock(), train_cfg["time_limit"]
    seed_everything(cfg["seed"], train_cfg["deterministic"])
    use_cuda = device.type == "cuda"
    if use_cuda:
        torch.backends.cudnn.benchmark = not train_cfg["deterministic"]
    # What forward passes compute in: train.amp's autocast (bf16 on the CPU too), or float32.
    precision = "fp32" if train_cfg["amp"] == "off" else train_cfg["amp"]
    if not use_cuda and precision == "fp16":
        raise ConfigError("train.amp=fp16 needs a CUDA device; use bf16 or off on the CPU")
    # ---- run folder (rank 0 writes every file), its lock and its log.txt ----
    run_dir = resume_path.parent if resume_path else run_files.new_run_dir(cfg)
    run_dir = Path(distributed.broadcast_object(process, str(run_dir)))
    # One live training per run folder, held to the end: taken before the checkpoint is
    # read, so a second process on the folder stops before it reads or writes anything.
    with (
        run_files.run_lock(run_dir, process),
        run_files.log_file(run_dir if process.is_main else None),
        ExitStack() as cleanup,
    ):
        # A resume is checked against the checkpoint before anything is written or validated.
        resumed = (
            load_for_resume(resume_path, cfg, process.world_size, device) if resume_path else None
        )
        logger.info("run folder %s (world size %d, device %s)", run_dir, process.world_size, device)
        if not use_cuda and precision == "bf16" and bf16_is_emulated():
            logger.warning("train.amp=bf16: %s", EMULATED_BF16)
        # Finding the splits logs the one line "ROOT (LAYOUT): N train, M val (SOURCE), K test"
        # that outside checks read; it names where checkpoint selection happens.
        splits = prepare_dataset(cfg, process)
        if cfg["eval"]["val_threshold"] != "off" and not splits.val:
            raise ConfigError(
                f"eval.val_threshold={cfg['eval']['val_threshold']!r} needs validation images, "
                f"and data.val_split={data_cfg['val_split']!r} gives none"
            )

        # ---- model, optimizer, loss ----
        model = build_model(cfg).to(device)
        channels_last = training_layout(train_cfg)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        model = model.to(memory_format=memory_format)
        optimizer = make_optimizer(
            train_cfg["optimizer"], model.parameters(), train_cfg["lr"], train_cfg["weight_decay"]
        )
        scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
        criterion = LRRNetLoss(**cfg["loss"])
        # The weight average (train.ema_decay) is what validation, the checkpoints' "model"
        # and the test see; without one, the live weights.
        decay = train_cfg["ema_decay"]
        weight_average = WeightAverage(model, decay) if decay else None
        averaged_model = weight_average.module if weight_average is not None else None
        eval_model = model if averaged_model is None else averaged_model
        state = TrainState()
        if resumed is not None:
            state = restore_training(
                resumed, model, optimizer, scaler, process.rank, averaged_model
            )
            logger.info(
                "resumed from %s at iteration %d (epoch %d)",
                resume_path,
                state.iteration,
                state.epoch,
            )
        else:  # each rank its own dropout stream, after the shared weight initialisation
            torch.manual_seed(cfg["seed"] + 1000 * process.rank)
        if resumed is not None and train_cfg["compile"]:
            run_files.load_compile_cache(run_dir)
        train_model = torch.compile(model) if train_cfg["compile"] else model
        if process.is_distributed:
            train_model = DistributedDataParallel(
                train_model, device_ids=[device.index] if use_cuda else None
            )

        # ---- data ----
        dataset = TrainDataset(
            splits.train,
            mode=data_cfg["train_mode"],
            base_size=data_cfg["base_size"],
            crop_size=data_cfg["crop_size"],
            pos_prob=data_cfg["pos_prob"],
            edge_prob=data_cfg["edge_prob"],
            augment=data_cfg["augment"],
            noise_sigma=data_cfg["noise_sigma"],
            seed=cfg["seed"],
            size_multiple=unwrap_model(model).size_multiple,
        )
        batch_size = train_cfg["batch_size"]
        loader = train_loader(
            dataset,
            batch_size,
            cfg["seed"],
            process.rank,
            process.world_size,
            num_workers=data_cfg["num_workers"],
            pin_memory=use_cuda,
        )
        sampler = loader.sampler
        iters_per_epoch = sampler.batches_per_epoch
        stored_per_epoch = resumed.get("iters_per_epoch") if resumed is not None else None
        if stored_per_epoch is not None and stored_per_epoch != iters_per_epoch:
            # The position inside the epoch would be wrong (past its end, or negative).
            raise UserError(
                f"{resume_path}: {stored_per_epoch} iterations per epoch when saved, "
                f"{iters_per_epoch} now ({len(dataset)} training images, batch "
                f"{batch_size} × {process.world_size} process(es)); the training split changed, "
                "so the run cannot continue where it stopped"
            )
        writer = None  # TensorBoard, on rank 0
        if process.is_main:  # only now: a refused resume leaves the run folder as it was
            run_files.write_config(cfg, run_dir, resumed)
            run_files.truncate_metrics_csv(run_dir, state.iteration)
            writer = run_files.open_tensorboard(run_dir, state.iteration)
            cleanup.callback(writer.close)  # also when the run stops on an error
        total_iters = total_iterations(train_cfg, iters_per_epoch)
        predictor = Predictor(
            eval_model,
            device=device,
            dtype=precision,
            size=config_eval_size(cfg),
            channels_last=channels_last,
        )

        # What validation, the checkpoints and the final test share; state, models, optimizer
        # and scaler are the live objects the loop steps.
        run = TrainingRun(
            cfg=cfg,
            process=process,
            state=state,
            model=model,
            averaged_model=averaged_model,
            optimizer=optimizer,
            scaler=scaler,
            predictor=predictor,
            iters_per_epoch=iters_per_epoch,
            run_dir=run_dir,
            writer=writer,
        )

        # ---- the loop ----
        model.train()
        logger.info(
            "training %d iterations (%d per epoch, batch %d × %d process(es), %s%s) from "
            "iteration %d",
            total_iters,
            iters_per_epoch,
            batch_size,
            process.world_size,
            "float32" if precision == "fp32" else f"{precision} autocast",
            f", weight average {decay:g} evaluated" if weight_average is not None else "",
            state.iteration,
        )
        # The iteration log lines (train.log_every) are the progress off a terminal.
        progress = Progress(
            total_iters,
            cfg["name"],
            enabled=process.is_main,
            unit="it",
            every=None,
            initial=state.iteration,
        )
        stop = state.iteration >= total_iters
        last_eval_iteration = state.iteration if resume_path else -1
        started, start_iteration = time.perf_counter(), state.iteration
        step_started, timed_out, step_times = clock(), False, []
        val_seconds, num_evaluations = 0.0, 0
        loss_sum, loss_count = 0.0, 0  # training losses since the last evaluation
        while not stop and state.epoch < train_cfg["epochs"]:
            start_batch = state.iteration - state.epoch * iters_per_epoch
            if not 0 <= start_batch < iters_per_epoch:
                # A checkpoint from before iters_per_epoch was stored, with another split.
                raise UserError(
                    f"{resume_path}: iteration {state.iteration} is not in epoch {state.epoch} "
                    f"at {iters_per_epoch} iterations per epoch; the training split or batch "
                    "changed since it was saved"
                )
            sampler.set_epoch(state.epoch, start_batch=start_batch)
            for batch in loader:
                lr = lr_at(train_cfg, state.iteration, iters_per_epoch)
                for param_group in optimizer.param_groups:
                    param_group["lr"] = lr
                images = (
                    batch["image"]
                    .to(device, non_blocking=True)
                    .contiguous(memory_format=memory_format)
                )
                masks = batch["mask"].to(device, non_blocking=True)
                with autocast_context(device, precision):
                    reconstruction, target_logits = train_model(images)
                loss, terms = criterion(
                    reconstruction.float(), target_logits.float(), images.float(), masks
                )

                # A non-finite loss would poison the weights: stop before the step.
                total_value = checked_total_loss(terms, process, state.iteration + 1, run_dir)

                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if train_cfg["grad_clip"] is not None:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg["grad_clip"])
                scaler.step(optimizer)
                scaler.update()
                state.iteration += 1
                step_seconds = clock() - step_started  # its data, forward, backward and update
                step_times.append(step_seconds)
                if weight_average is not None:
                    weight_average.update(state.iteration)
                loss_sum, loss_count = loss_sum + total_value, loss_count + 1
                progress.update(1)

                if process.is_main and state.iteration % train_cfg["log_every"] == 0:
                    run_files.tensorboard_losses(writer, terms, lr, state.iteration)
                    progress.set_postfix(f"loss={terms['total'].item():.4f}, lr={lr:.2e}")
                    logger.info(
                        "iter %d epoch %d loss %.4f (%s) lr %.3e",
                        state.iteration,
                        state.epoch,
                        terms["total"].item(),
                        " ".join(f"{k} {v.item():.4f}" for k, v in terms.items() if k != "total"),
                        lr,
                    )
                at_epoch_end = state.iteration % iters_per_epoch == 0
                if at_epoch_end:
                    state.epoch += 1
                if state.iteration >= total_iters:
                    stop = True
                eval_due = (
                    train_cfg["eval_every"] and state.iteration % train_cfg["eval_every"] == 0
                )
                if eval_due or (at_epoch_end and train_cfg["eval_epoch_end"]) or stop:
                    val_seconds += validate_and_save(run, splits.val, loss_sum / max(1, loss_count))
                    num_evaluations, loss_sum, loss_count = num_evaluations + 1, 0.0, 0
                    last_eval_iteration = state.iteration
                    patience = train_cfg["early_stop_patience"]
                    if patience is not None and state.evals_since_best >= patience:
                        logger.info("early stop: %d evaluations without improvement", patience)
                        stop = True
                step_started = clock()  # the next step's data loading starts here
                if time_limit is not None and not stop:
                    # Stop while the next step still fits, not when the job's end kills it.
                    over = step_started - run_started + step_seconds > time_limit
                    stop = timed_out = distributed.any_true(process, over)
                if stop:
                    break
        progress.close()
        if timed_out and last_eval_iteration != state.iteration:
            # Not validated here: the evaluations stay at the iterations of an unbroken run.
            save_latest(run)
        elif last_eval_iteration != state.iteration:  # e.g. a new run of train.max_iters=0
            val_seconds += validate_and_save(run, splits.val, loss_sum / max(1, loss_count))
            num_evaluations += 1
        elapsed = time.perf_counter() - started
        logger.info(
            "trained %d iterations in %.1f s (%.2f s/iter)",
            state.iteration - start_iteration,
            elapsed,
            elapsed / max(1, state.iteration - start_iteration),
        )
        steady = step_times[WARM_UP_STEPS:]
        median_step = float(np.median(steady)) if steady else None
        if median_step is not None:
            logger.info(
                "median step %.1f ms over %d steps (the first %d, warming up, left out)",
                1000 * median_step,
                len(steady),
                WARM_UP_STEPS,
            )
        if timed_out:
            if train_cfg["compile"] and process.is_main:
                run_files.save_compile_cache(run_dir)
            logger.info(
                "time limit reached at iteration %d of %d after %.0f s: latest.pth saved; "
                "continue with --resume auto",
                state.iteration,
                total_iters,
                clock() - run_started,
            )
            return RunResult(
                cfg["name"],
                run_dir,
                finished=False,
                iteration=state.iteration,
                total_iterations=total_iters,
                median_step_seconds=median_step,
            )

        # ---- final test of the selected and the last checkpoint ----
        test_started = time.perf_counter()
        report = test_best_and_last(run, splits)
        best, last = report["best"], report["last"]
        test_seconds = time.perf_counter() - test_started
        logger.info(
            "time per phase: train %.1f s (%d iterations), val %.1f s (%d evaluations of %d "
            "images, checkpoints included), test %.1f s (%s, %d images)",
            elapsed - val_seconds,
            state.iteration - start_iteration,
            val_seconds,
            num_evaluations,
            len(splits.val),
            test_seconds,
            "best = last" if best["iteration"] == last["iteration"] else "best and last",
            len(splits.test),
        )
        if process.is_main:
            run_files.write_test_report(run_dir, report)
            log_test_report(report)
            (run_dir / run_files.COMPILE_CACHE).unlink(missing_ok=True)  # no resume follows
        return RunResult(
            cfg["name"],
            run_dir,
            {"best": best["test"], "last": last["test"]},
            report,
            iteration=state.iteration,
            total_iterations=total_iters,
            median_step_seconds=median_step,
        )


def save_latest(run: TrainingRun) -> None:
    """Write the run's ``latest.pth`` at its iteration without validating (every rank sends
    its RNG states; rank 0 writes): a :func:`validate_and_save` without the score, the
    best or the ``metrics.csv`` row, for a stop at an iteration where none is due."""
    rng_states = gather_rng_states(run.process)
    if run.process.is_main:
        save_checkpoint(training_checkpoint(run, {}, rng_states), run.run_dir / "latest.pth")


def training_layout(train_cfg: Mapping[str, Any]) -> bool:
    """Whether a run trains on channels_last tensors: ``train.channels_last``, or for None the
    faster layout, channels_last only under ``train.compile`` (eager steps are faster
    contiguous on the CPU and on a GPU; docs/speed.md, "CPU" and "GPU")."""
    chosen = train_cfg["channels_last"]
    return bool(train_cfg["compile"]) if chosen is None else bool(chosen)


def checked_total_loss(
    terms: Mapping[str, torch.Tensor], process: distributed.DistInfo, step: int, run_dir: Path
) -> float:
    """The total loss of training step ``step`` (1-based) as a float.

    One host sync per step (the total); the terms are only looked at when it is bad. Under
    DDP every rank must stop together, or the others would wait in the next all-reduce.

    Raises:
        NonFiniteLossError: the total is NaN or infinite on this or another rank; the message
            names the step, the bad terms and the last good checkpoint of ``run_dir``.
    """
    total = terms["total"].item()
    bad = not math.isfinite(total)
    if distributed.any_true(process, bad):
        bad_terms = [n for n, v in terms.items() if not math.isfinite(v.item())] if bad else []
        where = ", ".join(f"{n}={terms[n].item()}" for n in bad_terms) or "on another rank"
        kept = run_dir / "latest.pth"
        raise NonFiniteLossError(
            f"non-finite loss at iteration {step} (term {where}); "
            f"stopped, last good checkpoint: {kept if kept.exists() else 'none yet'}"
        )
    return total


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; ``deterministic`` also asks for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS is deterministic only with a fixed workspace; it reads this when its first
        # handle is created, so it must be set before the first matrix product on the GPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def prepare_dataset(cfg: Mapping[str, Any], process: distributed.DistInfo) -> Splits:
    """Find the splits (generating the synthetic dataset when asked) and validate every file."""
    if process.is_main:
        ensure_dataset(cfg)
    distributed.barrier(process)
    splits = splits_from_config(cfg, generate=False)
    strict = cfg["data"]["strict_sizes"]
    validate_samples(splits.train, "train", strict_sizes=strict)
    validate_samples(splits.test, "test", strict_sizes=strict)
    if splits.val:
        validate_samples(splits.val, "val", strict_sizes=strict)
    return splits
