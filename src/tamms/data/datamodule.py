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
    append_future,
    collate_sits,
    pair_split,
    sequence_split,
)
from tamms.data.readers import ChangePair, read_dataset
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


class StepSampler(Sampler[int]):
    """Training order as a function of the optimiser step: the indices for steps `start_step` ..
    `total_steps - 1` (x `batch_size`, x the number of processes under DDP), from seeded permutations.

    Position p of the whole run reads pass `p // n` of a permutation seeded by (seed, pass); past the first
    pass it yields `index + pass * n`, which the datasets read as another draw (new crop) of `index`. A run
    resumed at step s builds its loader with `start_step=s` and so sees exactly the batches an uninterrupted
    run sees from step s on."""

    def __init__(self, dataset: Dataset, seed: int, batch_size: int, total_steps: int, start_step: int = 0,
                 world_size: int = 1) -> None:
        self.dataset, self.seed = dataset, seed
        self.per_step, self.world_size = batch_size * world_size, world_size
        self.start, self.stop = start_step * self.per_step, max(start_step, total_steps) * self.per_step

    def __len__(self) -> int:
        # the whole run's length, also when resumed: Lightning restores the epoch's batch count (start_step) and
        # ends the epoch when it reaches len(loader), so a shorter length would restart the order mid-run.
        # Under DDP Lightning's DistributedSamplerWrapper materialises the yielded indices and needs the length
        # to match them, so there a resumed run counts its epoch again (same data, not bit-exact).
        return self.stop if self.world_size == 1 else self.stop - self.start

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)  # type: ignore[arg-type]
        cache: dict[int, torch.Tensor] = {}
        for position in range(self.start, self.stop):
            pass_, offset = divmod(position, n)
            if pass_ not in cache:
                cache.clear()
                g = torch.Generator().manual_seed(self.seed * 100_003 + pass_)
                cache[pass_] = torch.randperm(n, generator=g)
            yield int(cache[pass_][offset]) + pass_ * n


