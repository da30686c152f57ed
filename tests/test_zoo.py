"""The model zoo: an entry added from a tiny 2-iteration run, its check, loading by name."""

import json
import shutil

import pytest
import scipy.io
import torch
import yaml
from conftest import load_tool

import cal_from_mask
import inference
from lrrnet.config import load_config
from lrrnet.data.synthetic import generate_dataset
from lrrnet.engine import zoo, zoo_builder
from lrrnet.engine.checkpoint import load_checkpoint
from lrrnet.engine.predictor import Predictor
from lrrnet.engine.trainer import train
from lrrnet.errors import CheckpointError

SIZE = 32  # the tiny run trains and evaluates at data.eval_size=resize, base_size 32


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    """A 2-iteration run of a tiny network on a 4 + 3-frame synthetic set, added to a zoo
    at ``REPO/checkpoints/zoo.json`` as "tiny". Returns ``(zoo_file, data_root, entry,
    run_dir)``."""
    root = tmp_path_factory.mktemp("zoo")
    data = generate_dataset(root / "data", num_train=4, num_test=3, size=32, seed=1, progress=False)
    overrides = {
        "name": "'tiny'",
        "data.root": repr(str(data)),
        "data.generate": "False",
        "data.synthetic": "{'num_train': 4, 'num_test': 3, 'size': 32}",
        "data.base_size": SIZE,
        "data.eval_size": "'resize'",
        "data.num_workers": 0,
        "model.base_channels": 8,
        "model.num_groups": 4,
        "model.channel_mults": "(1, 2)",
        "model.num_res_blocks": 1,
        "train.max_iters": 2,
        "train.batch_size": 2,
        "train.device": "'cpu'",
        "paths.checkpoints": repr(str(root / "ckpt")),
        "paths.results": repr(str(root / "results")),
    }
    run_dir = train(load_config("synthetic", [f"{k}={v}" for k, v in overrides.items()])).run_dir
    zoo_file = root / "repo" / "checkpoints" / "zoo.json"
    entry = zoo_builder.add_run("tiny", run_dir, zoo_path=zoo_file, work_dir=root / "work")
    return zoo_file, data, entry, run_dir


@pytest.fixture
def use_zoo(tiny_zoo, monkeypatch):
    monkeypatch.setenv(zoo.ZOO_ENV, str(tiny_zoo[0]))
    return tiny_zoo


def test_entry_has_every_key_and_an_fp16_state_dict_that_fits(tiny_zoo):
    zoo_file, _, entry, run_dir = tiny_zoo
    assert tuple(sorted(entry)) == tuple(sorted(zoo.ENTRY_KEYS))
    assert zoo.read_zoo(zoo_file) == {"tiny": entry}
    assert entry["weights"] == "checkpoints/zoo/tiny.pkl"
    weights = zoo_file.parent / "zoo" / "tiny.pkl"
    assert entry["sha256"] == zoo.file_sha256(weights)
    state = load_checkpoint(weights)
    assert all(tensor.dtype == torch.float16 for tensor in state.values())
    model = Predictor.from_checkpoint(weights, entry["config"]["model"]).model
    assert set(state) == set(model.state_dict())
    assert entry["iterations"] == 2 and entry["epochs"] == 2  # 3 frames to train: 1 step each
    assert entry["training_seconds"] > 0 and entry["gpu"] is None and entry["machine"]
    assert entry["best_on_test"] is None  # selected on a holdout of train, never on test
    assert entry["selection"].startswith("best val IoU on holdout")
    assert entry["recipe"]["config"] == "tiny" and len(entry["commit"]) >= 7
    for protocol in zoo.PROTOCOL_KEYS:
        assert set(entry["test"][protocol]) == set(zoo.FIGURE_KEYS)
    run_config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert entry["config"] == json.loads(json.dumps(run_config))


def test_check_passes_and_fails_after_one_byte_of_the_weights_changes(
    tiny_zoo, tmp_path, monkeypatch, capsys, script_logging
):
    tool = load_tool("zoo")
    repo = shutil.copytree(tiny_zoo[0].parents[1], tmp_path / "repo")
    monkeypatch.setenv(zoo.ZOO_ENV, str(repo / "checkpoints" / "zoo.json"))
    assert tool.main(["check"]) == 0
    assert "1 entries" in capsys.readouterr().out
    weights = repo / "checkpoints" / "zoo" / "tiny.pkl"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 1
    weights.write_bytes(bytes(data))
    assert tool.main(["check"]) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and str(weights) in error
    assert tiny_zoo[2]["sha256"] in error and zoo.file_sha256(weights) in error
    with pytest.raises(CheckpointError, match="SHA-256"):
        Predictor.from_checkpoint("tiny")


