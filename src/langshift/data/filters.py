"""Quality filters on translated pairs; every rejection is counted under its reason.

Each check looks at the *prose* of a field (code, URLs and markup removed, `segment.prose`), so a
response that is mostly a code block is not called an "untranslated copy". For each of prompt and
response:

  empty          the translation is blank while the English is not;
  untranslated   the prose is (nearly) a copy of the English: difflib's ratio 2M/T >= 0.9 over the
                 casefolded words (M words in matching blocks, T words in both), English >= 3 words;
  wrong_language language ID of the prose (>= 20 letters) is not the target, using lingua restricted to
                 the candidate languages of `langshift.languages` (or pycld2, where it is reliable);
  length_ratio   r = utf8_bytes(tgt) / utf8_bytes(en) outside [min_ratio, max_ratio] (English >= 20
                 bytes). Bytes, not characters: a CJK character is 3 bytes and carries roughly what 3
                 English letters do, so one band fits every script;
  repetition     a loop: some unit of 1-40 characters repeated >= 4 times back to back (and covering
                 >= 12 characters) in the translation but not in the English — M2M100's known failure.

Every check costs at most linear time in the text, so one 100k-character record cannot stall a build:
the copy check aligns words, not characters, on the first COPY_MAX_WORDS words of each side, and only
when a linear upper bound (the multiset Dice 2|A∩B|/T >= ratio) says it could pass; difflib's
character ratio would be quadratic, and its autojunk shortcut (above 200 characters) misses long
near-copies. Language ID reads the first LID_MAX_CHARS characters, far more than it needs.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from difflib import SequenceMatcher
from functools import lru_cache

from langshift.data.segment import prose
from langshift.languages import LANGUAGES, get_language
from langshift.records import Record

REASONS = ("empty", "untranslated", "wrong_language", "length_ratio", "repetition")
COPY_MAX_WORDS = 500  # difflib's alignment is quadratic in the worst case: 500 words take < 0.1 s
LID_MAX_CHARS = 10_000


@dataclass
class FilterConfig:
    min_ratio: float = 0.33
    max_ratio: float = 3.0
    min_ratio_bytes: int = 20  # below this, short strings vary too much for a ratio to mean anything
    copy_similarity: float = 0.9
    min_lid_letters: int = 20
    detector: str = "lingua"  # "lingua" | "cld2" | "none"
    loop_repeats: int = 4
    loop_min_chars: int = 12
    checks: tuple[str, ...] = REASONS  # the checks that reject a record (a subset of REASONS)

    def __post_init__(self):
        unknown = set(self.checks) - set(REASONS)
        if unknown:
            raise ValueError(f"unknown filter check(s) {sorted(unknown)}; known: {', '.join(REASONS)}")
        self.checks = tuple(self.checks)


@dataclass
class FilterReport:
    total: int = 0
    kept: int = 0
    rejected: int = 0
    reasons: dict = field(default_factory=lambda: dict.fromkeys(REASONS, 0))  # records failing each check
    by_field: dict = field(default_factory=dict)  # "response:wrong_language" -> count
    config: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def is_copy(en: str, tgt: str, threshold: float, max_words: int = COPY_MAX_WORDS) -> bool:
    """True when difflib's ratio over the casefolded words (the first `max_words` of each) is >= threshold.
    The multiset Dice coefficient bounds that ratio from above in linear time, so a real translation,
    which shares few words with its source, never reaches the quadratic alignment."""
    a, b = en.casefold().split()[:max_words], tgt.casefold().split()[:max_words]
    if not a or not b:
        return False
    if 2 * sum((Counter(a) & Counter(b)).values()) / (len(a) + len(b)) < threshold:
        return False
    return SequenceMatcher(None, a, b, autojunk=False).ratio() >= threshold


_WORD = re.compile(r"\w+")


def normalized_words(text: str) -> list[str]:
    """The words of `text` casefolded, with punctuation and whitespace dropped: "Hi,  there!" -> [hi, there].

    The one notion of "the same text" for overlap checks (held-out vs training data) and prompt echoes.
    """
    return _WORD.findall(text.casefold())


def _letters(s: str) -> int:
    return sum(ch.isalpha() for ch in s)


@lru_cache(maxsize=8)
def _lingua_detector(codes: tuple[str, ...]):
    from lingua import Language as L
    from lingua import LanguageDetectorBuilder

    return LanguageDetectorBuilder.from_languages(*(getattr(L, get_language(c).lingua) for c in codes)).build()


def detect_language(text: str, detector: str = "lingua", lang: str | None = None) -> str | None:
    """Canonical code of the language of `text`, or None when undecided (or cld2 is unsure).

    lingua chooses among fidelity's candidates plus `lang` and English (`langid.candidate_codes`), not the
    whole registry: with every registry language a candidate, one German demo prompt reads as French."""
    if detector == "lingua":
        from langshift.eval.langid import candidate_codes

        found = _lingua_detector(candidate_codes(None, *([lang] if lang else []), "en")).detect_language_of(text)
        if found is None:
            return None
        by_lingua = {lang.lingua: lang.code for lang in LANGUAGES.values()}
        return by_lingua.get(found.name)
    if detector == "cld2":
        import pycld2

        reliable, _, details = pycld2.detect(text)
        code = details[0][1]
        if not reliable or code in ("un", "xx"):
            return None
        by_cld2 = {lang.cld2: lang.code for lang in LANGUAGES.values()}
        return by_cld2.get(code, code)
    raise ValueError(f"unknown language detector {detector!r}; use lingua, cld2 or none")


@lru_cache(maxsize=8)
def _loop_re(repeats: int) -> re.Pattern:
    # A unit of 1-40 characters, then the same unit (repeats - 1) more times, spaces allowed between.
    return re.compile(rf"(.{{1,40}}?)(?:\s*\1){{{repeats - 1},}}", re.DOTALL)


def loop_length(text: str, repeats: int = 4) -> int:
    """Characters covered by the longest back-to-back repetition of a unit containing a letter."""
    best = 0
    for m in _loop_re(repeats).finditer(text):
        if any(ch.isalpha() for ch in m.group(1)):
            best = max(best, m.end() - m.start())
    return best


def field_reasons(en: str, tgt: str, lang: str, cfg: FilterConfig) -> list[str]:
    """The enabled checks (`cfg.checks`) one translated field fails (empty list: it passes)."""
    return [r for r in _all_reasons(en, tgt, lang, cfg) if r in cfg.checks]


def _all_reasons(en: str, tgt: str, lang: str, cfg: FilterConfig) -> list[str]:
    if not tgt.strip():
        return ["empty"] if en.strip() else []
    en_p, tgt_p = prose(en), prose(tgt)
    if not en_p.strip():
        return []  # nothing was translatable (all code/URLs): nothing to judge
    reasons = []
    if len(en_p.split()) >= 3 and is_copy(en_p, tgt_p, cfg.copy_similarity):
        reasons.append("untranslated")
    if cfg.detector != "none" and "wrong_language" in cfg.checks and _letters(tgt_p) >= cfg.min_lid_letters:
        found = detect_language(tgt_p[:LID_MAX_CHARS], cfg.detector, lang)
        if found is not None and found != get_language(lang).code:
            reasons.append("wrong_language")
    en_b, tgt_b = len(en_p.encode()), len(tgt_p.encode())
    if en_b >= cfg.min_ratio_bytes and not cfg.min_ratio <= tgt_b / en_b <= cfg.max_ratio:
        reasons.append("length_ratio")
    loop = loop_length(tgt_p, cfg.loop_repeats)
    if loop >= cfg.loop_min_chars and loop > 2 * loop_length(en_p, cfg.loop_repeats):
        reasons.append("repetition")
    return reasons


def check_record(rec: Record, lang: str, cfg: FilterConfig) -> dict[str, list[str]]:
    """{"prompt": [...reasons], "response": [...]} for one record."""
    return {f: field_reasons(getattr(rec, f"en_{f}"), getattr(rec, f"tgt_{f}"), lang, cfg) for f in ("prompt", "response")}


def apply_filters(records: list[Record], lang: str, cfg: FilterConfig | None = None, progress: bool = False):
    """-> (kept, rejected, report); each rejected record gets meta.filter_reasons."""
    from langshift.progress import progress_bar

    cfg = cfg or FilterConfig()
    report = FilterReport(total=len(records), config=asdict(cfg))
    by_field: Counter = Counter()
    kept, rejected = [], []
    for rec in progress_bar(records, desc="filter", unit="rec", disable=not progress, dynamic_ncols=True):
        found = check_record(rec, lang, cfg)
        reasons = sorted({r for rs in found.values() for r in rs}, key=REASONS.index)
        for f, rs in found.items():
            by_field.update(f"{f}:{r}" for r in rs)
        if reasons:
            for r in reasons:
                report.reasons[r] += 1
            reasons_at = [f"{f}:{r}" for f, rs in found.items() for r in rs]
            rejected.append(replace(rec, meta={**rec.meta, "filter_reasons": reasons_at}))
        else:
            kept.append(rec)
    report.kept, report.rejected, report.by_field = len(kept), len(rejected), dict(sorted(by_field.items()))
    return kept, rejected, report
