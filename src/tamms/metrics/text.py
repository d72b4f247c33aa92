"""Caption metrics, exactly as the COCO caption evaluation (pycocoevalcap 1.2) computes them, but fast.

- BLEU-1..4: corpus level, pycocoevalcap `BleuScorer` with the "closest" reference length (ties go to
  the shorter reference), `tiny = 1e-15` / `small = 1e-9` smoothing constants and the brevity penalty
  on the summed lengths.
- ROUGE-L: LCS-based F-measure with beta = 1.2, for each candidate the max precision and max recall
  over its references (pycocoevalcap `Rouge.calc_score`), then the mean over captions. The LCS length
  is computed bit-parallel (Hyyro 2004), which gives the same integer as the dynamic programme.
- CIDEr-D: pycocoevalcap `CiderScorer`: n = 1..4, TF-IDF with document frequencies from the evaluated
  references, `log(float(len(refs)))`, clipping `min(hyp, ref) * ref`, Gaussian length penalty with
  sigma = 6 (on the bigram count, as the reference code does), mean over n, divided by the number of
  references, x10, mean over captions.
- METEOR 1.5: the jar shipped with pycocoevalcap, driven the same way (`-stdio -l en -norm`,
  SCORE lines then one EVAL line); None with the reason when Java or the package is missing.

All on the COCO tokenisation (`tamms.metrics._coco_tokenize`). Floating-point operations are done in
the reference's order, so values are identical, not just close (`benchmarks/metrics_speed.py` checks).
`caption_scores` computes BLEU and CIDEr-D with the vectorised `_caption_numpy` (same operations, same
order); the dict functions here are its fallback and are tested to give the same bits.
Scores are fractions (not x100).
"""

from __future__ import annotations

import math
import os
import select
import subprocess
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import reduce
from itertools import repeat
from operator import add
from typing import Any

import numpy as np
from torchmetrics import Metric

try:  # the C helper behind Counter.update (pure-Python fallback on other interpreters)
    from _collections import _count_elements
except ImportError:  # pragma: no cover
    from collections import _count_elements  # type: ignore[attr-defined]

from tamms.metrics._coco_tokenize import coco_jar_dir, coco_tokenize

METEOR_UNAVAILABLE = "unavailable: needs java and pycocoevalcap (pip install tamms[coco])"
CAPTION_KEYS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D", "mean_length", "length_gap")


# ----------------------------------------------------------------------------------------------- n-grams
def _ngram_counts(words: list[str], n: int = 4) -> list[dict[str, int]]:
    """Per k = 1..n the n-gram counts, each in first-seen (position) order, as the reference's dict
    iterates them (its float sums follow that order). An n-gram is its words joined by one space (tokens
    hold no spaces, so this is one-to-one with the reference's tuples; strings cache their hash, tuples
    do not, which makes the many dict look-ups below cheaper). Counted in C (`_count_elements`)."""
    if n == 4:  # the common case, spelled out
        grams = (words, map(" ".join, zip(words, words[1:])), map(" ".join, zip(words, words[1:], words[2:])),
                 map(" ".join, zip(words, words[1:], words[2:], words[3:])))
    else:
        grams = tuple(map(" ".join, zip(*[words[i:] for i in range(k)])) for k in range(1, n + 1))
    out = []
    for it in grams:
        counts: dict[str, int] = {}
        _count_elements(counts, it)
        out.append(counts)
    return out


def _sequential_sum(values) -> float:
    """((0.0 + v0) + v1) + ...: the reference's `+=` loop (not pairwise, not compensated), in C."""
    return reduce(add, values, 0.0)


def _counts_cache(n: int):
    """n-gram counts per distinct sentence (captions repeat a lot: "there is no change")."""
    cache: dict[str, list[dict[str, int]]] = {}

    def counts_of(sentence: str) -> list[dict[str, int]]:
        counts = cache.get(sentence)
        if counts is None:
            counts = cache[sentence] = _ngram_counts(sentence.split(), n)
        return counts

    return counts_of


