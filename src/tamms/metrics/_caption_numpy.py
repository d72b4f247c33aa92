"""BLEU and CIDEr-D of pycocoevalcap, vectorised with numpy and still bit-identical.

Why it can be exact: BLEU is integer counting until a handful of scalar float operations, so any
counting order gives the same integers. CIDEr-D's float sums are reproduced in the reference's order:
every "val += x" loop of `CiderScorer` becomes a padded matrix (one row per sum, items in the reference's
iteration order, zeros after the end) summed column by column from 0.0, which performs exactly the
additions of the loop (adding the trailing +0.0 changes nothing). Element-wise products, divisions and
square roots are IEEE-exact in any vectorisation; `pow(x, 2)` is `np.float_power` (libm pow, as the
reference; `np.power(x, 2)` squares and differs in the last bit ~0.1% of the time); logs and the length
penalty are taken with the reference's scalar calls, once per distinct value; the per-caption mean over n
is `np.mean` along the row, as the reference's `np.mean` of each 4-vector.

N-grams are integer keys built from word ids (`ids[i] * V + ids[i+1] ...`), so the vocabulary must stay
below 55,000 words for 4-grams to fit in int64; `prepare` returns None otherwise and the caller falls
back to the dict implementation in `text.py`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

_MAX_VOCAB = 55_000  # V**4 < 2**63


class Grams:
    """Distinct n-grams of every distinct sentence, in the reference's dict order.

    Rows (one per distinct (sentence, k, n-gram)), sorted by (sentence, k, first position):
      sent, k (0-based), gid (global id, unique across k), tf (count)."""

    def __init__(self, sentences: list[str], n: int = 4):
        self.n = n
        self.sentences = sentences
        vocab: dict[str, int] = {}
        words = [s.split() for s in sentences]
        lengths = np.fromiter((len(w) for w in words), dtype=np.int64, count=len(words))
        flat = [vocab.setdefault(t, len(vocab)) for w in words for t in w]
        self.ok = 0 < len(vocab) and len(vocab) + 1 < _MAX_VOCAB
        self.lengths = lengths
        if not self.ok:
            return
        ids = np.asarray(flat, dtype=np.int64) + 1  # 0 is never a word
        base = len(vocab) + 1
        sent_of_token = np.repeat(np.arange(len(sentences)), lengths)
        end_of_token = np.repeat(np.cumsum(lengths), lengths)  # exclusive end of each token's sentence
        position = np.arange(len(ids)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        rows_sent, rows_k, rows_key, rows_pos = [], [], [], []
        key = np.zeros(len(ids), dtype=np.int64)
        for k in range(n):
            valid = np.arange(len(ids)) + k < end_of_token  # the (k+1)-gram starting here fits
            if k:
                shifted = np.zeros(len(ids), dtype=np.int64)
                shifted[:-k] = ids[k:]
                key = key * base + shifted
            else:
                key = ids.copy()
            rows_sent.append(sent_of_token[valid])
            rows_k.append(np.full(int(valid.sum()), k, dtype=np.int64))
            rows_key.append(key[valid])
            rows_pos.append(position[valid])
        sent, kk, key_all, pos = (np.concatenate(x) for x in (rows_sent, rows_k, rows_key, rows_pos))
        # global n-gram id: (k+1)-gram keys lie in [base**k, base**(k+1)) (ids >= 1), so keys of different
        # k never collide and the key alone identifies the n-gram
        _, gid = np.unique(key_all, return_inverse=True)
        gid = gid.ravel()
        # distinct (sentence, gid) with count and first position
        order = np.lexsort((pos, gid, sent))
        sent, kk, gid, pos = sent[order], kk[order], gid[order], pos[order]
        new = np.ones(len(sent), dtype=bool)
        new[1:] = (sent[1:] != sent[:-1]) | (gid[1:] != gid[:-1])
        starts = np.flatnonzero(new)
        tf = np.diff(np.append(starts, len(sent)))
        sent, kk, gid, pos = sent[starts], kk[starts], gid[starts], pos[starts]
        order = np.lexsort((pos, kk, sent))  # the reference's dict order: k, then first position
        self.sent, self.k, self.gid, self.tf = sent[order], kk[order], gid[order], tf[order]
        self.num_grams = int(gid.max()) + 1 if len(gid) else 0
        self.row_start = np.searchsorted(self.sent, np.arange(len(sentences) + 1))  # rows of sentence s

    def rows_of(self, sentence_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(owner index into sentence_ids, row index) of every gram row of the given sentences."""
        starts, ends = self.row_start[sentence_ids], self.row_start[sentence_ids + 1]
        counts = ends - starts
        owner = np.repeat(np.arange(len(sentence_ids)), counts)
        rows = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(starts, counts)
        return owner, rows


