"""Shared test settings."""

import os

# One BLAS thread: the suite runs on 2-core machines where oversubscribed BLAS threads in
# the IPI baseline's SVDs slow everything down many times over.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# One intra-op thread for torch too (set before torch loads; inherited by the scripts the
# tests run): the tests' tensors are tiny, and on a busy 2-core machine two OpenMP threads
# wait on each other. Measured: scoring 40 SIRST v1 frames with a tiny network took 15.5 s
# with 2 threads and 2.4 s with 1, at a load average of 9.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402


@pytest.fixture
def interrupted_train(monkeypatch):
    """``interrupted_train(cfg, step)`` trains ``cfg`` and stops it as a Ctrl-C would, when
    the step that starts at iteration ``step`` asks for its learning rate."""
    from lrrnet.engine import trainer

    def run(cfg, step: int) -> None:
        real_lr_at = trainer.lr_at

        def stop_at_step(iteration, *args):
            if iteration == step:
                raise KeyboardInterrupt
            return real_lr_at(iteration, *args)

        with monkeypatch.context() as patch:
            patch.setattr(trainer, "lr_at", stop_at_step)
            with pytest.raises(KeyboardInterrupt):
                trainer.train(cfg)

    return run