class SitsDataModule(L.LightningDataModule):
    """Loaders of windows (`task="window"`, for describing/forecasting) or pairs (`task="pair"`, for
    change detection).

    Data: `root` (a folder of sequence folders, one sequence folder, or a LEVIR-CD folder), or
    `sequences` already in memory, or, with neither, the synthetic world (`n`, `size`, `frames`, `seed`).
    `split_mode="hash"` splits by sequence; `"all"` uses every sequence for every stage (for a
    single real sequence; say so when reporting, since it is not a held-out evaluation).
    `real_repeats`: each real training pair and real series appears this many times per pass (a new random
    crop each time), so a few real items are not lost among many synthetic ones.
    `pair_splits` = {real folder name: {"val": [pair names], "test": [pair names]}} fixes the split of that
    folder's pairs (every pair it does not name trains), instead of their recorded split or name hash.
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
        real: Sequence[str | os.PathLike] = (),
        world: dict[str, Any] | None = None,
        rotate: bool = False,
        swap_dates: bool = False,
        val_batch_size: int | None = None,
        include_future: bool = False,
        real_repeats: int = 1,
        pair_splits: dict[str, dict[str, Sequence[str]]] | None = None,
    ) -> None:
        super().__init__()
        if task not in ("window", "pair"):
            raise ConfigError(f"task {task!r} is not 'window' or 'pair'")
        if split_mode not in ("hash", "all"):
            raise ConfigError(f"split_mode {split_mode!r} is not 'hash' or 'all'")
        self.save_hyperparameters(ignore=["sequences"])
        self.total_steps: int | None = None  # set by tamms.tasks.base.fit: training order by step (exact resume)
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
            contents = read_dataset(self.root, bands=hp.bands,
                                    scaling=None if hp.scaling == "auto" else hp.scaling)
            if contents.pairs and not contents.sequences and hp.task != "pair":
                raise ConfigError(f"{self.root} holds change pairs ({contents.layout}), not dated sequences: use "
                                  "task='pair'")
            self.sequences, self.pairs = list(contents.sequences), list(contents.pairs)
        elif hp.n:
            from tamms.data.synthetic import SyntheticWorldConfig, generate_world

            world = SyntheticWorldConfig(size=hp.size, frames=hp.frames, **dict(hp.world or {}))
            self.sequences = generate_world(hp.n, world, seed=hp.seed)
        for folder in hp.real:
            self._load_real(Path(folder))
        if not self.sequences and not self.pairs:
            raise EmptyInputError("the data module found no sequences: check root (or give sequences / n > 0)")

    def _load_real(self, folder: Path) -> None:
        """Real sequences or pairs from a folder; a series is held out by its LAST frame (the earlier frames
        train, the window predicting the last frame is its test), pairs by `pair_split`."""
        if not folder.exists():
            warnings.warn(f"real data folder {folder} not found: skipped", stacklevel=3)
            return
        # one entry point: sequence folders, LEVIR-CD style pairs, OSCD, or a folder of these
        contents = read_dataset(folder, bands=self.hparams.bands)
        fixed = (self.hparams.pair_splits or {}).get(folder.name)
        named = {name: split for split, names in (fixed or {}).items() for name in names}
        for pair in contents.pairs:
            pair.meta.setdefault("dataset", folder.name)  # which labels the masks hold (e.g. LEVIR: buildings)
            if fixed is not None:  # an explicit hold-out list for this folder
                pair.split = named.get(pair.name, "train")
                pair.meta["split"] = pair.split
            self.pairs.append(pair)
        unknown = sorted(set(named) - {p.name for p in contents.pairs})
        if unknown:
            raise ConfigError(f"pair_splits names {unknown} that {folder} does not hold: use its pair names "
                              f"(e.g. {[p.name for p in contents.pairs][:3]})")
        for seq in contents.sequences:
            seq.meta["hold_out_last"] = True
            self.sequences.append(seq)

    def _split_items(self, split: str) -> tuple[list[SitsSequence], list[ChangePair]]:
        if self.hparams.split_mode == "all":
            return list(self.sequences), list(self.pairs)
        seqs = []
        for seq in self.sequences:
            if seq.meta.get("hold_out_last"):  # real series: history frames train, the last frame tests
                if split == "train" and seq.num_frames > 2:
                    # a few real series among many synthetic ones: each trains `real_repeats` times per pass
                    seqs.extend([seq.select(range(seq.num_frames - 1))] * max(1, self.hparams.real_repeats))
                elif split == "test":
                    seqs.append(seq)
            elif sequence_split(seq) == split:
                # training may also learn the future frame (held out only in the val/test splits)
                seqs.append(append_future(seq) if split == "train" and self.hparams.include_future else seq)
        return seqs, [p for p in self.pairs if pair_split(p) == split]

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
                                   rgb_only=True, seed=hp.seed, rotate=hp.rotate and train,
                                   swap_dates=hp.swap_dates and train,
                                   pair_repeats=hp.real_repeats if train else 1)
        return SitsWindowDataset(seqs, history=hp.history, target=hp.target, min_history=hp.min_history,
                                 crop_size=hp.crop_size, random_crop=train, flip=hp.flip and train,
                                 rgb_only=hp.rgb_only, seed=hp.seed, rotate=hp.rotate and train)

    def setup(self, stage: str | None = None) -> None:
        self._load()
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for split in wanted.get(stage, SPLITS) if stage else SPLITS:
            if split not in self.datasets:
                try:
                    self.datasets[split] = self._dataset(split)
                except EmptyInputError:
                    # training needs its train split; an empty val split only means no validation
                    if split == "train" or (stage is not None and stage != "fit"):
                        raise
                    warnings.warn(f"split {split!r} is empty", stacklevel=2)

    # -- loaders --------------------------------------------------------------------------------
    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            self.setup({"train": "fit", "val": "validate", "test": "test"}[split])
        ds = self.datasets[split]
        batch_size = self.hparams.batch_size if shuffle else (self.hparams.val_batch_size or self.hparams.batch_size)
        sampler: Sampler[int] | None = None
        if shuffle and self.total_steps is not None:  # training: the order is a function of the step
            trainer = getattr(self, "trainer", None)
            sampler = StepSampler(ds, self.hparams.seed, batch_size, self.total_steps,
                                  start_step=trainer.global_step if trainer is not None else 0,
                                  world_size=trainer.world_size if trainer is not None else 1)
        elif shuffle:
            sampler = EpochSampler(ds, seed=self.hparams.seed)
        # its own generator: making an iterator then draws no number from the global RNG (exact --resume)
        generator = torch.Generator().manual_seed(self.hparams.seed)
        return DataLoader(ds, batch_size=batch_size, sampler=sampler, shuffle=False, drop_last=isinstance(sampler, StepSampler),
                          num_workers=self.hparams.num_workers, collate_fn=collate_sits,
                          generator=generator)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        if "val" not in self.datasets and "train" in self.datasets:
            return []  # an empty val split: no validation
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    @classmethod
    def from_config(cls, config: Any, task: Literal["window", "pair"] = "window", **overrides: Any) -> "SitsDataModule":
        """The data module a training config's `data` section (`tamms.config.DataConfig`) describes."""
        syn = config.synthetic
        kwargs: dict[str, Any] = dict(
            task=task, n=syn.n if syn else 0, size=syn.size if syn else 64, frames=syn.frames if syn else 4,
            seed=syn.seed if syn else 0, world=dict(syn.world) if syn else None, real=list(config.real),
            history=config.history, target=config.target, min_history=config.min_history,
            pair_mode=config.pair_mode, crop_size=config.crop_size, flip=config.rotate, rotate=config.rotate,
            bands=config.bands, batch_size=config.batch_size, val_batch_size=config.val_batch_size,
            num_workers=config.num_workers, include_future=config.include_future,
            real_repeats=config.real_repeats,
        )
        kwargs.update(overrides)
        return cls(**kwargs)

    def split_sizes(self) -> dict[str, int]:
        """Sequences (or pairs) per split, for logs and reports."""
        self._load()
        return {s: sum(len(x) for x in self._split_items(s)) for s in SPLITS}

    def describe(self) -> dict[str, Any]:
        return {"splits": self.split_sizes(), "task": self.hparams.task, "history": self.hparams.history,
                "target": self.hparams.target}