def test_inference_by_name_writes_the_maps_of_the_file_at_the_entrys_size_and_its_figures(
    use_zoo, tmp_path, capsys, script_logging
):
    zoo_file, data, entry, run_dir = use_zoo
    weights = zoo_file.parent / "zoo" / "tiny.pkl"
    images, masks = data / "test" / "images", data / "test" / "masks"
    common = ["--images", str(images), "--device", "cpu"]
    assert inference.main(["--checkpoint", "tiny", "--out", str(tmp_path / "name"), *common]) == 0
    assert "zoo model 'tiny'" in capsys.readouterr().err
    # The bare file needs the architecture: the run's config (whose test split is these
    # frames and whose eval size is the entry's) gives it.
    by_path = [str(run_dir / "config.yaml"), "--checkpoint", str(weights), "--device", "cpu"]
    assert inference.main([*by_path, "--out", str(tmp_path / "path")]) == 0
    # CONFIG mode with a name: the config (here the default network, which the tiny weights
    # do not fit) gives only the frames; the entry gives the network and its size.
    in_config = ["synthetic", "--set", f"data.root={str(data)!r}", "--set", "data.generate=False"]
    by_config = [*in_config, "--checkpoint", "tiny", "--device", "cpu"]
    assert inference.main([*by_config, "--out", str(tmp_path / "config")]) == 0
    names = sorted(path.name for path in (tmp_path / "name" / "mat").iterdir())
    assert len(names) == 3
    for name in names:
        by_name = scipy.io.loadmat(tmp_path / "name" / "mat" / name)["T"]
        assert by_name.shape == (32, 32)
        for other in ("path", "config"):
            assert (by_name == scipy.io.loadmat(tmp_path / other / "mat" / name)["T"]).all()

    at_network = ["--checkpoint", "tiny", "--save-at", "network", "--out", str(tmp_path / "net")]
    assert inference.main([*at_network, *common]) == 0
    for folder, protocol in (("name", "standard"), ("net", "lrrnet")):
        report = tmp_path / f"{protocol}.json"
        scored = [
            "--pred",
            str(tmp_path / folder),
            "--masks",
            str(masks),
            "--protocol",
            protocol,
            "--json",
            str(report),
        ]
        assert cal_from_mask.main(scored) == 0
        metrics = json.loads(report.read_text())
        assert {key: metrics[key] for key in zoo.FIGURE_KEYS} == entry["test"][protocol]


def test_a_name_brings_its_architecture_and_size_and_a_file_path_is_unchanged(use_zoo, tmp_path):
    predictor = Predictor.from_checkpoint("tiny")
    assert predictor.size == SIZE and predictor.model.init_conv.out_channels == 8
    assert Predictor.from_checkpoint("tiny", size="native").size == "native"
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        Predictor.from_checkpoint(str(tmp_path / "tiny"))  # a path, not a name


def test_an_unknown_name_lists_the_available_ones(use_zoo, tmp_path, capsys, script_logging):
    with pytest.raises(CheckpointError, match=r"'nope' .* \(available: tiny\)"):
        Predictor.from_checkpoint("nope")
    images = use_zoo[1] / "test" / "images"
    argv = ["--checkpoint", "nope", "--images", str(images), "--out", str(tmp_path)]
    assert inference.main(argv) == 2
    assert "available: tiny" in capsys.readouterr().err


def test_unknown_and_missing_keys_are_refused_by_name(tiny_zoo, tmp_path):
    entry = dict(tiny_zoo[2])
    del entry["date"]
    entry["notes"] = "x"
    path = tmp_path / "checkpoints" / "zoo.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"tiny": entry}))
    with pytest.raises(CheckpointError, match=r"missing key\(s\) date.*unknown key\(s\) notes"):
        zoo.read_zoo(path)
    with pytest.raises(CheckpointError, match="not written"):
        zoo.write_zoo({"tiny": entry}, path)


def test_best_on_test_is_the_best_row_of_metrics_csv_marked_optimistic(tmp_path):
    header = "iteration,epoch,lr,train_loss,miou,niou,precision,recall,f1,pd,fa,auc,best_iteration"
    rows = [
        "10,1,0.1,1.0,0.4,0.5,0,0,0.6,0.9,0.001,0.9,10",
        "20,2,0.1,1.0,0.3,0.5,0,0,0.6,0.9,0.001,0.9,10",
    ]
    (tmp_path / "metrics.csv").write_text("\n".join([header, *rows]) + "\n")
    cfg = {"data": {"val_split": "test"}, "train": {"select_metric": "miou"}}
    best = zoo_builder.best_on_test(tmp_path, cfg)
    assert best == {
        "epoch": 1,
        "iteration": 10,
        "miou": 0.4,
        "niou": 0.5,
        "f1": 0.6,
        "pd": 0.9,
        "fa": 0.001,
        "optimistic": True,
    }
    assert zoo_builder.best_on_test(tmp_path, {**cfg, "data": {"val_split": "val"}}) is None


def test_transfer_scores_other_datasets_and_shows_the_entry_on_its_own(
    use_zoo, tmp_path, monkeypatch, script_logging
):
    monkeypatch.chdir(tmp_path)  # the dataset configs' relative roots are not here
    other = generate_dataset(
        tmp_path / "other", num_train=2, num_test=2, size=32, seed=5, progress=False
    )
    own = use_zoo[1]
    out = tmp_path / "transfer.md"
    argv = [
        "transfer",
        "--set-root",
        f"nudt={own}",
        "--set-root",
        f"irstd1k={other}",
        "--out",
        str(out),
    ]
    assert load_tool("zoo").main(argv) == 0
    table = out.read_text().splitlines()
    assert "| model | nudt | irstd1k |" in table
    (row,) = [line for line in table if line.startswith("| tiny |")]
    own_cell, other_cell = (cell.strip() for cell in row.strip("|").split("|")[1:])
    standard = use_zoo[2]["test"]["standard"]
    assert own_cell == zoo_builder._cell(standard) + " *"
    assert not other_cell.endswith("*") and other_cell.count("/") == 2