# -------------------------------------------------------------------------------------------------- BLEU
def bleu_tokenized(candidates: Sequence[str], references: Sequence[Sequence[str]], n: int = 4,
                   counts_of=None) -> list[float]:
    """Corpus BLEU-1..n of tokenised captions (pycocoevalcap `Bleu(4)`, option "closest").
    counts_of: a shared `_counts_cache(n)` (so BLEU and CIDEr-D count each sentence once)."""
    tiny, small = 1e-15, 1e-9
    total_guess = [0] * n
    total_correct = [0] * n
    total_test = 0
    total_ref = 0
    counts_of = counts_of or _counts_cache(n)
    cooked: dict[tuple, tuple] = {}  # distinct reference sets (repeated a lot) -> (lengths, max counts)
    for cand, refs in zip(candidates, references):
        key = tuple(refs)
        if key not in cooked:
            max_counts: list[dict[str, int]] = [{} for _ in range(n)]
            for ref in refs:
                for k, ref_counts in enumerate(counts_of(ref)):
                    best = max_counts[k]
                    for gram, count in ref_counts.items():
                        if count > best.get(gram, 0):
                            best[gram] = count
            cooked[key] = ([len(ref.split()) for ref in refs], max_counts)
        ref_lengths, max_counts = cooked[key]
        test_len = len(cand.split())
        total_test += test_len
        total_ref += min((abs(length - test_len), length) for length in ref_lengths)[1]
        for k in range(n):
            total_guess[k] += max(0, test_len - k)
        for k, cand_counts in enumerate(counts_of(cand)):
            get = max_counts[k].get
            total_correct[k] += sum([min(get(gram, 0), count) for gram, count in cand_counts.items()])
    scores = []
    bleu = 1.0
    for k in range(n):
        bleu *= float(total_correct[k] + tiny) / (total_guess[k] + small)
        scores.append(bleu ** (1.0 / (k + 1)))
    ratio = (total_test + tiny) / (total_ref + small)
    if ratio < 1:
        scores = [s * math.exp(1 - 1 / ratio) for s in scores]
    return scores


# ---------------------------------------------------------------------------------------------- ROUGE-L
def _lcs_length(masks: dict[str, int], full: int, length: int, other: list[str]) -> int:
    """LCS length of a sequence (given as per-token position bitmasks) and `other`, bit-parallel."""
    v = full
    for token in other:
        u = v & masks.get(token, 0)
        v = ((v + u) | (v - u)) & full
    return length - v.bit_count()


def _position_masks(tokens: list[str]) -> dict[str, int]:
    masks: dict[str, int] = {}
    for i, token in enumerate(tokens):
        masks[token] = masks.get(token, 0) | (1 << i)
    return masks


def rouge_l_per_caption(candidates: Sequence[str], references: Sequence[Sequence[str]], beta: float = 1.2) -> np.ndarray:
    """ROUGE-L of each tokenised candidate (pycocoevalcap `Rouge.calc_score`; tokens = split(" "))."""
    scores = []
    lcs_cache: dict[tuple[str, str], int] = {}  # (candidate, reference) pairs repeat
    ref_tokens: dict[str, list[str]] = {}
    for cand, refs in zip(candidates, references):
        token_c = cand.split(" ")
        masks_c, full_c = _position_masks(token_c), (1 << len(token_c)) - 1
        prec, rec = [], []
        for ref in refs:
            token_r = ref_tokens.get(ref)
            if token_r is None:
                token_r = ref_tokens[ref] = ref.split(" ")
            lcs = lcs_cache.get((cand, ref))
            if lcs is None:
                lcs = lcs_cache[(cand, ref)] = _lcs_length(masks_c, full_c, len(token_c), token_r)
            prec.append(lcs / float(len(token_c)))
            rec.append(lcs / float(len(token_r)))
        prec_max, rec_max = max(prec), max(rec)
        if prec_max != 0 and rec_max != 0:
            scores.append(((1 + beta**2) * prec_max * rec_max) / float(rec_max + beta**2 * prec_max))
        else:
            scores.append(0.0)
    return np.array(scores)


def rouge_l_tokenized(candidates: Sequence[str], references: Sequence[Sequence[str]], beta: float = 1.2) -> float:
    return float(np.mean(rouge_l_per_caption(candidates, references, beta)))


