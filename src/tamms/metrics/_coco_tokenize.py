"""The COCO caption evaluation's tokenisation, in Python, with the Java tokenizer as the exact fallback.

pycocoevalcap runs Stanford CoreNLP 3.4.1's `PTBTokenizer -preserveLines -lowerCase` (a Java
subprocess) on every caption and then drops the tokens listed in `PUNCTUATIONS`. Starting the JVM
costs about a second per call, so we reproduce that output in Python for the sentences whose
tokenisation we can reproduce exactly, and hand the rest to the same jar in ONE batch:

Handled in Python ("simple" sentences, the whole of LEVIR-CC and of our generated captions):
whitespace-separated chunks made of ASCII letters and digits, hyphen-joined words (`lower-left`,
`t-shaped`, `5-10`), the English clitics the lexer splits off (`don't -> do n't`, `road's -> road 's`,
`'m 're 've 'd 'll`), the words it splits (`cannot gonna gotta wanna lemme gimme`), and one trailing
`, ; : ! ?` (or such a mark, `-` or `--` standing alone, all removed afterwards).

Everything else (periods, which need the lexer's abbreviation lists; quotes, brackets, other
apostrophes, `&`, `%`, `/`, non-ASCII ...) goes to the jar when Java and pycocoevalcap are present;
without them it gets a documented approximation (see `approximate_tokenize`) and the caller is told how
many sentences were approximated. Tests check equality with the jar on real captions and edge cases.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

# the list pycocoevalcap removes after tokenising (note: the jar lower-cases "-LRB-" to "-lrb-", so the
# bracket entries of this list never match; we keep that behaviour)
PUNCTUATIONS = frozenset(["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-",
                          ".", "?", "!", ",", ":", "-", "--", "...", ";"])

# words the lexer splits although they hold no punctuation (checked against the jar in the tests)
_SPLIT_WORDS = {"cannot": "can not", "gonna": "gon na", "gotta": "got ta", "wanna": "wan na",
                "lemme": "lem me", "gimme": "gim me"}
_WORD = r"[a-z0-9]+(?:-[a-z0-9]+)*"
_CHUNK = re.compile(rf"({_WORD})([,;:!?])?")
_CLITIC = re.compile(r"([a-z]+)(n't|'s|'m|'re|'ve|'d|'ll)([,;:!?])?")
_STANDALONE = frozenset([",", ";", ":", "!", "?", "-", "--"])
# other whitespace (\r, \f, unicode spaces) may end a line in the Java lexer: leave those to the jar
_SIMPLE_CHARS = re.compile(r"[A-Za-z0-9 \t\n,;:!?'-]*")
_PLAIN = re.compile(r"[A-Za-z0-9 \t\n]*")  # words only: the common case, no chunk analysis needed


def _simple_tokens(sentence: str) -> list[str] | None:
    """Tokens (before punctuation removal) if the sentence is "simple", else None."""
    if not _SIMPLE_CHARS.fullmatch(sentence):
        return None
    tokens: list[str] = []
    for chunk in sentence.lower().split():
        if chunk in _STANDALONE:
            tokens.append(chunk)
            continue
        match = _CHUNK.fullmatch(chunk)
        if match:
            word, mark = match.groups()
            tokens.append(_SPLIT_WORDS.get(word, word))
        else:
            match = _CLITIC.fullmatch(chunk)
            if match is None:
                return None
            base, clitic, mark = match.groups()
            if clitic == "n't":
                if len(base) < 2 or not base.endswith("n"):
                    return None
                base = base[:-1]
            tokens.append(_SPLIT_WORDS.get(base, base))
            tokens.append(clitic)
        if mark:
            tokens.append(mark)
    return tokens


def _strip_punctuation(tokens) -> str:
    return " ".join(t for t in " ".join(tokens).split(" ") if t not in PUNCTUATIONS and t != "")


def simple_tokenize(sentence: str) -> str | None:
    """The COCO-tokenised caption (lower case, punctuation removed), or None if not a "simple" sentence."""
    if _PLAIN.fullmatch(sentence):
        words = sentence.lower().split()
        return " ".join(map(_SPLIT_WORDS.get, words, words))
    tokens = _simple_tokens(sentence)
    return None if tokens is None else _strip_punctuation(tokens)


_APPROX_SPLIT = re.compile(r"n't|'s|'m|'re|'ve|'d|'ll|[a-z0-9]+(?:[-.'][a-z0-9]+)*\.?|[^\sa-z0-9]")


def approximate_tokenize(sentence: str) -> str:
    """Best effort without Java: lower case, split clitics and punctuation marks, drop the removed list
    and a sentence-final period. Used only for non-simple sentences when the jar cannot run."""
    text = sentence.lower().strip()
    tokens = _APPROX_SPLIT.findall(text)
    if tokens and tokens[-1].endswith(".") and len(tokens[-1]) > 1:
        tokens[-1] = tokens[-1][:-1]
    return _strip_punctuation(tokens)


def coco_jar_dir() -> Path | None:
    """pycocoevalcap's folder if it and Java are installed (the jars of METEOR and the PTB tokenizer)."""
    if shutil.which("java") is None:
        return None
    try:
        import importlib.util

        spec = importlib.util.find_spec("pycocoevalcap")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def java_tokenize(sentences: list[str]) -> list[str]:
    """Exactly pycocoevalcap's PTBTokenizer.tokenize on a list of sentences (one JVM start)."""
    root = coco_jar_dir()
    if root is None:
        raise RuntimeError("the Java PTB tokenizer needs java and pycocoevalcap (pip install tamms[coco])")
    jar_dir = root / "tokenizer"
    text = "\n".join(s.replace("\n", " ") for s in sentences)
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as handle:
        handle.write(text.encode())
        path = handle.name
    try:
        out = subprocess.run(
            ["java", "-cp", str(jar_dir / "stanford-corenlp-3.4.1.jar"), "edu.stanford.nlp.process.PTBTokenizer",
             "-preserveLines", "-lowerCase", path],
            capture_output=True, check=True, timeout=600,
        ).stdout.decode()
    finally:
        os.unlink(path)
    lines = out.split("\n")
    # pycocoevalcap zips ids with these lines, so a missing trailing line drops a caption there too;
    # we return "" for it (the only case: trailing empty sentences), which is what it scores as well
    lines += [""] * (len(sentences) - len(lines))
    return [" ".join(w for w in line.rstrip().split(" ") if w not in PUNCTUATIONS) for line in lines[: len(sentences)]]


