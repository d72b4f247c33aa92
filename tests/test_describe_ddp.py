"""A few describer training steps under Lightning DDP with two CPU processes (gloo): ranks stay equal."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from tests.test_describe import make_inputs, tiny_config


class SaveRankWeights(L.Callback):
    """Each rank writes its describer weights at the end of training."""

    def __init__(self, folder: str):
        self.folder = folder

    def on_train_end(self, trainer, pl_module) -> None:
        state = {k: v.detach().clone() for k, v in pl_module.model.state_dict().items()}
        torch.save(state, f"{self.folder}/rank{trainer.global_rank}.pt")


@pytest.mark.ddp
def test_two_process_ddp_keeps_ranks_equal(tmp_path):
    from lightning.pytorch.strategies import DDPStrategy

    from tamms.models.describer import Describer
    from tamms.models.language import train_tokenizer
    from tamms.tasks.describe import DescribeDataset, DescribeTask, DescribeTrainConfig, collate_describe
    from tests.test_describe import CAPTIONS

    torch.manual_seed(0)
    tokenizer = train_tokenizer(CAPTIONS * 3 + ["Dates: 2010-01-01. Scene: a farm."], vocab_size=300, min_frequency=1)
    model = Describer(tiny_config(), tokenizer)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = DescribeTrainConfig(batch_size=2, max_steps=3, lr=3e-3, warmup_steps=1, devices=2, strategy="ddp_spawn")
    # different items (and random caption / frame choices) per rank: only gradient averaging keeps them equal
    data = DescribeDataset(make_inputs((2, 3, 4, 5, 3, 2, 4, 5)), scene_prob=0.2, frame_drop=0.5)
    loader = DataLoader(data, batch_size=2, shuffle=True, collate_fn=collate_describe)
    trainer = L.Trainer(
        accelerator="cpu", devices=2, max_steps=3, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
        strategy=DDPStrategy(start_method="spawn", find_unused_parameters=True, process_group_backend="gloo"),
        callbacks=[SaveRankWeights(str(tmp_path))],
    )
    trainer.fit(DescribeTask(model, cfg), loader)
    rank0 = torch.load(tmp_path / "rank0.pt")
    rank1 = torch.load(tmp_path / "rank1.pt")
    assert rank0.keys() == rank1.keys()
    for k in rank0:
        assert torch.allclose(rank0[k], rank1[k], atol=1e-6), k
    moved = [k for k in rank0 if not torch.equal(rank0[k], initial[k])]
    assert len(moved) > 10  # training did update the weights