def prepare(candidates: Sequence[str], references: Sequence[Sequence[str]], n: int = 4):
    """(Grams, cand sentence ids [N], ref sentence ids padded [N, R] (-1), ref counts [N]) or None."""
    index: dict[str, int] = {}
    cand_ids = np.fromiter((index.setdefault(c, len(index)) for c in candidates), dtype=np.int64,
                           count=len(candidates))
    max_refs = max(len(r) for r in references)
    ref_ids = np.full((len(references), max_refs), -1, dtype=np.int64)
    for i, refs in enumerate(references):
        ref_ids[i, : len(refs)] = [index.setdefault(r, len(index)) for r in refs]
    grams = Grams(list(index), n)
    if not grams.ok:
        return None
    return grams, cand_ids, ref_ids, np.array([len(r) for r in references], dtype=np.int64)


def _sequential_row_sums(owner: np.ndarray, order_in_row: np.ndarray, values: np.ndarray, num_rows: int) -> np.ndarray:
    """sum_j values of each row, added left to right from 0.0 in `order_in_row` (the reference's loop)."""
    out = np.zeros(num_rows)
    if len(values) == 0:
        return out
    width = int(order_in_row.max()) + 1
    matrix = np.zeros((num_rows, width))
    matrix[owner, order_in_row] = values
    for col in range(width):
        out = out + matrix[:, col]
    return out


