"""Training: one explicit loop.

Read ``train`` top to bottom to see everything a run does: data, model, optimizer, the
iteration loop with its LR step, finiteness check, logging, validation and checkpointing as
plain ``if`` statements, then the final test of the selected and the last checkpoints.
There is no hook or callback system on purpose.

Honesty rules kept here: checkpoints are selected on a validation split held out of the
training data (unless the config asks for the original best-on-test behaviour, which is
logged as optimistic), and both the selected and the last checkpoint are scored on test.

Exact resume: the data order is a pure function of (seed, epoch), augmentation of
(seed, epoch, index), the LR of the iteration, and the checkpoint holds model, optimizer,
scaler and RNG states, so a run killed at any point and resumed from ``latest.pth`` ends
with the same weights as an uninterrupted one (on the CPU; CUDA kernels may differ).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import random
import time
from collections.abc import Mapping
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
    load_checkpoint,
    load_for_resume,
    resolve_resume,
    restore_training,
    save_checkpoint,
    training_checkpoint,
    unwrap_model,
)
from lrrnet.engine.evaluator import evaluate
from lrrnet.engine.predictor import Predictor, autocast_context, config_eval_size
from lrrnet.engine.schedule import lr_at
from lrrnet.errors import ConfigError, UserError
from lrrnet.losses import LRRNetLoss
from lrrnet.metrics import CURVE_THRESHOLDS, best_threshold
from lrrnet.models import build_model
from lrrnet.progress import Progress

logger = logging.getLogger(__name__)


class NonFiniteLossError(UserError):
    """The loss became NaN or infinite; the run stopped and kept its last good checkpoint."""


@dataclass
class RunResult:
    """What ``run_configs.py`` prints for a run."""

    name: str
    run_dir: Path
    test: dict[str, dict[str, Any]] = field(default_factory=dict)
    model: torch.nn.Module | None = None  # the trained network, with the last weights
    report: dict[str, Any] = field(default_factory=dict)  # what test_metrics.json holds


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS is deterministic only with a fixed workspace; it reads this when its first
        # handle is created, so it must be set before the first matrix product on the GPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def prepare_dataset(cfg: Mapping[str, Any], info: distributed.DistInfo) -> Splits:
    """Find the splits (generating the synthetic dataset when asked) and validate every file."""
    if info.is_main:
        ensure_dataset(cfg)
    distributed.barrier(info)
    splits = splits_from_config(cfg, generate=False)
    strict = cfg["data"]["strict_sizes"]
    validate_samples(splits.train, "train", strict_sizes=strict)
    validate_samples(splits.test, "test", strict_sizes=strict)
    if splits.val:
        validate_samples(splits.val, "val", strict_sizes=strict)
    return splits


def train(cfg: Mapping[str, Any], resume: str | None = None) -> RunResult:
    """Train one config; returns the run folder and the test metrics of best and last."""
    tcfg, dcfg = cfg["train"], cfg["data"]
    info = distributed.init_distributed(tcfg["device"])
    device = info.device
    try:
        return _train(cfg, tcfg, dcfg, info, device, resolve_resume(cfg, resume))
    finally:
        distributed.cleanup(info)


def _train(cfg, tcfg, dcfg, info, device, resume_path) -> RunResult:
    seed_everything(cfg["seed"], tcfg["deterministic"])
    use_cuda = device.type == "cuda"
    if use_cuda:
        torch.backends.cudnn.benchmark = not tcfg["deterministic"]
    if tcfg["amp"] != "off" and not use_cuda:
        logger.warning("train.amp=%s ignored on the CPU", tcfg["amp"])
    amp = tcfg["amp"] if use_cuda else "fp32"
    amp = "fp32" if amp == "off" else amp
    # A resume is checked against the checkpoint before anything is written or validated.
    resumed = load_for_resume(resume_path, cfg, info.world_size, device) if resume_path else None

    # ---- run folder and logging (rank 0 writes every file) ----
    run_dir = resume_path.parent if resume_path else run_files.new_run_dir(cfg)
    run_dir = Path(distributed.broadcast_object(info, str(run_dir)))
    with run_files.log_file(run_dir if info.is_main else None):
        logger.info("run folder %s (world size %d, device %s)", run_dir, info.world_size, device)
        # Finding the splits logs the one line "ROOT (LAYOUT): N train, M val (SOURCE), K test"
        # that outside checks read; it names where checkpoint selection happens.
        splits = prepare_dataset(cfg, info)
        if cfg["eval"]["val_threshold"] != "off" and not splits.val:
            raise ConfigError(
                f"eval.val_threshold={cfg['eval']['val_threshold']!r} needs validation images, "
                f"and data.val_split={dcfg['val_split']!r} gives none"
            )

        # ---- model, optimizer, loss ----
        model = build_model(cfg).to(device)
        memory_format = torch.channels_last if tcfg["channels_last"] else torch.contiguous_format
        model = model.to(memory_format=memory_format)
        optimizer_class = torch.optim.AdamW if tcfg["optimizer"] == "adamw" else torch.optim.Adam
        optimizer = optimizer_class(
            model.parameters(), lr=tcfg["lr"], weight_decay=tcfg["weight_decay"]
        )
        scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")
        criterion = LRRNetLoss(**cfg["loss"])
        state = TrainState()
        if resumed is not None:
            state = restore_training(resumed, model, optimizer, scaler, info.rank)
            logger.info(
                "resumed from %s at iteration %d (epoch %d)",
                resume_path,
                state.iteration,
                state.epoch,
            )
        _reseed_for_rank(cfg["seed"], info.rank, resume_path is None)
        train_model = torch.compile(model) if tcfg["compile"] else model
        if info.is_distributed:
            train_model = DistributedDataParallel(
                train_model, device_ids=[device.index] if use_cuda else None
            )

        # ---- data ----
        dataset = TrainDataset(
            splits.train,
            mode=dcfg["train_mode"],
            base_size=dcfg["base_size"],
            crop_size=dcfg["crop_size"],
            pos_prob=dcfg["pos_prob"],
            augment=dcfg["augment"],
            noise_sigma=dcfg["noise_sigma"],
            seed=cfg["seed"],
            size_multiple=unwrap_model(model).size_multiple,
        )
        batch_size = tcfg["batch_size"]
        loader = train_loader(
            dataset,
            batch_size,
            cfg["seed"],
            info.rank,
            info.world_size,
            num_workers=dcfg["num_workers"],
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
                f"{batch_size} × {info.world_size} process(es)); the training split changed, "
                "so the run cannot continue where it stopped"
            )
        if info.is_main:  # only now: a refused resume leaves the run folder as it was
            run_files.write_config(cfg, run_dir, resumed)
        total_iters = tcfg["epochs"] * iters_per_epoch
        if tcfg["max_iters"] is not None:
            total_iters = min(total_iters, tcfg["max_iters"])
        predictor = Predictor(
            unwrap_model(model),
            device=device,
            dtype=amp,
            size=config_eval_size(cfg),
            channels_last=tcfg["channels_last"],
        )
        writer = run_files.open_tensorboard(run_dir, state.iteration) if info.is_main else None
        if info.is_main:
            run_files.truncate_metrics_csv(run_dir, state.iteration)
        # Validation and test show progress on rank 0: a bar on a terminal, log lines elsewhere.
        show_progress = info.is_main
        phase_seconds = {"val": 0.0, "test": 0.0}
        num_evaluations = 0

        def validate_and_save() -> dict[str, Any]:
            """Score on val, update best.pth/latest.pth/metrics.csv/TensorBoard; returns metrics."""
            nonlocal num_evaluations
            val_started = time.perf_counter()
            metrics = (
                _score(predictor, splits.val, cfg, info, show_progress, "val") if splits.val else {}
            )
            num_evaluations += 1
            score = (
                metrics.get(tcfg["select_metric"], -math.inf)
                if splits.val
                else float(state.iteration)
            )
            if math.isnan(score):  # e.g. Pd or AUC on a validation split without targets
                logger.warning(
                    "val %s is undefined (no targets?); not selecting on it", tcfg["select_metric"]
                )
                score = -math.inf
            improved = score > state.best_score
            if improved:
                state.best_score, state.best_iteration, state.evals_since_best = (
                    score,
                    state.iteration,
                    0,
                )
            else:
                state.evals_since_best += 1
            train_loss = loss_window[0] / max(1, loss_window[1])
            loss_window[:] = [0.0, 0]
            rng_states = gather_rng_states(info)
            if info.is_main:
                checkpoint = training_checkpoint(
                    model, optimizer, scaler, state, cfg, metrics, rng_states, iters_per_epoch
                )
                save_checkpoint(checkpoint, run_dir / "latest.pth")
                if improved:
                    save_checkpoint(checkpoint, run_dir / "best.pth")
                lr = optimizer.param_groups[0]["lr"]
                run_files.append_metrics_csv(run_dir, state, lr, train_loss, metrics)
                if metrics:
                    run_files.tensorboard_validation(
                        writer,
                        metrics,
                        predictor,
                        splits.val[: tcfg["num_log_images"]],
                        state.iteration,
                        cfg["eval"]["threshold"],
                    )
                    logger.info(
                        "iter %d epoch %d val: IoU %.4f nIoU %.4f F1 %.4f Pd %.4f Fa %.3e%s",
                        state.iteration,
                        state.epoch,
                        metrics["miou"],
                        metrics["niou"],
                        metrics["f1"],
                        metrics["pd"],
                        metrics["fa"],
                        " (best)" if improved else "",
                    )
            # Checkpoint writing is counted as validation time too: both pause training.
            phase_seconds["val"] += time.perf_counter() - val_started
            return metrics

        # ---- the loop ----
        model.train()
        logger.info(
            "training %d iterations (%d per epoch, batch %d × %d process(es)) from iteration %d",
            total_iters,
            iters_per_epoch,
            batch_size,
            info.world_size,
            state.iteration,
        )
        # The iteration log lines (train.log_every) are the progress off a terminal.
        epoch_bar = Progress(
            total_iters,
            cfg["name"],
            enabled=info.is_main,
            unit="it",
            every=None,
            initial=state.iteration,
        )
        stop = state.iteration >= total_iters
        last_eval_iteration = state.iteration if resume_path else -1
        started, start_iteration = time.perf_counter(), state.iteration
        loss_window = [0.0, 0]  # sum and count of training losses since the last evaluation
        while not stop and state.epoch < tcfg["epochs"]:
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
                lr = lr_at(
                    state.iteration,
                    total_iters,
                    tcfg["lr"],
                    tcfg["schedule"],
                    tcfg["poly_power"],
                    tcfg["warmup_iters"],
                    tcfg["min_lr"],
                    tcfg["step_milestones"],
                    tcfg["step_gamma"],
                )
                for group in optimizer.param_groups:
                    group["lr"] = lr
                images = (
                    batch["image"]
                    .to(device, non_blocking=True)
                    .contiguous(memory_format=memory_format)
                )
                masks = batch["mask"].to(device, non_blocking=True)
                with autocast_context(device, amp):
                    reconstruction, target_logits = train_model(images)
                loss, terms = criterion(
                    reconstruction.float(), target_logits.float(), images.float(), masks
                )

                # A non-finite loss would poison the weights; stop before the step. One host
                # sync per step (the total); the terms are only looked at when it is bad. Under
                # DDP every rank must stop together, or the others wait in the next all-reduce.
                total_value = terms["total"].item()
                bad = not math.isfinite(total_value)
                if distributed.any_true(info, bad):
                    bad_terms = (
                        [n for n, v in terms.items() if not math.isfinite(v.item())] if bad else []
                    )
                    where = (
                        ", ".join(f"{n}={terms[n].item()}" for n in bad_terms) or "on another rank"
                    )
                    kept = run_dir / "latest.pth"
                    raise NonFiniteLossError(
                        f"non-finite loss at iteration {state.iteration + 1} (term {where}); "
                        f"stopped, last good checkpoint: {kept if kept.exists() else 'none yet'}"
                    )

                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if tcfg["grad_clip"] is not None:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg["grad_clip"])
                scaler.step(optimizer)
                scaler.update()
                state.iteration += 1
                loss_window[0] += total_value
                loss_window[1] += 1
                epoch_bar.update(1)

                if info.is_main and state.iteration % tcfg["log_every"] == 0:
                    run_files.tensorboard_losses(writer, terms, lr, state.iteration)
                    epoch_bar.set_postfix(f"loss={terms['total'].item():.4f}, lr={lr:.2e}")
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
                eval_due = tcfg["eval_every"] and state.iteration % tcfg["eval_every"] == 0
                if eval_due or (at_epoch_end and tcfg["eval_epoch_end"]) or stop:
                    validate_and_save()
                    last_eval_iteration = state.iteration
                    patience = tcfg["early_stop_patience"]
                    if patience is not None and state.evals_since_best >= patience:
                        logger.info("early stop: %d evaluations without improvement", patience)
                        stop = True
                if stop:
                    break
        epoch_bar.close()
        if last_eval_iteration != state.iteration:
            validate_and_save()
        elapsed = time.perf_counter() - started
        logger.info(
            "trained %d iterations in %.1f s (%.2f s/iter)",
            state.iteration - start_iteration,
            elapsed,
            elapsed / max(1, state.iteration - start_iteration),
        )

        # ---- final test of the selected and the last checkpoint ----
        state.finished = True
        test_started = time.perf_counter()

        def final_test(which: str) -> dict[str, Any]:
            """Test metrics of the weights in the model; with ``eval.val_threshold``, also at
            the threshold that scores best on val with these same weights."""
            entry = {"test": _score(predictor, splits.test, cfg, info, show_progress, which)}
            chosen_by = cfg["eval"]["val_threshold"]
            if chosen_by != "off":
                val_curve = _score(
                    predictor, splits.val, cfg, info, show_progress, "val", CURVE_THRESHOLDS
                )["pd_fa_curve"]
                chosen = best_threshold(val_curve, chosen_by)
                entry["val_threshold"] = {"by": chosen_by, **chosen}
                entry["test_at_val_threshold"] = _score(
                    predictor,
                    splits.test,
                    cfg,
                    info,
                    show_progress,
                    which,
                    threshold=chosen["threshold"],
                )
            return entry

        last_entry = final_test("test (last)")
        last_weights = {k: v.clone() for k, v in unwrap_model(model).state_dict().items()}
        best_path = run_dir / "best.pth"
        distributed.barrier(info)
        best_checkpoint = load_checkpoint(best_path, map_location=device)
        if best_checkpoint["iteration"] == state.iteration:
            best_entry = last_entry  # the same weights (always so with data.val_split=none)
        else:
            unwrap_model(model).load_state_dict(best_checkpoint["model"])
            best_entry = final_test("test (best)")
            unwrap_model(model).load_state_dict(last_weights)
        phase_seconds["test"] = time.perf_counter() - test_started
        logger.info(
            "time per phase: train %.1f s (%d iterations), val %.1f s (%d evaluations of %d "
            "images, checkpoints included), test %.1f s (%s, %d images)",
            elapsed - phase_seconds["val"],
            state.iteration - start_iteration,
            phase_seconds["val"],
            num_evaluations,
            len(splits.val),
            phase_seconds["test"],
            "best = last" if best_entry is last_entry else "best and last",
            len(splits.test),
        )
        selection = {
            "split": splits.val_source
            if splits.val
            else "none (no validation images: best = last)",
            "metric": tcfg["select_metric"],
            **_split_record(cfg, splits),
        }
        result = {
            "selection": selection,
            "threshold": cfg["eval"]["threshold"],
            "best": {
                "iteration": best_checkpoint["iteration"],
                "val": best_checkpoint.get("metrics", {}),
                **best_entry,
            },
            "last": {"iteration": state.iteration, **last_entry},
        }
        if info.is_main:
            run_files.write_test_report(run_dir, result)
            logger.info("checkpoint selected on %s by %s", selection["split"], selection["metric"])
            for which in ("best", "last"):
                entry = result[which]
                scored = [("test", entry["test"])]
                if "val_threshold" in entry:
                    threshold = entry["val_threshold"]["threshold"]
                    scored.append(
                        (f"test at val threshold {threshold:g}", entry["test_at_val_threshold"])
                    )
                for label, metrics in scored:
                    logger.info(
                        "%s (%s, iter %d): IoU %.4f nIoU %.4f F1 %.4f Pd %.4f Fa %.3e AUC %.4f",
                        label,
                        which,
                        entry["iteration"],
                        metrics["miou"],
                        metrics["niou"],
                        metrics["f1"],
                        metrics["pd"],
                        metrics["fa"],
                        metrics["auc"],
                    )
            writer.close()
        return RunResult(
            cfg["name"],
            run_dir,
            {"best": best_entry["test"], "last": last_entry["test"]},
            unwrap_model(model),
            result,
        )


def _split_record(cfg: Mapping[str, Any], splits: Splits) -> dict[str, Any]:
    """What identifies the split: its seed, sizes, and the validation names with their hash.

    Runs of several training seeds can be checked to have scored on the same split by
    comparing ``val_names_sha256``.
    """
    val_names = sorted(sample.name for sample in splits.val)
    return {
        "val_split": cfg["data"]["val_split"],
        "split_seed": cfg["data"]["split_seed"],
        "n_train": len(splits.train),
        "n_val": len(val_names),
        "n_test": len(splits.test),
        "val_names_sha256": hashlib.sha256("\n".join(val_names).encode()).hexdigest(),
        "val_names": val_names,
    }


def _reseed_for_rank(seed: int, rank: int, fresh: bool) -> None:
    """Give each rank its own dropout stream (after the shared weight initialisation)."""
    if fresh:
        torch.manual_seed(seed + 1000 * rank)


def _score(
    predictor, samples, cfg, info, progress, desc, curve_thresholds=None, threshold=None
) -> dict[str, Any]:
    """The config's metrics on ``samples`` (without the ROC arrays, which logs do not need).

    ``threshold`` replaces ``eval.threshold``; ``curve_thresholds`` adds ``pd_fa_curve``.
    """
    metrics = evaluate(
        predictor,
        samples,
        threshold=cfg["eval"]["threshold"] if threshold is None else threshold,
        protocol=cfg["eval"]["protocol"],
        batch_size=cfg["eval"]["batch_size"],
        dist_info=info,
        progress=progress,
        desc=desc,
        curve_thresholds=curve_thresholds,
    )
    return {k: v for k, v in metrics.items() if not k.startswith("roc_")}
