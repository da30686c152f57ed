"""Shared test settings."""

import importlib.util
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

# One BLAS thread: the suite runs on 2-core machines where oversubscribed BLAS threads in
# the IPI baseline's SVDs slow everything down many times over.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# One intra-op thread for torch too (set before torch loads; inherited by the scripts the
# tests run): the tests' tensors are tiny, and on a busy 2-core machine two OpenMP threads
# wait on each other and make a test several times slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402


@pytest.fixture
def interrupted_train(monkeypatch):
    """``interrupted_train(cfg, step)`` trains ``cfg`` and stops it as a Ctrl-C would, when
    the step that starts at iteration ``step`` asks for its learning rate."""
    from lrrnet.engine import trainer

    def run(cfg, step: int) -> None:
        real_lr_at = trainer.lr_at

        def stop_at_step(train_cfg, iteration, iters_per_epoch):
            if iteration == step:
                raise KeyboardInterrupt
            return real_lr_at(train_cfg, iteration, iters_per_epoch)

        with monkeypatch.context() as patch:
            patch.setattr(trainer, "lr_at", stop_at_step)
            with pytest.raises(KeyboardInterrupt):
                trainer.train(cfg)

    return run


@pytest.fixture
def tiny_synthetic_run(tmp_path):
    """A 4 + 3-frame 32×32 synthetic dataset and an empty run folder of the config "tiny".

    Returns ``(run_dir, args)``: the folder a test puts its ``best.pth`` in, and the
    ``--set`` arguments that point the ``synthetic`` config at both with the tiny network
    (results under ``tmp_path/results``).
    """
    from lrrnet.data.synthetic import generate_dataset

    data = generate_dataset(
        tmp_path / "data", num_train=4, num_test=3, size=32, seed=1, progress=False
    )
    run_dir = tmp_path / "ckpt" / "tiny" / "20260101-000000"
    run_dir.mkdir(parents=True)
    sets = [
        "name='tiny'",
        f"data.root='{data}'",
        f"paths.checkpoints='{tmp_path / 'ckpt'}'",
        f"paths.results='{tmp_path / 'results'}'",
        "model.base_channels=8",
        "model.num_groups=4",
        "model.channel_mults=(1, 2)",
        "model.num_res_blocks=1",
        "data.synthetic={'num_train': 4, 'num_test': 3, 'size': 32}",  # as generated above
    ]
    return run_dir, [x for item in sets for x in ("--set", item)]


@pytest.fixture
def script_logging():
    """For a test that runs a script's ``main`` in this process: its ``cli.setup_logging``
    gives the root logger a handler bound to this test's captured stderr. Take it off
    afterwards, with the levels it set, so that later tests do not log into a closed stream.
    """
    root, package = logging.getLogger(), logging.getLogger("lrrnet")
    levels = root.level, package.level
    yield
    for handler in [h for h in root.handlers if type(h) is logging.StreamHandler]:
        root.removeHandler(handler)  # pytest's own handlers are subclasses
    root.setLevel(levels[0])
    package.setLevel(levels[1])


def load_tool(name: str) -> ModuleType:
    """``tools/<name>.py`` imported from its path, for a test that calls its ``main``:
    tools/ is a folder of scripts, not a package on sys.path."""
    path = Path(__file__).resolve().parents[1] / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"tools_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_visualize(*args, cwd=None):
    """``tools/visualize.py ARGS`` in a child process (from the project root by default)."""
    root = Path(__file__).resolve().parents[1]
    return subprocess.run(
        [sys.executable, str(root / "tools" / "visualize.py"), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd or root,
        timeout=120,
    )