# ---------------------------------------------------------------------------------------------- CIDEr-D
def cider_d_per_caption(candidates: Sequence[str], references: Sequence[Sequence[str]], n: int = 4,
                        sigma: float = 6.0, counts_of=None) -> np.ndarray:
    """CIDEr-D of each tokenised candidate, document frequencies from these references (pycocoevalcap).

    Same float operations in the same order as `CiderScorer.compute_cider`; faster by caching the TF-IDF
    vector of every distinct sentence and the similarity of every distinct (candidate, reference) pair."""
    counts_of = counts_of or _counts_cache(n)
    doc_freq: Counter = Counter()  # in how many images' reference sets each n-gram occurs
    for refs in references:
        doc_freq.update(set().union(*[c.keys() for ref in refs for c in counts_of(ref)]))
    ref_len = float(np.log(float(len(references))))
    log_of = {df: float(np.log(max(1.0, df))) for df in set(doc_freq.values())}
    idf = {gram: ref_len - log_of[df] for gram, df in doc_freq.items()}
    idf_unseen = ref_len - float(np.log(1.0))
    vectors: dict[str, tuple] = {}

    def to_vec(sentence: str):
        """Per k: TF-IDF dict (position order), its norm, and the bigram count the reference calls length."""
        if sentence in vectors:
            return vectors[sentence]
        vec, norm = [], []
        get_idf = idf.get
        for counts in counts_of(sentence):
            values = dict(zip(counts.keys(), [float(tf) * get_idf(g, idf_unseen) for g, tf in counts.items()]))
            vec.append(values)
            norm.append(math.sqrt(_sequential_sum(map(pow, values.values(), repeat(2)))))
        vectors[sentence] = result = (vec, norm, sum(counts_of(sentence)[1].values()) if n > 1 else 0)
        return result

    penalty_denominator = 2 * sigma**2
    penalties: dict[float, float] = {}
    pair_cache: dict[tuple[str, str], list[float]] = {}
    scores = []
    for cand, refs in zip(candidates, references):
        vec, norm, length = to_vec(cand)
        score = [0.0] * n
        for ref in refs:
            sim = pair_cache.get((cand, ref))
            if sim is None:
                vec_ref, norm_ref, length_ref = to_vec(ref)
                delta = float(length - length_ref)
                if delta not in penalties:
                    penalties[delta] = math.e ** (-(delta**2) / penalty_denominator)
                penalty = penalties[delta]
                sim = []
                for k in range(n):
                    get_ref = vec_ref[k].get
                    # n-grams absent from the reference add min(h, 0) * 0 = 0.0 exactly: skip them
                    val = _sequential_sum([min(h, r) * r for g, h in vec[k].items() if (r := get_ref(g))])
                    if norm[k] != 0 and norm_ref[k] != 0:
                        val /= norm[k] * norm_ref[k]
                    sim.append(val * penalty)
                pair_cache[(cand, ref)] = sim
            for k in range(n):
                score[k] += sim[k]
        score_avg = np.mean(np.array(score))  # numpy's summation order, as the reference
        score_avg /= len(refs)
        score_avg *= 10.0
        scores.append(score_avg)
    return np.array(scores)


def cider_d_tokenized(candidates: Sequence[str], references: Sequence[Sequence[str]], n: int = 4,
                      sigma: float = 6.0, counts_of=None) -> float:
    return float(np.mean(cider_d_per_caption(candidates, references, n, sigma, counts_of)))