def coco_tokenize(sentences: list[str], use_java: bool | None = None) -> tuple[list[str], dict]:
    """Tokenise like pycocoevalcap. Returns the tokenised sentences and info
    {"python": n, "java": n, "approximate": n} saying how each sentence was handled.

    use_java: None = the jar for non-simple sentences when available; True = the jar for ALL sentences;
    False = never the jar (non-simple sentences approximated)."""
    info = {"python": 0, "java": 0, "approximate": 0}
    if use_java is True:
        info["java"] = len(sentences)
        return java_tokenize(list(sentences)), info
    cache: dict[str, str | None] = {}
    result: list[str | None] = []
    for sentence in sentences:
        if sentence not in cache:
            cache[sentence] = simple_tokenize(sentence)
        result.append(cache[sentence])
    hard = sorted({s for s, r in zip(sentences, result) if r is None})
    info["python"] = len(sentences) - sum(r is None for r in result)
    if hard:
        if use_java is None and coco_jar_dir() is not None:
            done = dict(zip(hard, java_tokenize(hard)))
            info["java"] = len(sentences) - info["python"]
        else:
            done = {s: approximate_tokenize(s) for s in hard}
            info["approximate"] = len(sentences) - info["python"]
        result = [done[s] if r is None else r for s, r in zip(sentences, result)]
    return result, info  # type: ignore[return-value]
