"""Training end to end on a tiny synthetic dataset with a tiny network (CPU, seconds)."""

import csv
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from lrrnet.config import load_config
from lrrnet.data import splits_from_config
from lrrnet.data.synthetic import generate_dataset
from lrrnet.engine import run_files, selection, trainer
from lrrnet.engine.checkpoint import load_checkpoint, load_model_weights
from lrrnet.engine.distributed import init_distributed
from lrrnet.engine.predictor import Predictor
from lrrnet.engine.schedule import total_iterations
from lrrnet.engine.selection import _score_at
from lrrnet.engine.trainer import NonFiniteLossError, train
from lrrnet.errors import ConfigError, DataError, UserError
from lrrnet.files import jsonable
from lrrnet.metrics import METRIC_KEYS, VAL_THRESHOLDS
from lrrnet.models import build_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "SIRST-Synth"
    generate_dataset(root, num_train=28, num_test=6, size=32, seed=3, progress=False)
    return root


def tiny_overrides(root, checkpoints, **extra):
    values = {
        "model.base_channels": 8,
        "model.num_groups": 4,
        "model.channel_mults": (1, 2),
        "model.num_res_blocks": 1,
        "data.root": str(root),
        "data.base_size": 32,
        "data.eval_size": "native",
        "data.num_workers": 0,
        "data.augment": True,
        "data.generate": False,  # generated above with its own seed and size
        "train.epochs": 2,
        "train.batch_size": 4,
        "train.lr": 2e-3,
        "train.device": "cpu",
        "train.log_every": 1,
        "train.num_log_images": 2,
        "paths.checkpoints": str(checkpoints),
        "name": "tiny",
    }
    values.update(extra)
    return [
        f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}"
        for key, value in values.items()
    ]