# ----------------------------------------------------------------------------------------------- METEOR
class MeteorJar:
    """The METEOR 1.5 jar of pycocoevalcap as a subprocess, closed on exit (use as a context manager).

    Protocol as pycocoevalcap's `Meteor.compute_score`: one `SCORE ||| refs ||| hyp` line per caption
    returning its statistics, then one `EVAL ||| stats ||| ...` line returning the per-caption scores
    and the corpus score. Newlines and `|||` are removed from the texts (they would break the protocol);
    every read has a timeout so a broken jar raises instead of hanging."""

    def __init__(self, timeout: float = 600.0):
        root = coco_jar_dir()
        if root is None:
            raise RuntimeError(METEOR_UNAVAILABLE)
        self.timeout = timeout  # generous: the jar needs ~10 CPU seconds to load its paraphrase table
        self._proc = subprocess.Popen(
            ["java", "-jar", "-Xmx2G", "meteor-1.5.jar", "-", "-", "-stdio", "-l", "en", "-norm"],
            cwd=str(root / "meteor"), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        self._buffer = b""

    def _readline(self) -> str:
        """One line of the jar's answer; reads the pipe directly (select + os.read) so a silent jar
        raises after `timeout` seconds instead of blocking forever."""
        fd = self._proc.stdout.fileno()  # type: ignore[union-attr]
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise RuntimeError(f"the METEOR jar did not answer within {self.timeout} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError("the METEOR jar exited unexpectedly")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode().strip()

    def _write(self, line: str) -> None:
        self._proc.stdin.write((line + "\n").encode())  # type: ignore[union-attr]
        self._proc.stdin.flush()  # type: ignore[union-attr]

    @staticmethod
    def _clean(text: str) -> str:
        return " ".join(text.replace("\n", " ").replace("|||", "").split(" ")).replace("  ", " ")

    def score(self, candidates: Sequence[str], references: Sequence[Sequence[str]]) -> tuple[float, list[float]]:
        """Corpus METEOR and per-caption scores of tokenised captions."""
        if not candidates:
            return 0.0, []
        stats = []
        for cand, refs in zip(candidates, references):
            hyp = cand.replace("|||", "").replace("  ", " ")
            self._write(" ||| ".join(("SCORE", " ||| ".join(self._clean(r) for r in refs), self._clean(hyp))))
            stats.append(self._readline())
        self._write("EVAL ||| " + " ||| ".join(stats))
        per_caption = [float(self._readline()) for _ in stats]
        return float(self._readline()), per_caption

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._proc.stdin.close()  # type: ignore[union-attr]
                self._proc.wait(timeout=10)
            except (subprocess.TimeoutExpired, OSError):
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> "MeteorJar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - safety net
        try:
            self.close()
        except Exception:
            pass


def meteor_available() -> bool:
    return coco_jar_dir() is not None


# ------------------------------------------------------------------------------------------- public API
def _check_inputs(candidates: Mapping, references: Mapping) -> list:
    from tamms.errors import EmptyInputError, InputError

    if not references:
        raise EmptyInputError("no references to evaluate against: give at least one id with reference captions")
    missing = [k for k in references if k not in candidates]
    extra = [k for k in candidates if k not in references]
    if missing or extra:
        raise InputError(
            f"candidate and reference ids differ: missing candidates for {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, no references for {extra[:5]}{' ...' if len(extra) > 5 else ''}; "
            "give one candidate for every id of the references"
        )
    for key, refs in references.items():
        if isinstance(refs, str) or len(refs) == 0:
            raise InputError(f"references of {key!r} must be a non-empty list of strings")
        if not isinstance(candidates[key], str):
            raise InputError(f"candidate of {key!r} must be one string, got {type(candidates[key]).__name__}")
    return list(references.keys())  # the reference's iteration order (it matters for float sums)


def tokenize_captions(candidates: Mapping, references: Mapping, use_java: bool | None = None):
    """(ids, tokenised candidates, tokenised references, tokenizer info)."""
    ids = _check_inputs(candidates, references)
    flat = [candidates[k] for k in ids]
    counts = [len(references[k]) for k in ids]
    flat += [r for k in ids for r in references[k]]
    tokens, info = coco_tokenize(flat, use_java=use_java)
    cands, rest = tokens[: len(ids)], tokens[len(ids) :]
    refs, start = [], 0
    for c in counts:
        refs.append(rest[start : start + c])
        start += c
    return ids, cands, refs, info


def caption_scores(candidates: Mapping[Any, str], references: Mapping[Any, Sequence[str]], meteor: bool = True,
                   use_java_tokenizer: bool | None = None, meteor_jar: MeteorJar | None = None,
                   return_info: bool = False) -> dict:
    """Every caption metric of the COCO evaluation on {id: candidate} vs {id: [references]}.

    Returns {"BLEU-1".."BLEU-4", "METEOR" (None if unavailable), "ROUGE-L", "CIDEr-D", "mean_length",
    "length_gap"} (fractions). mean_length: mean candidate length in COCO tokens; length_gap: that minus
    the mean reference length (TAMMs A.7). With return_info, also "info": tokenizer counts and the
    METEOR reason/settings. `meteor_jar`: reuse a running `MeteorJar` (the JVM start costs ~2 s)."""
    ids, cands, refs, tok_info = tokenize_captions(candidates, references, use_java_tokenizer)
    from tamms.metrics import _caption_numpy

    prepared = _caption_numpy.prepare(cands, refs)
    if prepared is not None:  # vectorised, bit-identical (see _caption_numpy)
        bleu = _caption_numpy.bleu_from_counts(*_caption_numpy.bleu_counts(prepared))
        cider = float(np.mean(_caption_numpy.cider_d_scores(prepared)))
    else:  # vocabulary too large for int64 n-gram keys: the dict implementation
        counts_of = _counts_cache(4)
        bleu = bleu_tokenized(cands, refs, counts_of=counts_of)
        cider = cider_d_tokenized(cands, refs, counts_of=counts_of)
    out: dict[str, Any] = {f"BLEU-{k + 1}": bleu[k] for k in range(4)}
    out["METEOR"] = None
    meteor_note = "disabled (meteor=False)"
    if meteor:
        if meteor_jar is not None:
            out["METEOR"] = meteor_jar.score(cands, refs)[0]
            meteor_note = "METEOR 1.5 jar (pycocoevalcap), -l en -norm"
        elif meteor_available():
            with MeteorJar() as jar:
                out["METEOR"] = jar.score(cands, refs)[0]
            meteor_note = "METEOR 1.5 jar (pycocoevalcap), -l en -norm"
        else:
            meteor_note = METEOR_UNAVAILABLE
    out["ROUGE-L"] = rouge_l_tokenized(cands, refs)
    out["CIDEr-D"] = cider
    cand_len = [len(c.split()) for c in cands]
    ref_len = [len(r.split()) for rs in refs for r in rs]
    out["mean_length"] = float(np.mean(cand_len))
    out["length_gap"] = out["mean_length"] - float(np.mean(ref_len))
    if return_info:
        out["info"] = {"n": len(ids), "tokenizer": tok_info, "METEOR": meteor_note,
                       "variants": {"BLEU": "corpus, closest ref length (pycocoevalcap)",
                                    "ROUGE-L": "beta 1.2, max over refs, mean over captions",
                                    "CIDEr-D": "sigma 6, clipped, x10, df from the evaluated references"}}
    return out


# ------------------------------------------------------------------------------------------ torchmetrics
class CaptionScores(Metric):
    """Caption metrics over a whole evaluation (corpus-level BLEU and CIDEr-D need all captions).

    update(candidates: list[str], references: list[list[str]]) (or dicts keyed by id). States are
    Python lists of strings; under DDP they are gathered with `all_gather_object` before compute,
    so every rank computes the same corpus scores. Ids are made unique as (rank, position)."""

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, meteor: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.meteor = meteor
        self.add_state("candidates", default=[], dist_reduce_fx=None)
        self.add_state("references", default=[], dist_reduce_fx=None)

    def update(self, candidates, references) -> None:  # type: ignore[override]
        if isinstance(candidates, Mapping):
            keys = list(references.keys())
            _check_inputs(candidates, references)
            candidates, references = [candidates[k] for k in keys], [list(references[k]) for k in keys]
        if len(candidates) != len(references):
            from tamms.errors import InputError

            raise InputError(f"{len(candidates)} candidates but {len(references)} reference lists; give one each")
        self.candidates.extend(str(c) for c in candidates)
        self.references.extend([str(r) for r in refs] for refs in references)

    def _sync_dist(self, dist_sync_fn=None, process_group=None) -> None:  # strings: gather objects
        import torch.distributed as dist

        gathered: list = [None] * dist.get_world_size(process_group)
        dist.all_gather_object(gathered, (self.candidates, self.references), group=process_group)
        self.candidates = [c for cands, _ in gathered for c in cands]
        self.references = [r for _, refs in gathered for r in refs]

    def compute(self) -> dict:
        return caption_scores(dict(enumerate(self.candidates)), dict(enumerate(self.references)),
                              meteor=self.meteor)


def bleu(candidates: Mapping, references: Mapping) -> list[float]:
    """Functional BLEU-1..4 on raw captions (tokenised like COCO)."""
    _, c, r, _ = tokenize_captions(candidates, references)
    return bleu_tokenized(c, r)


def rouge_l(candidates: Mapping, references: Mapping) -> float:
    _, c, r, _ = tokenize_captions(candidates, references)
    return rouge_l_tokenized(c, r)


def cider_d(candidates: Mapping, references: Mapping) -> float:
    _, c, r, _ = tokenize_captions(candidates, references)
    return cider_d_tokenized(c, r)
