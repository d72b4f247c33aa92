"""`SitsDataModule`: train/val/test loaders over a folder of sequences, a LEVIR-CD folder, or the
synthetic world generated in memory. Splits are by sequence (`sequence_split`), never by frame.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from tamms.data.datasets import (
    SPLITS,
    SitsPairDataset,
    SitsWindowDataset,
    collate_sits,
    pair_split,
    sequence_split,
)
from tamms.data.readers import ChangePair, is_levir_cd, read_levir_cd, read_sequences
from tamms.data.sequence import Scaling, SitsSequence
from tamms.errors import ConfigError, EmptyInputError


class EpochSampler(Sampler[int]):
    """A seeded shuffle whose `set_epoch` (called by Lightning each epoch) also re-seeds the dataset's
    crops and flips, so every epoch sees new draws and a run is reproducible."""

    def __init__(self, dataset: Dataset, seed: int = 0) -> None:
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(len(self), generator=g).tolist())


class SitsDataModule(L.LightningDataModule):
    """Loaders of windows (`task="window"`, for describing/forecasting) or pairs (`task="pair"`, for
    change detection).

    Data: `root` (a folder of sequence folders, one sequence folder, or a LEVIR-CD folder), or
    `sequences` already in memory, or, with neither, the synthetic world (`n`, `size`, `frames`, `seed`).
    `split_mode="hash"` splits by sequence; `"all"` uses every sequence for every stage (for a
    single real sequence; say so when reporting, since it is not a held-out evaluation).
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        sequences: Sequence[SitsSequence] | None = None,
        task: Literal["window", "pair"] = "window",
        n: int = 200,
        size: int = 64,
        frames: int = 4,
        seed: int = 0,
        history: int | None = 3,
        target: Literal["next", "future", "none"] = "next",
        min_history: int = 2,
        pair_mode: Literal["consecutive", "first_last", "all"] = "consecutive",
        crop_size: int | None = None,
        flip: bool = True,
        rgb_only: bool = False,
        bands: Sequence[int | str] | None = None,
        scaling: str | float | Scaling = "auto",
        batch_size: int = 8,
        num_workers: int = 0,
        split_mode: Literal["hash", "all"] = "hash",
    ) -> None:
        super().__init__()
        if task not in ("window", "pair"):
            raise ConfigError(f"task {task!r} is not 'window' or 'pair'")
        if split_mode not in ("hash", "all"):
            raise ConfigError(f"split_mode {split_mode!r} is not 'hash' or 'all'")
        self.save_hyperparameters(ignore=["sequences"])
        self.root = None if root is None else Path(root)
        self._given = None if sequences is None else list(sequences)
        self.sequences: list[SitsSequence] = []
        self.pairs: list[ChangePair] = []
        self.datasets: dict[str, Dataset] = {}

    # -- loading --------------------------------------------------------------------------------
    def _load(self) -> None:
        hp = self.hparams
        if self.sequences or self.pairs:
            return
        if self._given is not None:
            self.sequences = self._given
        elif self.root is not None:
            if is_levir_cd(self.root) or any(is_levir_cd(self.root / s) for s in SPLITS):
                if hp.task != "pair":
                    raise ConfigError(f"{self.root} is a LEVIR-CD folder (pairs, no dates): use task='pair'")
                self.pairs = read_levir_cd(self.root)
            else:
                self.sequences = read_sequences(self.root, bands=hp.bands, scaling=hp.scaling)
        else:
            from tamms.data.synthetic import SyntheticWorldConfig, generate_world

            self.sequences = generate_world(hp.n, SyntheticWorldConfig(size=hp.size, frames=hp.frames), seed=hp.seed)
        if not self.sequences and not self.pairs:
            raise EmptyInputError("the data module found no sequences: check root (or give sequences / n > 0)")

    def _split_items(self, split: str) -> tuple[list[SitsSequence], list[ChangePair]]:
        if self.hparams.split_mode == "all":
            return list(self.sequences), list(self.pairs)
        return ([s for s in self.sequences if sequence_split(s) == split],
                [p for p in self.pairs if pair_split(p) == split])

    def _dataset(self, split: str) -> Dataset:
        hp = self.hparams
        seqs, pairs = self._split_items(split)
        if not seqs and not pairs:
            total = len(self.sequences) + len(self.pairs)
            raise EmptyInputError(
                f"the {split!r} split is empty ({total} sequences/pairs in all, split by sequence): add more "
                "sequences, or use split_mode='all' to use every sequence in every stage"
            )
        train = split == "train"
        if hp.task == "pair":
            return SitsPairDataset(seqs, pairs, mode=hp.pair_mode, future=hp.target == "future",
                                   crop_size=hp.crop_size, random_crop=train, flip=hp.flip and train,
                                   rgb_only=True, seed=hp.seed)
        return SitsWindowDataset(seqs, history=hp.history, target=hp.target, min_history=hp.min_history,
                                 crop_size=hp.crop_size, random_crop=train, flip=hp.flip and train,
                                 rgb_only=hp.rgb_only, seed=hp.seed)

    def setup(self, stage: str | None = None) -> None:
        self._load()
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for split in wanted.get(stage, SPLITS) if stage else SPLITS:
            if split not in self.datasets:
                try:
                    self.datasets[split] = self._dataset(split)
                except EmptyInputError:
                    if split == "train" or stage is not None:
                        raise
                    warnings.warn(f"split {split!r} is empty", stacklevel=2)

    # -- loaders --------------------------------------------------------------------------------
    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            self.setup({"train": "fit", "val": "validate", "test": "test"}[split])
        ds = self.datasets[split]
        sampler = EpochSampler(ds, seed=self.hparams.seed) if shuffle else None
        return DataLoader(ds, batch_size=self.hparams.batch_size, sampler=sampler, shuffle=False,
                          num_workers=self.hparams.num_workers, collate_fn=collate_sits)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def split_sizes(self) -> dict[str, int]:
        """Sequences (or pairs) per split, for logs and reports."""
        self._load()
        return {s: sum(len(x) for x in self._split_items(s)) for s in SPLITS}

    def describe(self) -> dict[str, Any]:
        return {"splits": self.split_sizes(), "task": self.hparams.task, "history": self.hparams.history,
                "target": self.hparams.target}
