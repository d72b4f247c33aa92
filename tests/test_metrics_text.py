"""Caption metrics against the COCO caption evaluation (pycocoevalcap 1.2) on real LEVIR-CC captions."""

from __future__ import annotations

import contextlib
import io
import json
import random

import pycocoevalcap  # noqa: F401 - a dev dependency: the reference every caption metric is compared with
import pytest

from tamms.errors import InputError
from tamms.metrics._coco_tokenize import approximate_tokenize, coco_jar_dir, coco_tokenize, simple_tokenize
from tamms.metrics.text import CAPTION_KEYS, MeteorJar, caption_scores
from tests.conftest import shared_path

# Java runs the PTB tokenizer and the METEOR jar; .ci/run installs it (default-jre-headless)
needs_java = pytest.mark.skipif(coco_jar_dir() is None, reason="needs java (apt-get install default-jre-headless)")


def coco_reference_many(corpora: dict) -> dict:
    """pycocoevalcap as COCOEvalCap.evaluate runs it (PTBTokenizer on gts and on res, then the scorers),
    for several corpora {name: (candidates, references)} with ONE tokenizer call each for gts and res."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    results = {}
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        tok = PTBTokenizer()
        all_gts = tok.tokenize({(n, k): [{"caption": c} for c in v] for n, (_, refs) in corpora.items()
                                for k, v in refs.items()})
        all_res = tok.tokenize({(n, k): [{"caption": cands[k]}] for n, (cands, refs) in corpora.items() for k in refs})
        for name, (_, refs) in corpora.items():
            gts = {k: all_gts[(name, k)] for k in refs}
            res = {k: all_res[(name, k)] for k in refs}
            out = dict(zip(["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4"], Bleu(4).compute_score(gts, res, verbose=0)[0]))
            out["ROUGE-L"] = float(Rouge().compute_score(gts, res)[0])
            out["CIDEr-D"] = float(Cider().compute_score(gts, res)[0])
            results[name] = out
    return results


def coco_reference(candidates: dict, references: dict) -> dict:
    return coco_reference_many({"x": (candidates, references)})["x"]


@pytest.fixture(scope="module")
def levir_pairs():
    path = shared_path("levir_cc", "captions_trainval.json")
    pairs = json.loads(path.read_text())["pairs"]
    names = sorted(pairs)
    rng = random.Random(1)
    cands, refs = {}, {}
    for name in rng.sample(names, 300):
        caps = pairs[name]["captions"]
        i = rng.randrange(5)
        cands[name] = caps[i]
        refs[name] = caps[:i] + caps[i + 1 :]
    return pairs, cands, refs


@pytest.fixture(scope="module")
def meteor_jar():
    if coco_jar_dir() is None:
        pytest.skip("METEOR needs java and pycocoevalcap")
    with MeteorJar() as jar:
        yield jar


EDGE = {
    "empty": ("", ["a road is built in the top left", "a new road appears"]),
    "one_ref": ("some houses are built", ["many houses are built near the road"]),
    "punct": ("A road, built; beside houses! Really? yes: - -- done", ["a road is built beside the houses", "road built"]),
    "repeat": ("road road road road road road", ["a road is built", "the road road is long", "road"]),
    "clitics": ("The road's end isn't shown, they'll build it", ["the end of the road is not shown", "it is built"]),
    "split_words": ("Cannot see, gonna build, wanna go", ["we can not see it", "they are going to build"]),
    "period": ("Houses appear near the road.", ["houses appear near the road", "buildings appear. near the road"]),
    "quotes_brackets": ('"new" buildings (three) & a pond 3.5 km/h', ["three new buildings and a pond", "a pond"]),
    "unicode": ("café — “curly” … Mr. Smith's etc.", ["a cafe appears", "etc."]),
    "whitespace": ("  a   road\tappears\n here  ", ["a road appears here"]),
    "hyphens": ("lower-left t-shaped -road road- a--b 5-10", ["the lower-left road is t-shaped"]),
    "upper": ("NO CHANGE HAS OCCURRED", ["no change has occurred", "NOTHING changed"]),
    "empty_last": ("", ["nothing"]),
}


def test_python_tokenizer_matches_java_on_all_levir_cc_captions(levir_pairs):
    from tamms.metrics._coco_tokenize import java_tokenize

    pairs = levir_pairs[0]
    sentences = sorted({c for p in pairs.values() for c in p["captions"]})
    ours = [simple_tokenize(s) for s in sentences]
    assert all(t is not None for t in ours), [s for s, t in zip(sentences, ours) if t is None][:5]
    assert ours == java_tokenize(sentences)


@needs_java
def test_tokenizer_matches_pycocoevalcap_on_edge_cases():
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    sentences = [c for cand, refs in EDGE.values() for c in [cand, *refs]]
    sentences += ["don't DON'T it's I'M they've we'd you're", "gonna gotta wanna lemme gimme cannot", "a , b ; c : d ! e ? f"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        theirs = PTBTokenizer().tokenize({i: [{"caption": s}] for i, s in enumerate(sentences)})
    theirs = [theirs[i][0] for i in range(len(sentences))]
    ours, info = coco_tokenize(sentences)
    assert ours == theirs
    assert info["java"] > 0 and info["python"] > 0  # both paths exercised
    for sentence, expected in zip(sentences, theirs):  # the Python path is exact wherever it accepts
        simple = simple_tokenize(sentence)
        assert simple is None or simple == expected, sentence
    # the no-Java approximation is right on the common punctuation cases
    for name in ("punct", "period", "whitespace"):
        assert approximate_tokenize(EDGE[name][0]) == theirs[sentences.index(EDGE[name][0])]


@needs_java
def test_bleu_rouge_cider_equal_pycocoevalcap_on_levir_cc(levir_pairs):
    _, cands, refs = levir_pairs
    ours = caption_scores(cands, refs, meteor=False)
    theirs = coco_reference(cands, refs)
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value, abs=1e-9, rel=0), key
    assert set(ours) == set(CAPTION_KEYS) and ours["METEOR"] is None
    assert 0.1 < ours["BLEU-4"] < 0.9 and 0.1 < ours["CIDEr-D"] < 5  # a real, non-degenerate corpus


def edge_corpus(case: str):
    cand, refs = EDGE[case]
    # a two-item corpus so CIDEr's log(N) document frequency is not zero
    cands = {"x": cand, "y": "a road appears in the middle"}
    references = {"x": refs, "y": ["a road appears in the middle of the scene", "a road is built"]}
    if case == "empty_last":
        cands, references = {"y": cands["y"], "x": cand}, {"y": references["y"], "x": refs}
    return cands, references


@needs_java
def test_edge_cases_equal_pycocoevalcap():
    corpora = {case: edge_corpus(case) for case in EDGE}
    theirs = coco_reference_many(corpora)
    for case, (cands, references) in corpora.items():
        ours = caption_scores(cands, references, meteor=False)
        for key, value in theirs[case].items():
            assert ours[key] == pytest.approx(value, abs=1e-9, rel=0), (case, key)


def test_length_and_errors():
    out = caption_scores({1: "a b c", 2: "a b"}, {1: ["a b c d"], 2: ["a", "a b c"]}, meteor=False)
    assert out["mean_length"] == 2.5
    assert out["length_gap"] == pytest.approx(2.5 - (4 + 1 + 3) / 3)
    with pytest.raises(InputError, match="missing candidates for \\[2\\]"):
        caption_scores({1: "a"}, {1: ["a"], 2: ["b"]}, meteor=False)
    with pytest.raises(InputError, match="non-empty list"):
        caption_scores({1: "a"}, {1: []}, meteor=False)


def test_meteor_unavailable_reason(monkeypatch):
    import tamms.metrics.text as text

    monkeypatch.setattr(text, "meteor_available", lambda: False)
    out = caption_scores({1: "a road"}, {1: ["a road"]}, meteor=True, return_info=True)
    assert out["METEOR"] is None and "needs java and pycocoevalcap" in out["info"]["METEOR"]


@needs_java
def test_meteor_is_the_jars_number(levir_pairs, meteor_jar):
    """Our driver vs pycocoevalcap's `Meteor.compute_score` on the SAME jar process (one JVM start:
    the jar needs ~10 CPU seconds to load), on COCO-tokenised captions, with an empty candidate."""
    import threading

    from pycocoevalcap.meteor.meteor import Meteor

    from tamms.metrics.text import tokenize_captions

    _, cands, refs = levir_pairs
    keys = sorted(cands)[:60]
    cands = {k: cands[k] for k in keys}
    refs = {k: refs[k] for k in keys}
    cands[keys[0]] = ""  # an empty candidate must not hang the jar
    ours = caption_scores(cands, refs, meteor=True, meteor_jar=meteor_jar)
    _, tok_c, tok_r, _ = tokenize_captions(cands, refs)
    class BorrowedMeteor(Meteor):  # pycocoevalcap's protocol code, talking to our running jar
        def __init__(self, proc):
            self.meteor_p, self.lock = proc, threading.Lock()

        def __del__(self):  # the jar is closed by our fixture
            pass

    theirs, _ = BorrowedMeteor(meteor_jar._proc).compute_score(dict(zip(keys, tok_r)),
                                                                {k: [c] for k, c in zip(keys, tok_c)})
    assert ours["METEOR"] == theirs
    assert 0.1 < ours["METEOR"] < 0.9


def test_caption_metric_class_in_batches_equals_functional(levir_pairs):
    from tamms.metrics.text import CaptionScores

    _, cands, refs = levir_pairs
    keys = list(refs)[:90]
    metric = CaptionScores(meteor=False)
    for start in range(0, 90, 40):
        chunk = keys[start : start + 40]
        metric.update([cands[k] for k in chunk], [refs[k] for k in chunk])
    got = metric.compute()
    want = caption_scores({k: cands[k] for k in keys}, {k: refs[k] for k in keys}, meteor=False)
    for key in CAPTION_KEYS:
        assert got[key] == want[key], key
    metric.reset()
    assert metric.candidates == []


def _ddp_worker(rank: int, world: int, port: int, cands: list, refs: list, out_dir: str) -> None:
    import os

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    from tamms.metrics.text import CaptionScores

    metric = CaptionScores(meteor=False)
    metric.update(cands[rank::world], refs[rank::world])  # each rank sees a different share
    result = metric.compute()
    with open(f"{out_dir}/rank{rank}.json", "w") as handle:
        json.dump(result, handle)
    dist.destroy_process_group()


@pytest.mark.ddp
def test_caption_metric_under_ddp_gathers_every_caption(levir_pairs, tmp_path):
    """Two gloo processes: both ranks compute the corpus scores of ALL captions (strings gathered)."""
    import socket

    import torch.multiprocessing as mp

    _, cands, refs = levir_pairs
    keys = list(refs)[:41]
    c, r = [cands[k] for k in keys], [refs[k] for k in keys]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, c, r, str(tmp_path)), nprocs=2, join=True)
    order = [i for rank in range(2) for i in range(rank, 41, 2)]  # gathered order: rank 0's, then rank 1's
    want = caption_scores(dict(enumerate(c[i] for i in order)), dict(enumerate(r[i] for i in order)), meteor=False)
    for rank in range(2):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        for key in CAPTION_KEYS:
            assert got[key] == want[key], (rank, key)


def test_vectorised_and_dict_implementations_are_bit_identical(levir_pairs):
    """caption_scores uses the numpy path; the dict path (fallback for huge vocabularies) must agree exactly."""
    import numpy as np

    from tamms.metrics import _caption_numpy as cn
    from tamms.metrics.text import bleu_tokenized, cider_d_per_caption, tokenize_captions

    _, cands, refs = levir_pairs
    corpora = [(cands, refs)] + [edge_corpus(case) for case in EDGE]
    for c_raw, r_raw in corpora:
        _, c, r, _ = tokenize_captions(c_raw, r_raw)
        prepared = cn.prepare(c, r)
        assert prepared is not None
        assert cn.bleu_from_counts(*cn.bleu_counts(prepared)) == bleu_tokenized(c, r)
        assert np.array_equal(cn.cider_d_scores(prepared), cider_d_per_caption(c, r))
