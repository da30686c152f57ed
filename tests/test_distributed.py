"""Device choice per process: under DDP every rank has its own GPU."""

import pytest
import torch

from lrrnet.engine import distributed


@pytest.fixture
def fake_cuda(monkeypatch):
    """CUDA 'present' without a GPU: torch.device objects need no driver."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda backend: None)
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)


@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3", "auto"])
def test_every_ddp_rank_uses_its_local_rank_gpu(fake_cuda, monkeypatch, name):
    for local_rank in (0, 1):
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("RANK", str(local_rank))
        monkeypatch.setenv("LOCAL_RANK", str(local_rank))
        process = distributed.init_distributed(name)
        assert process.device == torch.device(f"cuda:{local_rank}")
        assert process.is_distributed and process.is_main == (local_rank == 0)


def test_single_process_keeps_the_named_gpu(fake_cuda):
    assert not distributed.init_distributed("cuda").is_distributed
    assert distributed.resolve_device("cuda:3") == torch.device("cuda:3")
    assert distributed.resolve_device("cuda", local_rank=2) == torch.device("cuda:2")