def _rank_within(owner: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal (sorted) owners."""
    if len(owner) == 0:
        return owner
    new = np.ones(len(owner), dtype=bool)
    new[1:] = owner[1:] != owner[:-1]
    starts = np.flatnonzero(new)
    return np.arange(len(owner)) - np.repeat(starts, np.diff(np.append(starts, len(owner))))


def bleu_counts(prepared) -> tuple[list[int], list[int], int, int]:
    """(correct[k], guess[k], total test length, total closest reference length): BleuScorer's totals."""
    grams, cand_ids, ref_ids, ref_counts = prepared
    n = grams.n
    num = len(cand_ids)
    test_len = grams.lengths[cand_ids]
    # closest reference length, ties to the shorter: min over (|l - t|, l)
    ref_len = np.where(ref_ids >= 0, grams.lengths[np.maximum(ref_ids, 0)], 10**9)  # padding never closest
    big = int(grams.lengths.max()) + 2 if len(grams.lengths) else 2
    score = np.abs(ref_len - test_len[:, None]) * big + ref_len
    closest = ref_len[np.arange(num), np.argmin(score, axis=1)]
    guess = [int(np.maximum(test_len - k, 0).sum()) for k in range(n)]
    # max reference count of each (image, n-gram)
    image_of_ref = np.repeat(np.arange(num), ref_counts)
    ref_sents = ref_ids[ref_ids >= 0]  # row-major: image by image, refs in order
    owner, rows = grams.rows_of(ref_sents)
    image = image_of_ref[owner]
    key = image * grams.num_grams + grams.gid[rows]
    order = np.lexsort((grams.tf[rows], key))
    key, tf = key[order], grams.tf[rows][order]
    last = np.ones(len(key), dtype=bool)
    last[:-1] = key[1:] != key[:-1]
    max_key, max_tf = key[last], tf[last]  # sorted by tf within key: the last is the max
    # candidate counts clipped by those maxima
    owner, rows = grams.rows_of(cand_ids)
    cand_key = owner * grams.num_grams + grams.gid[rows]
    pos = np.searchsorted(max_key, cand_key)
    pos = np.minimum(pos, max(len(max_key) - 1, 0))
    found = (max_key[pos] == cand_key) if len(max_key) else np.zeros(len(cand_key), dtype=bool)
    clipped = np.minimum(grams.tf[rows], np.where(found, max_tf[pos] if len(max_tf) else 0, 0))
    correct = [int(clipped[grams.k[rows] == k].sum()) for k in range(n)]
    return correct, guess, int(test_len.sum()), int(closest.sum())


def cider_d_scores(prepared, sigma: float = 6.0) -> np.ndarray:
    """Per-caption CIDEr-D, bit-identical to `CiderScorer.compute_cider`."""
    grams, cand_ids, ref_ids, ref_counts = prepared
    n = grams.n
    num = len(cand_ids)
    # document frequency: in how many images' reference sets each n-gram occurs
    image_of_ref = np.repeat(np.arange(num), ref_counts)
    owner, rows = grams.rows_of(ref_ids[ref_ids >= 0])
    pairs = np.unique(image_of_ref[owner] * grams.num_grams + grams.gid[rows])
    doc_freq = np.bincount(pairs % grams.num_grams, minlength=grams.num_grams)
    ref_len = np.log(float(num))
    log_of = {int(d): np.log(max(1.0, float(d))) for d in np.unique(doc_freq)}  # the reference's scalar calls
    idf = np.empty(grams.num_grams)
    for d, value in log_of.items():
        idf[doc_freq == d] = ref_len - value
    # TF-IDF value of every gram row; norms per (sentence, k) as sequential sums of pow(v, 2)
    value = grams.tf.astype(np.float64) * idf[grams.gid]
    num_sent = len(grams.sentences)
    row_owner = grams.sent * n + grams.k
    rank = _rank_within(row_owner)
    norm = np.sqrt(_sequential_row_sums(row_owner, rank, np.float_power(value, 2.0), num_sent * n))
    norm = norm.reshape(num_sent, n)
    length = np.maximum(grams.lengths - 1, 0)  # the reference's "length": the bigram count
    # distinct (candidate, reference) pairs
    valid = ref_ids >= 0
    pair_c = np.broadcast_to(cand_ids[:, None], ref_ids.shape)[valid]
    pair_r = ref_ids[valid]
    pair_key, pair_index = np.unique(pair_c * num_sent + pair_r, return_inverse=True)
    pc, pr = pair_key // num_sent, pair_key % num_sent
    # for every gram row of each pair's candidate: the reference's value of that n-gram (0 if absent)
    owner, rows = grams.rows_of(pc)
    lookup_keys = grams.sent * grams.num_grams + grams.gid  # sorted? make a sorted index
    sort = np.argsort(lookup_keys, kind="stable")
    sorted_keys = lookup_keys[sort]
    want = pr[owner] * grams.num_grams + grams.gid[rows]
    pos = np.minimum(np.searchsorted(sorted_keys, want), len(sorted_keys) - 1)
    hit = sorted_keys[pos] == want
    ref_value = np.where(hit, value[sort[pos]], 0.0)
    hyp_value = value[rows]
    products = np.minimum(hyp_value, ref_value) * ref_value
    sum_owner = owner * n + grams.k[rows]  # rows are in (k, position) order within each candidate
    val = _sequential_row_sums(sum_owner, _rank_within(sum_owner), products, len(pc) * n).reshape(len(pc), n)
    nh, nr = norm[pc], norm[pr]
    divide = (nh != 0) & (nr != 0)
    val = np.where(divide, val / np.where(divide, nh * nr, 1.0), val)
    delta = (length[pc] - length[pr]).astype(np.float64)
    penalty_of = {float(d): np.e ** (-(float(d) ** 2) / (2 * sigma**2)) for d in np.unique(delta)}
    penalty = np.array([penalty_of[float(d)] for d in delta]) if len(delta) else np.zeros(0)
    sim = val * penalty[:, None]  # [pairs, n]
    # per caption: score += sim over its references in order, from 0.0
    score = np.zeros((num, n))
    flat_index = np.full(ref_ids.shape, -1, dtype=np.int64)
    flat_index[valid] = pair_index.ravel()
    for j in range(ref_ids.shape[1]):
        present = flat_index[:, j] >= 0
        score = score + np.where(present[:, None], sim[np.maximum(flat_index[:, j], 0)], 0.0)
    score_avg = np.mean(score, axis=1)
    score_avg = score_avg / ref_counts
    return score_avg * 10.0


def bleu_from_counts(correct: list[int], guess: list[int], test_len: int, ref_len: int) -> list[float]:
    """BleuScorer.compute_score's corpus formula (scalar Python floats, the reference's operations)."""
    tiny, small = 1e-15, 1e-9
    scores, bleu = [], 1.0
    for k in range(len(correct)):
        bleu *= float(correct[k] + tiny) / (guess[k] + small)
        scores.append(bleu ** (1.0 / (k + 1)))
    ratio = (test_len + tiny) / (ref_len + small)
    if ratio < 1:
        scores = [s * math.exp(1 - 1 / ratio) for s in scores]
    return scores
