"""tools/gpu/zoo_chunk.py on the CPU: a tiny run in two chunks equals an unbroken one."""

import json
import tarfile

import pytest
import torch
from conftest import load_tool

from lrrnet.config import load_config
from lrrnet.data.synthetic import generate_dataset
from lrrnet.engine import trainer, zoo_builder
from lrrnet.engine.checkpoint import load_checkpoint
from lrrnet.errors import UserError

zoo_chunk = load_tool("gpu/zoo_chunk")

# The tiny network and run of tests/test_trainer.py: 25 training frames after the holdout,
# batch 4, 6 iterations per epoch, 12 in all, validated at each epoch's end.
TINY = [
    "name='tiny'",
    "model.base_channels=8",
    "model.num_groups=4",
    "model.channel_mults=(1, 2)",
    "model.num_res_blocks=1",
    "data.base_size=32",
    "data.eval_size='native'",
    "data.num_workers=0",
    "data.augment=True",
    "data.generate=False",
    "train.epochs=2",
    "train.batch_size=4",
    "train.lr=2e-3",
    "train.device='cpu'",
    "train.log_every=1",
    "train.num_log_images=2",
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "SIRST-Synth"
    generate_dataset(root, num_train=28, num_test=6, size=32, seed=3, progress=False)
    return root


def _fake_clock(monkeypatch):
    """One second per reading of the time limit's clock. The command reads it at its start
    and when it sets the limit, the loop twice per step: --budget-s 18 gives a limit of 17,
    which stops after 8 steps (2·8 + 2 > 17)."""
    readings = iter(range(10**6))
    monkeypatch.setattr(trainer, "clock", lambda: float(next(readings)))


# The reference run's protocol, in place of the zoo's (validation on the holdout at each
# epoch's end), so that the chunks are compared with a plain trainer.train of TINY.
REFERENCE_PROTOCOL = [
    "data.val_split='holdout'",
    "train.eval_epoch_end=True",
    "train.eval_every=None",
]


def _chunk(dataset, out, work, *more, protocol=REFERENCE_PROTOCOL):
    args = ["synthetic", "--data-root", str(dataset), "--out", str(out), "--work", str(work)]
    for item in [*TINY, *protocol]:
        args += ["--set", item]
    return zoo_chunk.main([*args, *more])


def _check_sizes(out):
    files = sorted(out.iterdir())
    assert 0 < len(files) <= 8
    for path in files:
        assert path.is_file() and path.stat().st_size <= 16 * 2**20, path.name
    return {path.name for path in files}


def test_two_chunks_end_with_the_weights_of_an_unbroken_run(
    dataset, tmp_path, monkeypatch, capsys, script_logging
):
    reference = trainer.train(
        load_config(
            "synthetic",
            [*TINY, f"data.root='{dataset}'", f"paths.checkpoints='{tmp_path / 'ref'}'"],
        )
    )

    # Chunk 1: stops at iteration 8 of 12, after the validation at the epoch end (6). Its
    # median step leaves out only the first 2 of its 8 (1 s each on the fake clock).
    _fake_clock(monkeypatch)
    monkeypatch.setattr(trainer, "WARM_UP_STEPS", 2)
    first = tmp_path / "out1"
    assert (
        _chunk(dataset, first, tmp_path / "work1", "--budget-s", "18", "--piece-mib", "0.25") == 0
    )
    assert "tiny: chunk 1 stopped at iteration 8 of 12" in capsys.readouterr().out
    names = _check_sizes(first)
    pieces = sorted(n for n in names if n.startswith("state.tar.part"))
    assert len(pieces) > 1  # the state really travelled as several pieces
    assert names == {"chunk.json", "run.tar.gz", "state.tar.manifest.json", *pieces}
    record = json.loads((first / "chunk.json").read_text())
    assert record["chunk"] == 1 and record["finished"] is False and record["error"] is None
    assert (record["epoch"], record["iteration"], record["total_iterations"]) == (1, 8, 12)
    assert record["iters_per_epoch"] == 6 and record["best_iteration"] == 6
    assert record["median_step_seconds"] == 1.0
    assert record["last_evaluation"]["iteration"] == "6"
    assert record["device"] == "cpu" and record["torch"] == torch.__version__
    assert record["resumed_from_iteration"] is None and record["test"] is None
    run_name = record["run"]
    with tarfile.open(first / "run.tar.gz") as tar:
        assert {"config.yaml", "log.txt", "metrics.csv"} <= set(tar.getnames())
        assert "test_metrics.json" not in tar.getnames()

    # Chunk 2, in a fresh out and work folder, from what chunk 1 wrote: 8 → 12 and the test.
    _fake_clock(monkeypatch)
    second, manifest = tmp_path / "out2", first / "state.tar.manifest.json"
    assert _chunk(dataset, second, tmp_path / "work2", "--resume", str(manifest)) == 0
    assert "tiny: chunk 2 finished at iteration 12 of 12" in capsys.readouterr().out
    assert _check_sizes(second) == {"chunk.json", "run.tar.gz", "latest.pth", "best.pth"}
    record = json.loads((second / "chunk.json").read_text())
    assert record["chunk"] == 2 and record["finished"] is True
    assert record["resumed_from_iteration"] == 8 and record["run"] == run_name
    assert (record["epoch"], record["iteration"]) == (2, 12)
    assert record["test"]["best"]["n_images"] == 6

    latest, expected = load_checkpoint(second / "latest.pth"), _final(reference.run_dir)
    assert "optimizer" not in latest and latest["iteration"] == 12
    assert latest["model"].keys() == expected.keys()
    for key in expected:
        assert torch.equal(latest["model"][key], expected[key]), key
    best = load_checkpoint(second / "best.pth")
    assert best["iteration"] == load_checkpoint(reference.run_dir / "best.pth")["iteration"]

    # The run folder grew across the chunks: both evaluations, both sessions' logs.
    run_dir = tmp_path / "unpacked"
    run_dir.mkdir()
    with tarfile.open(second / "run.tar.gz") as tar:
        tar.extractall(run_dir, filter="data")
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["6", "12"]
    log = (run_dir / "log.txt").read_text()
    assert log.count("trained ") == 2 and "time limit reached at iteration 8" in log
    assert zoo_builder.training_seconds(log, 12) > 0  # what tools/zoo.py add reads

    # Unpacked beside the two checkpoints it is a run folder tools/zoo.py add accepts.
    for name in ("latest.pth", "best.pth"):
        (run_dir / name).write_bytes((second / name).read_bytes())
    entry = zoo_builder.add_run(
        "tiny_chunks",
        run_dir,
        overrides=[f"data.root='{dataset}'"],
        zoo_path=tmp_path / "zoo" / "zoo.json",
        description="tiny",
        work_dir=tmp_path / "zoo_work",
    )
    assert (entry["iterations"], entry["epochs"]) == (12, 2)


def test_the_zoo_protocol_is_set_unless_a_set_gives_the_key(
    dataset, tmp_path, monkeypatch, script_logging
):
    _fake_clock(monkeypatch)
    out = tmp_path / "out"
    # The zoo's protocol except train.eval_every, which a --set gives.
    protocol = ["train.eval_every=3"]
    assert _chunk(dataset, out, tmp_path / "work", "--budget-s", "12", protocol=protocol) == 0
    record = json.loads((out / "chunk.json").read_text())
    assert record["settings"] == {"data.val_split": "'test'", "train.eval_epoch_end": "False"}
    config = _stored_config(out)
    assert config["data"]["val_split"] == "test" and config["train"]["eval_epoch_end"] is False
    assert config["train"]["eval_every"] == 3
    assert config["train"]["amp"] == "off" and config["train"]["compile"] is False  # on a CPU
    assert record["last_evaluation"]["iteration"] == "3"  # on test, not at the epoch's end

    # Without it, every 10 epochs of the training split: test as val trains on all 28 frames
    # of the synthetic train split, 7 batches of 4 an epoch.
    _fake_clock(monkeypatch)
    out = tmp_path / "out2"
    assert _chunk(dataset, out, tmp_path / "work2", "--budget-s", "12", protocol=[]) == 0
    record = json.loads((out / "chunk.json").read_text())
    assert record["iters_per_epoch"] == 7
    assert record["settings"]["train.eval_every"] == "70"
    assert _stored_config(out)["train"]["eval_every"] == 70
    assert record["last_evaluation"] is None  # none before the 70th iteration


def test_on_cuda_the_fast_step_is_set_too(dataset):
    tiny = [item for item in TINY if not item.startswith("data.num_workers")]
    overrides = [*tiny, f"data.root='{dataset}'", "train.compile=False"]
    settings = zoo_chunk.zoo_settings("synthetic", overrides, torch.device("cuda"))
    assert settings["train.amp"] == "'bf16'" and "train.compile" not in settings
    assert settings["data.num_workers"] == "8"
    assert settings["data.val_split"] == "'test'" and settings["train.eval_every"] == "70"


def test_a_compiled_runs_state_carries_its_compile_cache_to_the_next_chunk(
    dataset, tmp_path, monkeypatch, capsys, script_logging
):
    """The trainer leaves compile_cache.bin in the run folder at a compiled run's stop
    (tests/test_trainer.py); the chunk's state carries it, and the next chunk's resume
    loads it. torch.compile is a stand-in: the handling of the file is what is checked."""
    _fake_clock(monkeypatch)
    first, work = tmp_path / "out1", tmp_path / "work1"
    assert _chunk(dataset, first, work, "--budget-s", "18", "--piece-mib", "0.25") == 0
    assert json.loads((first / "chunk.json").read_text())["compile_cache_bytes"] is None
    (run_dir,) = (work / "tiny").iterdir()

    # The same stop, as a compiled run's: the cache in its run folder.
    artifacts = bytes(range(256)) * 8
    (run_dir / zoo_chunk.COMPILE_CACHE).write_bytes(artifacts)
    out = tmp_path / "out_compiled"
    zoo_chunk.export(run_dir, out, {"name": "tiny", "chunk": 1}, None, 0.25, 1.0)
    assert json.loads((out / "chunk.json").read_text())["compile_cache_bytes"] == len(artifacts)
    joined = zoo_chunk.join(out / "state.tar.manifest.json", tmp_path / "state.tar")
    with tarfile.open(joined) as tar:
        assert tar.extractfile(zoo_chunk.COMPILE_CACHE).read() == artifacts

    # The next chunk, compiled: its resume hands the cache to torch.compile first.
    loaded = []
    monkeypatch.setattr(torch, "compile", lambda model: model)
    monkeypatch.setattr(torch.compiler, "load_cache_artifacts", loaded.append)
    _fake_clock(monkeypatch)
    second, manifest = tmp_path / "out2", out / "state.tar.manifest.json"
    more = ["--resume", str(manifest), "--set", "train.compile=True"]
    assert _chunk(dataset, second, tmp_path / "work2", *more) == 0
    assert loaded == [artifacts]
    assert "loaded torch.compile's cache of the stopped run" in capsys.readouterr().err

    # A cache that would take more than the 8 files stays behind.
    (run_dir / zoo_chunk.COMPILE_CACHE).write_bytes(b"x" * 2**21)
    big = tmp_path / "out_big"
    zoo_chunk.export(run_dir, big, {"name": "tiny", "chunk": 1}, None, 0.25, 1.0)
    assert json.loads((big / "chunk.json").read_text())["compile_cache_bytes"] is None
    assert "left out: no room" in capsys.readouterr().err
    _check_sizes(big)


def _stored_config(out):
    import yaml

    with tarfile.open(out / "run.tar.gz") as tar:
        return yaml.safe_load(tar.extractfile("config.yaml"))


def _final(run_dir):
    return load_checkpoint(run_dir / "latest.pth")["model"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"--data-root": "missing"}, "--data-root .*missing: no such folder"),
        ({"--set": "data.root='x'"}, "--set data.root: this command sets it from --data-root"),
        ({"--set": "train.time_limit=5"}, "--set train.time_limit: .* --budget-s"),
        ({"--set": "train.nope=1"}, "train.nope"),
        ({"--resume": "missing.json"}, "--resume .*missing.json: no such file"),
        ({"--resume": "lonely"}, "--resume .*state.tar.manifest.json: no chunk.json beside it"),
        ({"--resume": "other"}, "a chunk of 'someone_else', not of 'tiny'"),
        ({"--out": "full"}, "--out .*full: not empty"),
        ({"--piece-mib": "17"}, "--piece-mib 17: at most 16"),
    ],
)
def test_a_users_mistake_is_one_line_naming_the_flag(
    change, message, dataset, tmp_path, capsys, script_logging
):
    import re

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    for folder, name in (("lonely", "tiny"), ("other", "someone_else")):
        (tmp_path / folder).mkdir()
        manifest = tmp_path / folder / "state.tar.manifest.json"
        zoo_chunk.split(_small_file(tmp_path / folder / "state.tar"), tmp_path / folder)
        assert manifest.is_file()
        if folder == "other":
            (tmp_path / folder / "run.tar.gz").write_bytes(b"")
            record = {"name": name, "run": "20260101-000000", "iteration": 4, "chunk": 1}
            (tmp_path / folder / "chunk.json").write_text(json.dumps(record))
    flags = {"--data-root": str(dataset), "--out": str(tmp_path / "out"), **change}
    for flag in ("--data-root", "--out", "--resume"):
        if flag in change and flag != "--data-root" and change[flag] in ("lonely", "other"):
            flags[flag] = str(tmp_path / change[flag] / "state.tar.manifest.json")
        elif flag in change and change[flag] in ("missing", "missing.json", "full"):
            flags[flag] = str(tmp_path / change[flag])
    args = ["synthetic", *(x for item in TINY for x in ("--set", item))]
    for flag, value in flags.items():
        args += [flag, value]
    assert zoo_chunk.main(args) != 0
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and re.search(message, error[0]), error
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def _small_file(path):
    path.write_bytes(b"state")
    return path


def test_the_out_check_refuses_too_many_too_large_or_too_much_together(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for index in range(8):
        (out / f"f{index}").write_bytes(b"x")
    zoo_chunk.check_out(out)  # 8 small files come back
    with open(out / "f0", "wb") as handle:
        handle.truncate(16 * 2**20 + 1)  # sparse: one byte over
    with pytest.raises(UserError, match=r"f0 is 16.0 MiB, over the 16 MiB"):
        zoo_chunk.check_out(out)
    (out / "f0").write_bytes(b"x")
    (out / "f8").write_bytes(b"x")
    with pytest.raises(UserError, match="9 files, more than the 8 that come back"):
        zoo_chunk.check_out(out)
    (out / "f8").unlink()
    # f4 … f7 are one byte each: three files of 16 MiB and one 4 bytes short make 64 MiB.
    for index in range(4):
        with open(out / f"f{index}", "wb") as handle:
            handle.truncate(16 * 2**20 - (4 if index == 3 else 0))
    zoo_chunk.check_out(out)
    (out / "f7").write_bytes(b"xx")  # one byte over
    with pytest.raises(UserError, match=r"64.0 MiB together, over the 64 MiB"):
        zoo_chunk.check_out(out)