def read_csv(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_two_epochs_write_every_file_and_reduce_the_loss(tiny_dataset, tmp_path):
    cfg = load_config(
        "synthetic", tiny_overrides(tiny_dataset, tmp_path / "ckpt", **{"train.epochs": 3})
    )
    result = train(cfg)
    run_dir = result.run_dir
    assert run_dir.parent == tmp_path / "ckpt" / "tiny"
    for name in (
        "config.yaml",
        "log.txt",
        "latest.pth",
        "best.pth",
        "metrics.csv",
        "test_metrics.json",
    ):
        assert (run_dir / name).is_file(), name
    assert list(run_dir.glob("events.out.tfevents.*")), "no TensorBoard event file"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {
        "loss/softiou",
        "loss/mse",
        "loss/softiou_l1",
        "loss/total",
        "lr",
        "val/miou",
        "val/pd",
    } <= scalars
    assert len(events.Tags()["images"]) == 2  # train.num_log_images panels
    assert load_config(run_dir / "config.yaml") == cfg

    rows = read_csv(run_dir / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    losses = [float(r["train_loss"]) for r in rows]
    assert losses[-1] < losses[0], losses

    summary = json.loads((run_dir / "test_metrics.json").read_text())
    assert "holdout" in summary["selection"]["split"]
    for which in ("best", "last"):
        for key in ("miou", "niou", "f1", "pd", "fa", "auc", "n_images", "n_targets"):
            assert key in summary[which]["test"]
        assert summary[which]["test"]["n_images"] == 6
    assert summary["last"]["iteration"] == int(rows[-1]["iteration"])

    latest = load_checkpoint(run_dir / "latest.pth")
    for key in ("model", "optimizer", "scaler", "rng", "config", "metrics", "iteration", "epoch"):
        assert key in latest
    log = (run_dir / "log.txt").read_text()
    assert "checkpoint selected on holdout" in log and "test (best" in log
    # The one line outside checks read: "ROOT (LAYOUT): N train, M val (...), K test".
    split_lines = re.findall(
        r": (.+) \((\w+)\): (\d+) train, (\d+) val \((.+)\), (\d+) test$", log, re.M
    )
    assert len(split_lines) == 1
    root, layout, n_train, n_val, source, n_test = split_lines[0]
    assert (root, layout, n_test) == (str(tiny_dataset), "split_folders", "6")
    assert int(n_train) + int(n_val) == 28 and source.startswith("holdout")
    # Off a terminal, evaluation progress is in the log, and each phase's time at the end.
    assert "test (last): 6/6 img in" in log
    # The best checkpoint is scored on its own unless it is the last one (then once).
    best_is_last = summary["best"]["iteration"] == summary["last"]["iteration"]
    assert ("test (best): 6/6 img in" in log) != best_is_last
    assert ("best = last" in log) == best_is_last
    phases = re.search(
        r"time per phase: train ([\d.]+) s \((\d+) iterations\), val ([\d.]+) s \((\d+) "
        r"evaluations of (\d+) images, checkpoints included\), test ([\d.]+) s",
        log,
    )
    assert phases is not None
    assert (phases[2], phases[4], phases[5]) == (rows[-1]["iteration"], "3", n_val)
    assert all(float(phases[i]) > 0 for i in (1, 3, 6))


def _final_weights(run_dir):
    return load_checkpoint(run_dir / "latest.pth")["model"]


def test_resume_mid_epoch_gives_identical_weights(tiny_dataset, tmp_path, interrupted_train):
    extra = {"train.eval_every": 4}
    reference = train(
        load_config("synthetic", tiny_overrides(tiny_dataset, tmp_path / "a", **extra))
    )

    # Interrupt in step 6: the last checkpoint is from iteration 4, in the middle of epoch 0
    # (6 iterations per epoch), so the resume must skip the batches already seen.
    cfg = load_config("synthetic", tiny_overrides(tiny_dataset, tmp_path / "b", **extra))
    interrupted_train(cfg, step=5)
    interrupted = next((tmp_path / "b" / "tiny").iterdir())
    assert load_checkpoint(interrupted / "latest.pth")["iteration"] == 4

    resumed = train(cfg, resume="auto")
    assert resumed.run_dir == interrupted
    expected, actual = _final_weights(reference.run_dir), _final_weights(resumed.run_dir)
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key
    iterations = [int(r["iteration"]) for r in read_csv(resumed.run_dir / "metrics.csv")]
    assert iterations == sorted(set(iterations)), (
        "metrics.csv has rows from before the resume twice"
    )


@pytest.fixture(scope="module")
def uninterrupted_eval_every_2(tiny_dataset, tmp_path_factory):
    """Final weights of the uninterrupted run that the kill -9 tests must reproduce."""
    checkpoints = tmp_path_factory.mktemp("reference")
    cfg = load_config(
        "synthetic", tiny_overrides(tiny_dataset, checkpoints, **{"train.eval_every": 2})
    )
    return _final_weights(train(cfg).run_dir)


def test_kill_9_and_resume_from_the_command_line(
    tiny_dataset, tmp_path, uninterrupted_eval_every_2
):
    """A real `kill -9` at an arbitrary moment, then `--resume auto`, equals an uninterrupted run."""
    overrides = tiny_overrides(
        tiny_dataset, tmp_path / "k", **{"train.eval_every": 2, "train.epochs": 2}
    )
    command = [sys.executable, str(ROOT / "run_configs.py"), "synthetic"]
    for item in overrides:
        command += ["--set", item]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "k").glob("tiny/*/latest.pth")):
        time.sleep(0.05)
    process.kill()  # SIGKILL: no cleanup, possibly in the middle of a save
    process.wait()
    finished = subprocess.run(
        command + ["--resume", "auto"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "tiny best" in finished.stdout  # the summary table

    run_dirs = list((tmp_path / "k" / "tiny").iterdir())
    assert len(run_dirs) == 1
    expected, actual = uninterrupted_eval_every_2, _final_weights(run_dirs[0])
    assert all(torch.equal(expected[k], actual[k]) for k in expected)


def test_non_finite_loss_stops_with_the_iteration_and_term(tiny_dataset, tmp_path, monkeypatch):
    real_forward = trainer.LRRNetLoss.forward
    calls = {"n": 0}

    def poisoned(self, reconstruction, target_logits, image, mask):
        calls["n"] += 1
        total, terms = real_forward(self, reconstruction, target_logits, image, mask)
        if calls["n"] == 7:
            terms = dict(terms, mse=torch.tensor(float("nan")), total=torch.tensor(float("nan")))
            total = total * float("nan")
        return total, terms

    monkeypatch.setattr(trainer.LRRNetLoss, "forward", poisoned)
    writers = []
    open_tensorboard = trainer.run_files.open_tensorboard

    def recorded(run_dir, iteration):
        writers.append(open_tensorboard(run_dir, iteration))
        return writers[-1]

    monkeypatch.setattr(trainer.run_files, "open_tensorboard", recorded)
    cfg = load_config(
        "synthetic", tiny_overrides(tiny_dataset, tmp_path / "n", **{"train.eval_every": 3})
    )
    with pytest.raises(NonFiniteLossError, match=r"iteration 7 \(term mse=nan") as error:
        train(cfg)
    assert "latest.pth" in str(error.value)
    # The TensorBoard writer was closed (its events flushed) although the run failed.
    assert len(writers) == 1 and writers[0].all_writers is None
    run_dir = next((tmp_path / "n" / "tiny").iterdir())
    checkpoint = load_checkpoint(run_dir / "latest.pth")
    assert checkpoint["iteration"] == 6
    assert all(
        torch.isfinite(v).all() for v in checkpoint["model"].values() if v.is_floating_point()
    )


def _ddp_worker(rank, world_size, port, overrides, out_dir, crash_at=None, resume=None):
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    models = []  # the network each train() builds: it ends with the last weights
    real_build_model = trainer.build_model

    def recording_build_model(cfg):
        models.append(real_build_model(cfg))
        return models[-1]

    trainer.build_model = recording_build_model
    if crash_at is not None:  # both ranks stop in the same step, like a killed job
        real_lr_at = trainer.lr_at

        def crash(train_cfg, iteration, iters_per_epoch):
            if iteration == crash_at:
                raise KeyboardInterrupt
            return real_lr_at(train_cfg, iteration, iters_per_epoch)

        trainer.lr_at = crash
        try:
            train(load_config("synthetic", overrides))
        except KeyboardInterrupt:
            return
    result = train(load_config("synthetic", overrides), resume=resume)
    state = {
        "weights": models[-1].state_dict(),
        "test": result.test,
        "run_dir": str(result.run_dir),
    }
    torch.save(state, Path(out_dir) / f"rank{rank}.pt")


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_gloo_run_agrees_on_weights_and_writes_once(tiny_dataset, tmp_path):
    overrides = tiny_overrides(
        tiny_dataset, tmp_path / "ddp", **{"train.batch_size": 2, "train.epochs": 1}
    )
    mp.spawn(_ddp_worker, args=(2, _free_port(), overrides, str(tmp_path)), nprocs=2, join=True)
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    run_dirs = list((tmp_path / "ddp" / "tiny").iterdir())
    assert len(run_dirs) == 1 and rank0["run_dir"] == rank1["run_dir"] == str(run_dirs[0])
    for key, value in rank0["weights"].items():
        assert torch.equal(value, rank1["weights"][key]), key
    saved = load_checkpoint(run_dirs[0] / "latest.pth")["model"]
    assert all(torch.equal(saved[k], rank0["weights"][k]) for k in saved)
    # Evaluation counts are reduced across ranks, so both ranks report the same test numbers.
    # As JSON: empty Pd-by-area bins hold NaN, which is unequal to itself.
    assert json.dumps(rank0["test"], sort_keys=True) == json.dumps(rank1["test"], sort_keys=True)
    assert rank0["test"]["last"]["n_images"] == 6
    assert len(read_csv(run_dirs[0] / "metrics.csv")) == 1


def test_early_stopping_after_patience_evaluations_without_improvement(
    tiny_dataset, tmp_path, monkeypatch
):
    flat = {k: 0.5 for k in METRIC_KEYS} | {"n_images": 3, "n_targets": 3}
    monkeypatch.setattr(selection, "evaluate_at", lambda *args, **kwargs: [dict(flat)])
    overrides = {"train.eval_every": 2, "train.epochs": 3, "train.early_stop_patience": 2}
    result = train(
        load_config("synthetic", tiny_overrides(tiny_dataset, tmp_path / "e", **overrides))
    )
    # evaluations at 2 (best), 4 and 6 (no improvement twice) -> stop at 6 of 18 iterations
    assert load_checkpoint(result.run_dir / "latest.pth")["iteration"] == 6
    assert load_checkpoint(result.run_dir / "best.pth")["iteration"] == 2
    assert (
        "early stop: 2 evaluations without improvement" in (result.run_dir / "log.txt").read_text()
    )


def test_training_layout_is_contiguous_unless_compiled_or_forced():
    """train.channels_last=None takes the measured-fastest layout (see configs/base.py)."""
    assert load_config("demo")["train"]["channels_last"] is None
    assert trainer.training_layout({"channels_last": None, "compile": False}) is False
    assert trainer.training_layout({"channels_last": None, "compile": True}) is True
    assert trainer.training_layout({"channels_last": True, "compile": False}) is True
    assert trainer.training_layout({"channels_last": False, "compile": True}) is False
    with pytest.raises(ConfigError, match="train.channels_last"):
        load_config("demo", ["train.channels_last='auto'"])


def test_bf16_autocast_trains_on_the_cpu_and_fp16_is_refused(tiny_dataset, tmp_path, monkeypatch):
    """train.amp=bf16 runs the CPU's forward passes (training and validation) in bf16
    autocast, and says so in the log where the CPU would emulate it; fp16, which has no CPU
    kernels worth using, is a one-line error."""
    output_dtypes = set()
    real_build_model = trainer.build_model

    def recording_build_model(cfg):
        model = real_build_model(cfg)
        first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        first_conv.register_forward_hook(lambda module, args, out: output_dtypes.add(out.dtype))
        return model

    monkeypatch.setattr(trainer, "build_model", recording_build_model)
    monkeypatch.setattr(trainer, "bf16_is_emulated", lambda: True)  # an AVX2-only CPU
    overrides = tiny_overrides(tiny_dataset, tmp_path / "bf16", **{"train.epochs": 1})
    run_dir = train(load_config("synthetic", [*overrides, "train.amp=bf16"])).run_dir
    assert output_dtypes == {torch.bfloat16}
    log = (run_dir / "log.txt").read_text()
    assert "process(es), bf16 autocast) from iteration 0" in log
    assert "train.amp=bf16: bf16 on this CPU is emulated and slow" in log
    weights = load_checkpoint(run_dir / "latest.pth")["model"]
    assert all(torch.isfinite(value).all() for value in weights.values())
    assert {value.dtype for value in weights.values()} == {torch.float32}

    with pytest.raises(ConfigError, match="train.amp=fp16 needs a CUDA device"):
        train(load_config("synthetic", [*overrides, "train.amp=fp16"]))


def test_run_configs_continues_past_a_failed_config_and_exits_non_zero(
    tiny_dataset, tmp_path, capsys, script_logging
):
    import run_configs  # a script of the project root, which pytest puts on sys.path

    assert run_configs.main(["--list"]) == 0
    assert {"demo", "irstd1k", "nudt", "sirst", "sirstaug", "synthetic"} <= set(
        capsys.readouterr().out.split()
    )

    bad = tmp_path / "bad.py"
    bad.write_text("config = {'name': 'bad', 'trian': {}}\n")
    args = [str(bad), "synthetic"]
    overrides = {"train.epochs": 1, "eval.val_threshold": "f1"}
    for item in tiny_overrides(tiny_dataset, tmp_path / "c", **overrides):
        args += ["--set", item]
    code = run_configs.main(args)
    captured = capsys.readouterr()
    assert code == 1
    assert "unknown config key 'trian'" in captured.err
    assert f"1 config(s) failed: {bad}" in captured.err
    assert "tiny best" in captured.out and "tiny last" in captured.out  # the second still ran
    # With eval.val_threshold, a row per checkpoint at the threshold chosen on val.
    report = json.loads(next((tmp_path / "c").rglob("test_metrics.json")).read_text())
    chosen = report["last"]["val_threshold"]["threshold"]
    assert f"tiny last@{chosen:g}" in captured.out


def test_two_process_run_resumes_to_identical_weights(tiny_dataset, tmp_path):
    """Every rank's RNG state is in the checkpoint, so a DDP resume is exact too."""
    extra = {"train.batch_size": 2, "train.epochs": 1, "train.eval_every": 2, "model.dropout": 0.5}
    reference = tmp_path / "ref"
    reference.mkdir()
    overrides = tiny_overrides(tiny_dataset, tmp_path / "a", **extra)
    mp.spawn(_ddp_worker, args=(2, _free_port(), overrides, str(reference)), nprocs=2, join=True)

    resumed = tmp_path / "resumed"
    resumed.mkdir()
    overrides = tiny_overrides(tiny_dataset, tmp_path / "b", **extra)
    mp.spawn(_ddp_worker, args=(2, _free_port(), overrides, str(resumed), 3), nprocs=2, join=True)
    assert (
        load_checkpoint(next((tmp_path / "b" / "tiny").iterdir()) / "latest.pth")["iteration"] == 2
    )
    mp.spawn(
        _ddp_worker,
        args=(2, _free_port(), overrides, str(resumed), None, "auto"),
        nprocs=2,
        join=True,
    )

    for rank in (0, 1):
        expected = torch.load(reference / f"rank{rank}.pt", weights_only=True)["weights"]
        actual = torch.load(resumed / f"rank{rank}.pt", weights_only=True)["weights"]
        assert all(torch.equal(expected[k], actual[k]) for k in expected), rank


def test_strict_sizes_refuses_a_mask_of_another_size(tmp_path):
    import cv2

    root = tmp_path / "SIRST-Synth"
    generate_dataset(root, num_train=4, num_test=2, size=32, seed=3, progress=False)
    mask_path = sorted((root / "test" / "masks").iterdir())[0]
    cv2.imwrite(str(mask_path), cv2.resize(cv2.imread(str(mask_path)), (64, 64)))
    cfg = load_config("synthetic", tiny_overrides(root, tmp_path / "c"))
    process = init_distributed("cpu")
    splits = trainer.prepare_dataset(cfg, process)  # the default: named in a warning, accepted
    assert len(splits.test) == 2
    strict = load_config(
        "synthetic", tiny_overrides(root, tmp_path / "c", **{"data.strict_sizes": True})
    )
    with pytest.raises(
        DataError, match=f"{mask_path}: mask size 64x64 differs from image size 32x32"
    ):
        trainer.prepare_dataset(strict, process)


def test_resume_refuses_another_batch_size_or_split_and_logs_config_changes(
    tiny_dataset, tmp_path, caplog
):
    def config(**extra):
        values = {"train.max_iters": 5, "train.eval_every": 5, **extra}
        return load_config("synthetic", tiny_overrides(tiny_dataset, tmp_path / "c", **values))

    run_dir = train(config()).run_dir
    latest = run_dir / "latest.pth"
    before = {name: (run_dir / name).read_bytes() for name in ("config.yaml", "metrics.csv")}

    # Another batch size: the stored iteration counts batches of 4; refused, nothing written.
    with pytest.raises(
        UserError,
        match=r"train.batch_size=4 × 1 process\(es\), resuming with "
        r"train.batch_size=2 × 1",
    ) as error:
        train(config(**{"train.batch_size": 2}), resume=str(latest))
    assert "\n" not in str(error.value)
    # Another training split (a bigger holdout): iterations per epoch differ; refused.
    with pytest.raises(UserError, match=r"6 iterations per epoch when saved, 4 now"):
        train(config(**{"data.val_fraction": 0.4}), resume=str(latest))
    # A checkpoint saved before iters_per_epoch was stored: iteration 5 of epoch 0 is past
    # the end of a 4-iteration epoch (it used to run an empty epoch forever); refused.
    legacy = load_checkpoint(latest)
    del legacy["iters_per_epoch"]
    (tmp_path / "legacy").mkdir()
    torch.save(legacy, tmp_path / "legacy" / "latest.pth")
    more = {"data.val_fraction": 0.4, "train.max_iters": 7}
    with pytest.raises(UserError, match=r"iteration 5 is not in epoch 0 at 4 iterations per"):
        train(config(**more), resume=str(tmp_path / "legacy" / "latest.pth"))
    assert {name: (run_dir / name).read_bytes() for name in before} == before

    # A changed learning rate is allowed: logged, and the old config.yaml is kept.
    caplog.set_level("WARNING", logger="lrrnet")
    resumed = train(config(**{"train.lr": 1e-3, "train.max_iters": 7}), resume=str(latest))
    assert resumed.run_dir == run_dir
    assert "train.lr: 0.002 -> 0.001" in caplog.text
    assert "train.max_iters: 5 -> 7" in caplog.text
    assert (run_dir / "config.until-iter5.yaml").read_bytes() == before["config.yaml"]
    assert load_config(run_dir / "config.yaml")["train"]["lr"] == 1e-3
    assert load_checkpoint(latest)["iteration"] == 7


@pytest.mark.parametrize(("extra", "total"), [({}, 12), ({"train.max_iters": 5}, 5)])
def test_lr_schedule_gets_each_step_index_once_and_the_run_total(
    tiny_dataset, tmp_path, monkeypatch, extra, total
):
    # 25 training images (28 minus a 3-image holdout), batch 4: 6 steps per epoch, 2 epochs.
    # The step that starts at iteration i uses the LR of i in a run of total: the first step
    # gets the full base LR, and no step sees i == total (which would be LR 0).
    calls = []
    real_lr_at = trainer.lr_at

    def recording(train_cfg, iteration, iters_per_epoch):
        calls.append((iteration, total_iterations(train_cfg, iters_per_epoch)))
        return real_lr_at(train_cfg, iteration, iters_per_epoch)

    monkeypatch.setattr(trainer, "lr_at", recording)
    cfg = load_config("synthetic", tiny_overrides(tiny_dataset, tmp_path / "lr", **extra))
    run_dir = train(cfg).run_dir
    assert calls == [(i, total) for i in range(total)]
    rows = read_csv(run_dir / "metrics.csv")
    # The LR logged with the last evaluation is that of the last step, i = total - 1.
    assert float(rows[-1]["lr"]) == pytest.approx(2e-3 * (1 - (total - 1) / total) ** 0.9, rel=1e-5)


_SLOW_SAVE_RUNNER = """
import runpy, sys, time
from pathlib import Path

import torch

import lrrnet.engine.checkpoint as checkpoint

marker, stop_at = Path(sys.argv[1]), int(sys.argv[2])
real_save, writes = torch.save, []


def save_then_hang(obj, file, *args, **kwargs):
    writes.append(file)
    if len(writes) == stop_at:  # half of this checkpoint is on disk when the kill comes
        Path(file).write_bytes(b"PK half a zip")
        marker.write_text(str(file))
        time.sleep(600)
    return real_save(obj, file, *args, **kwargs)


checkpoint.torch.save = save_then_hang
sys.argv = sys.argv[3:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_kill_9_during_a_checkpoint_write_keeps_the_previous_one_and_resumes_exactly(
    tiny_dataset, tmp_path, uninterrupted_eval_every_2
):
    overrides = tiny_overrides(tiny_dataset, tmp_path / "k", **{"train.eval_every": 2})
    command = [str(ROOT / "run_configs.py"), "synthetic"]
    for item in overrides:
        command += ["--set", item]
    runner = tmp_path / "runner.py"
    runner.write_text(_SLOW_SAVE_RUNNER)
    marker = tmp_path / "writing"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Writes: iteration 2 (latest, best), iteration 4 (latest, ...): the 3rd is latest.pth
    # of iteration 4, killed half-written.
    process = subprocess.Popen(
        [sys.executable, str(runner), str(marker), "3", *command],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while time.time() < deadline and not marker.exists() and process.poll() is None:
        time.sleep(0.05)
    assert marker.exists(), "the run never reached its third checkpoint write"
    process.kill()  # SIGKILL in the middle of torch.save
    process.wait()

    run_dir = next((tmp_path / "k" / "tiny").iterdir())
    half_written = Path(marker.read_text())
    assert half_written.parent == run_dir and half_written.name.startswith(".latest.pth.")
    assert half_written.read_bytes() == b"PK half a zip"  # the kill did land mid-write
    assert load_checkpoint(run_dir / "latest.pth")["iteration"] == 2  # the previous one

    finished = subprocess.run(
        [sys.executable, *command, "--resume", "auto"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    expected, actual = uninterrupted_eval_every_2, _final_weights(run_dir)
    assert all(torch.equal(expected[k], actual[k]) for k in expected)


def test_threshold_chosen_on_val_and_the_split_recorded(tiny_dataset, tmp_path):
    overrides = {"eval.val_threshold": "f1", "train.epochs": 1, "seed": 5}
    cfg = load_config("synthetic", tiny_overrides(tiny_dataset, tmp_path / "t", **overrides))
    result = train(cfg)
    report = json.loads((result.run_dir / "test_metrics.json").read_text())
    selection = report["selection"]
    assert (selection["split_seed"], selection["n_val"], selection["n_test"]) == (1, 3, 6)
    assert len(selection["val_names"]) == 3 and len(selection["val_names_sha256"]) == 64
    for which in ("best", "last"):
        chosen = report[which]["val_threshold"]
        assert chosen["by"] == "f1" and chosen["threshold"] in VAL_THRESHOLDS
        assert report[which]["test_at_val_threshold"]["n_images"] == 6
    # The threshold is the best of the curve on val (with the last weights).
    model = build_model(cfg)
    load_model_weights(model, result.run_dir / "latest.pth")
    predictor = Predictor(model.eval(), device="cpu", size="native")
    val = splits_from_config(cfg).val
    process = init_distributed("cpu")
    (on_val,) = _score_at(predictor, val, cfg, process, "val", [None], VAL_THRESHOLDS)
    curve = on_val["pd_fa_curve"]
    assert report["last"]["val_threshold"]["f1"] == max(row["f1"] for row in curve)
    # Test at that threshold is what a separate pass at it gives (one pass scores both).
    test = splits_from_config(cfg).test
    chosen = report["last"]["val_threshold"]["threshold"]
    (at_chosen,) = _score_at(predictor, test, cfg, process, "test", [chosen])
    assert report["last"]["test_at_val_threshold"] == jsonable(at_chosen)
    assert "test at val threshold" in (result.run_dir / "log.txt").read_text()


def test_val_split_none_trains_on_everything_and_reports_last(tiny_dataset, tmp_path):
    overrides = {"data.val_split": "none", "train.epochs": 1}
    cfg = load_config("synthetic", tiny_overrides(tiny_dataset, tmp_path / "n", **overrides))
    result = train(cfg)
    report = json.loads((result.run_dir / "test_metrics.json").read_text())
    assert report["best"]["iteration"] == report["last"]["iteration"] == 7  # 28 images / 4
    assert json.dumps(report["best"]["test"]) == json.dumps(report["last"]["test"])
    assert report["selection"]["n_val"] == 0 and report["selection"]["n_train"] == 28
    assert "28 train, 0 val" in (result.run_dir / "log.txt").read_text()

    with_threshold = tiny_overrides(
        tiny_dataset, tmp_path / "n", **overrides, **{"eval.val_threshold": "miou"}
    )
    with pytest.raises(ConfigError, match="eval.val_threshold='miou' needs validation"):
        train(load_config("synthetic", with_threshold))


def test_sirst_v2_trains_and_scores_target_free_frames(tiny_dataset, tmp_path):
    """The open-sirst-v2 layout: half the val and test frames are backgrounds without targets."""
    import cv2
    import numpy as np

    root = tmp_path / "SIRST-V2"
    (root / "mixed").mkdir(parents=True)
    (root / "annotations" / "masks").mkdir(parents=True)
    (root / "splits").mkdir()
    frames = sorted((tiny_dataset / "trainval" / "images").iterdir())[:12]
    lists = {"train": [], "val": [], "test": []}
    for index, frame in enumerate(frames):
        name = frame.stem if index < 8 or index % 2 else f"Background_{index}"
        (root / "mixed" / f"{name}.png").write_bytes(frame.read_bytes())
        mask = cv2.imread(str(tiny_dataset / "trainval" / "masks" / frame.name), 0)
        if name.startswith("Background"):
            mask = np.zeros_like(mask)
        cv2.imwrite(str(root / "annotations" / "masks" / f"{name}_pixels0.png"), mask)
        (root / "annotations" / "masks" / f"{name}.xml").write_text("<annotation/>")
        lists["train" if index < 8 else "val" if index < 10 else "test"].append(name)
    for split, names in lists.items():
        (root / "splits" / f"{split}_full.txt").write_text("\n".join(names))
    overrides = tiny_overrides(
        root, tmp_path / "c", **{"train.epochs": 1, "data.layout": "auto", "name": "v2"}
    )
    cfg = load_config("sirst_v2", overrides)
    result = train(cfg)
    log = (result.run_dir / "log.txt").read_text()
    assert f"{root} (sirst_v2): 8 train, 2 val (dataset val list), 2 test" in log
    test = json.loads((result.run_dir / "test_metrics.json").read_text())["last"]["test"]
    assert test["n_images"] == 2 and test["n_targets"] >= 1  # one frame of the two has targets
    for key in ("miou", "niou", "pd", "fa", "auc"):
        assert 0.0 <= test[key] <= 1.0, key


def test_weight_average_is_validated_saved_tested_and_resumed_exactly(
    tiny_dataset, tmp_path, interrupted_train
):
    extra = {"train.eval_every": 4, "train.ema_decay": 0.8}
    reference = train(
        load_config("synthetic", tiny_overrides(tiny_dataset, tmp_path / "a", **extra))
    )
    run_dir = reference.run_dir
    assert "weight average 0.8 evaluated" in (run_dir / "log.txt").read_text()
    latest = load_checkpoint(run_dir / "latest.pth")
    averaged, live = latest["model"], latest["train_model"]
    assert averaged.keys() == live.keys()
    assert any(not torch.equal(averaged[k], live[k]) for k in averaged), "no average kept"

    # Validation and the test scored the average: rescoring best.pth's "model" on test gives
    # the report's numbers, and its live weights score otherwise.
    cfg = load_config(run_dir / "config.yaml")
    process, test = init_distributed("cpu"), splits_from_config(cfg).test
    report = json.loads((run_dir / "test_metrics.json").read_text())
    best = load_checkpoint(run_dir / "best.pth")
    scores = {}
    for key in ("model", "train_model"):
        model = build_model(cfg)
        model.load_state_dict(best[key])
        predictor = Predictor(model.eval(), device="cpu", size="native")
        (scores[key],) = _score_at(predictor, test, cfg, process, "test", [None])
    assert report["best"]["test"] == jsonable(scores["model"])
    assert scores["train_model"]["miou"] != scores["model"]["miou"]

    # Killed in step 6 and resumed from iteration 4: both weight sets end identical.
    cfg = load_config("synthetic", tiny_overrides(tiny_dataset, tmp_path / "b", **extra))
    interrupted_train(cfg, step=5)
    resumed = train(cfg, resume="auto")
    final = load_checkpoint(resumed.run_dir / "latest.pth")
    for key in ("model", "train_model"):
        for name, tensor in latest[key].items():
            assert torch.equal(final[key][name], tensor), (key, name)


def _fake_clock(monkeypatch):
    """The time limit's clock, one second per reading: the loop reads it twice per step, so
    with train.time_limit=9 a chunk stops after 4 steps (2·4 + 1 elapsed + 1 step > 9)."""
    readings = iter(range(10**6))
    monkeypatch.setattr(trainer, "clock", lambda: float(next(readings)))


def _script_args(overrides, *more):
    args = ["synthetic"]
    for item in overrides:
        args += ["--set", item]
    return [*args, *more]


def test_time_limited_chunks_moved_as_pieces_end_with_identical_weights(
    tiny_dataset, tmp_path, monkeypatch, capsys, script_logging
):
    """Stopped by train.time_limit twice (mid-epoch), its state carried as pieces to other
    folders, joined and resumed: the weights equal an unbroken run's to the bit."""
    import run_configs
    from lrrnet.engine.state_pieces import split

    reference = train(load_config("synthetic", tiny_overrides(tiny_dataset, tmp_path / "a")))
    limited = {"train.time_limit": 9}

    _fake_clock(monkeypatch)
    first = train(load_config("synthetic", tiny_overrides(tiny_dataset, tmp_path / "b", **limited)))
    assert (first.finished, first.iteration, first.total_iterations) == (False, 4, 12)
    assert first.test == {} and first.report == {}
    assert not (first.run_dir / "test_metrics.json").exists()
    assert not (first.run_dir / "best.pth").exists()  # no validation was due yet
    assert re.search(
        r"time limit reached at iteration 4 of 12 after \d+ s: latest.pth saved; "
        r"continue with --resume auto",
        (first.run_dir / "log.txt").read_text(),
    )
    assert load_checkpoint(first.run_dir / "latest.pth")["iteration"] == 4

    def move_state(run_dir, machine):
        """Split the run's checkpoints into small pieces, move them into a run folder of
        another checkpoints root, and return the manifest of latest.pth there."""
        pieces = tmp_path / "transfer"
        manifest = split(run_dir / "latest.pth", pieces, max_mib=0.1)
        assert len(json.loads(manifest.read_text())["pieces"]) > 1
        if (run_dir / "best.pth").exists():
            split(run_dir / "best.pth", pieces, max_mib=0.1)
        target = tmp_path / machine / "tiny" / "20260101-000000"
        target.parent.mkdir(parents=True)
        shutil.move(pieces, target)
        return target / "latest.pth.manifest.json"

    # Second chunk elsewhere, from the pieces, through the command line: 4 → 8, past the
    # epoch end at 6 (validated there, so best.pth exists now).
    manifest = move_state(first.run_dir, "c")
    overrides = tiny_overrides(tiny_dataset, tmp_path / "c", **limited)
    _fake_clock(monkeypatch)
    assert run_configs.main(_script_args(overrides, "--resume", str(manifest))) == 0
    out = capsys.readouterr().out
    assert "tiny: stopped by train.time_limit at iteration 8 of 12" in out
    assert "tiny best" not in out  # no test table
    second = manifest.parent
    assert load_checkpoint(second / "latest.pth")["iteration"] == 8
    assert [r["iteration"] for r in read_csv(second / "metrics.csv")] == ["6"]

    # Third chunk on a third machine: 8 → 12, the end, then the test.
    manifest = move_state(second, "d")
    overrides = tiny_overrides(tiny_dataset, tmp_path / "d", **limited)
    _fake_clock(monkeypatch)
    assert run_configs.main(_script_args(overrides, "--resume", str(manifest))) == 0
    assert "tiny best" in capsys.readouterr().out
    third = manifest.parent
    assert (third / "test_metrics.json").exists()

    expected, actual = _final_weights(reference.run_dir), _final_weights(third)
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key
    # The evaluations happened at the unbroken run's iterations, with its scores.
    rows = read_csv(reference.run_dir / "metrics.csv")
    chunked = read_csv(second / "metrics.csv") + read_csv(third / "metrics.csv")
    assert [r["iteration"] for r in rows] == [r["iteration"] for r in chunked] == ["6", "12"]
    for row, other in zip(rows, chunked, strict=True):
        assert {k: row[k] for k in METRIC_KEYS} == {k: other[k] for k in METRIC_KEYS}
    best = load_checkpoint(third / "best.pth")["iteration"]
    assert best == load_checkpoint(reference.run_dir / "best.pth")["iteration"]


def test_the_median_step_leaves_out_the_warm_up_and_the_validations(
    tiny_dataset, tmp_path, monkeypatch, caplog
):
    # One clock reading a second, two a step: every step takes 1 s, the validations at the
    # epoch ends (6, 12) read no time of the step's. 12 steps, the first 10 left out.
    caplog.set_level("INFO", logger="lrrnet")
    _fake_clock(monkeypatch)
    result = train(load_config("synthetic", tiny_overrides(tiny_dataset, tmp_path / "a")))
    assert result.median_step_seconds == 1.0
    assert "median step 1000.0 ms over 2 steps (the first 10, warming up, left out)" in (
        caplog.text
    )
    short = tiny_overrides(tiny_dataset, tmp_path / "b", **{"train.max_iters": 10})
    assert train(load_config("synthetic", short)).median_step_seconds is None


def test_a_compiled_run_stopped_by_the_time_limit_leaves_its_compile_cache_for_the_resume(
    tiny_dataset, tmp_path, monkeypatch
):
    """The cache is written at the stop, loaded by the resume before it compiles, and removed
    when the run finishes. torch.compile itself is a stand-in here (a CPU compile of even
    the tiny network takes 30 s): what is checked is the trainer's handling of the file."""
    artifacts, compiled, loaded = b"kernels and graphs", [], []

    def fake_compile(model):
        compiled.append(list(loaded))  # what had been loaded when the model was compiled
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    monkeypatch.setattr(torch.compiler, "save_cache_artifacts", lambda: (artifacts, None))
    monkeypatch.setattr(torch.compiler, "load_cache_artifacts", loaded.append)
    overrides = tiny_overrides(
        tiny_dataset, tmp_path, **{"train.compile": True, "train.time_limit": 9}
    )
    _fake_clock(monkeypatch)
    first = train(load_config("synthetic", overrides))
    assert not first.finished and first.iteration == 4
    assert (first.run_dir / run_files.COMPILE_CACHE).read_bytes() == artifacts
    assert compiled == [[]]  # a new run loads nothing

    overrides = tiny_overrides(tiny_dataset, tmp_path, **{"train.compile": True})
    done = train(load_config("synthetic", overrides), resume="auto")
    assert done.finished and done.run_dir == first.run_dir
    assert compiled == [[], [artifacts]]  # loaded before the resumed model was compiled
    assert not (done.run_dir / run_files.COMPILE_CACHE).exists()


def test_a_validation_due_at_the_time_limit_runs_before_the_stop(
    tiny_dataset, tmp_path, monkeypatch
):
    _fake_clock(monkeypatch)
    extra = {"train.time_limit": 9.5, "train.eval_every": 2}
    result = train(load_config("synthetic", tiny_overrides(tiny_dataset, tmp_path, **extra)))
    assert not result.finished and result.iteration == 4
    assert [r["iteration"] for r in read_csv(result.run_dir / "metrics.csv")] == ["2", "4"]
    latest = load_checkpoint(result.run_dir / "latest.pth")
    assert latest["iteration"] == 4 and latest["metrics"]  # saved by that validation


@pytest.mark.parametrize(
    "value, message",
    [
        ("0", "must be positive or None"),
        ("-5", "must be positive or None"),
        (".inf", "= inf must be finite"),
        (".nan", "= nan must be finite"),
        ("True", "expects float or int or None, got bool"),
        ("'1h'", "expects float or int or None, got str"),
    ],
)
def test_the_time_limit_is_none_or_finite_and_positive(value, message, tiny_dataset, tmp_path):
    overrides = tiny_overrides(tiny_dataset, tmp_path)
    with pytest.raises(ConfigError, match=f"'train.time_limit'.*{message}"):
        load_config("synthetic", [*overrides, f"train.time_limit={value}"])
    for accepted in ("None", "600", "0.5"):
        load_config("synthetic", [*overrides, f"train.time_limit={accepted}"])


def test_resume_under_another_config_is_refused_naming_the_keys(tiny_dataset, tmp_path):
    def config(**extra):
        values = {"train.max_iters": 2, "train.eval_every": 2, **extra}
        return load_config("synthetic", tiny_overrides(tiny_dataset, tmp_path / "c", **values))

    run_dir = train(config()).run_dir
    latest = run_dir / "latest.pth"
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    other_data = tmp_path / "NUDT-SIRST"  # another dataset: its own folder name
    other_data.symlink_to(tiny_dataset, target_is_directory=True)
    for extra, key in (
        ({"name": "someone_else"}, "name: 'tiny' -> 'someone_else'"),
        ({"model.base_channels": 16}, "model.base_channels: 8 -> 16"),
        ({"model.channel_mults": (1, 2, 2)}, "model.channel_mults: [1, 2] -> [1, 2, 2]"),
        ({"data.root": str(other_data)}, "data.root"),
    ):
        with pytest.raises(UserError, match="belongs to another config") as error:
            train(config(**extra), resume=str(latest))
        assert key in str(error.value) and "\n" not in str(error.value)
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before
    # The same dataset by another path, and a changed learning rate, still resume.
    moved = {
        "data.root": str(tiny_dataset.parent / ".." / tiny_dataset.parent.name / "SIRST-Synth")
    }
    resumed = train(config(**moved, **{"train.lr": 1e-3, "train.max_iters": 3}), resume=str(latest))
    assert resumed.run_dir == run_dir and load_checkpoint(latest)["iteration"] == 3


def test_a_live_run_folder_is_refused_to_a_second_process_and_freed_by_kill_9(
    tiny_dataset, tmp_path
):
    overrides = tiny_overrides(
        tiny_dataset, tmp_path / "k", **{"train.eval_every": 2, "train.epochs": 1000}
    )
    command = [sys.executable, str(ROOT / "run_configs.py"), "synthetic"]
    for item in overrides:
        command += ["--set", item]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list((tmp_path / "k").glob("tiny/*/latest.pth")):
            time.sleep(0.05)
        assert first.poll() is None, "the first run ended before the test could race it"
        # A second training of the live folder: refused at once, naming the live process.
        second = subprocess.run(
            command + ["--resume", "auto"], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert first.poll() is None, "the first run ended before the second one was refused"
    finally:
        first.kill()  # SIGKILL: the kernel drops the lock with the process
        first.wait()
    assert second.returncode != 0
    assert f"in use by another training (process {first.pid} holds train.lock)" in second.stderr
    assert "Traceback" not in second.stderr
    (run_dir,) = (tmp_path / "k" / "tiny").iterdir()
    reached = load_checkpoint(run_dir / "latest.pth")["iteration"]
    finished = subprocess.run(
        command + ["--resume", "auto", "--set", f"train.max_iters={reached + 2}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert load_checkpoint(run_dir / "latest.pth")["iteration"] == reached + 2
    rows = [int(row["iteration"]) for row in read_csv(run_dir / "metrics.csv")]
    assert rows == sorted(set(rows))  # no duplicate rows
