"""Pure dedup decisions: (Article, what is stored) → New | Update | Unchanged | Duplicate-of(story).

Identity rules: within a source the same key is the same article; across sources the same normalized
content hash, or the same canonical URL, is the same story. Near-duplicates (a paragraph dropped, a new
headline, a changed editor line) are found with MinHash over character shingles — Chinese has no spaces,
so words are not a unit — banded for LSH so storage can look candidates up by index, then *verified* on
the real shingle sets before two articles are merged: precision matters more than recall, and two reports
that share a standard policy paragraph must stay apart.

This module owns rensa (chosen over datasketch by measuring: same accuracy, ~30x faster per article; see
docs/STORIES.md and ``python -m bench.stories --libraries``). Its band keys are stored in the database, so ``INDEX_VERSION`` changes whenever the
shingling, the permutation count or the banding changes.
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import rensa

from .types import Article, stable_id, word_chars

_TRACKING = re.compile(
    r"^(utm_[a-z_]+|spm|scm|from|share_token|share_from|fbclid|gclid|dclid|yclid|mc_cid|mc_eid|_hsenc|_hsmi"
    r"|wt\.mc_id|cmpid|ref_src|isappinstalled|nsukey|wxshare_count|sharer_shareid|sharer_sharetime)$",
    re.I,
)

#: Shingle length (characters of the text without spaces and punctuation), MinHash size and LSH banding.
#: 42 bands of 3 rows: a pair with Jaccard 0.5 becomes a candidate with probability 0.996, 0.4 with 0.94,
#: 0.2 with 0.29 — low enough for extended re-posts (a version with extra paragraphs) to be found, while
#: unrelated texts (Jaccard < 0.05) almost never share a band.
SHINGLE = 5
#: The MinHash is taken over the 5-grams that *start* at an anchor character: a fixed quarter of the letters and
#: digits, chosen by a hash of the code point (``_anchored``). The same gram is always in or always out, so the
#: sample's Jaccard estimates the whole sets' and near-duplicates still meet in bands; a post's ~1,700 grams
#: become ~400, which made the fingerprint half as costly (~450 → ~235 µs a post) with the same decisions on
#: both labelled sets (docs/PERFORMANCE.md, tenth round). The exact verification still compares every shingle.
ANCHOR_BITS = 2  # one code point in 2**ANCHOR_BITS anchors a gram
BANDS = 42
ROWS = 3
NUM_PERM = BANDS * ROWS
SEED = 1
#: One more "band" per article: its headline (comparable form), so a re-post under the same headline is a
#: candidate however much text it adds (`same_title_containment`).
TITLE_BAND = BANDS
INDEX_VERSION = 3  # 3: MinHash over the anchored 5-grams (2: over every 5-gram)
#: A candidate from the index shares at least this many bands (or the headline key). Unrelated texts
#: meet in one band now and then, and verifying them is what costs; a pair that can merge without the
#: same headline has Jaccard >= ~0.43 (containment 0.9 with at most 55 % extra), and shares two or more
#: of 42 three-row bands with probability >= 0.86 (>= 0.97 at Jaccard 0.5, ~1 above 0.6).
MIN_BAND_MATCHES = 2
#: Headlines shorter than this (comparable characters) are too generic to count as "the same headline".
MIN_TITLE_CHARS = 6


def canonical_url(url: str | None) -> str | None:
    """Lower-case scheme and host, no fragment, no default port, no tracking parameters."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.netloc:
        return url.strip()
    host = parts.hostname or ""
    port = parts.port
    netloc = host.lower()
    if port and not ((parts.scheme == "http" and port == 80) or (parts.scheme == "https" and port == 443)):
        netloc += f":{port}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.match(k)])
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", query, ""))


def story_id_for(article_id: str) -> str:
    """The story id a new story gets from its first article; it never changes afterwards."""
    return stable_id("story", article_id)


# ---------------------------------------------------------------- fingerprints


#: Used as separators in headlines though Unicode calls them letters (``丨`` is a CJK radical).
_SEPARATOR = "丨"


#: Blocks whose characters news text uses in compatibility forms: Latin-1 signs (no-break space, ``²``),
#: general punctuation (``…``), letterlike symbols (``℃``), number forms (``Ⅱ``), enclosed alphanumerics
#: (``①``), CJK symbols (the ideographic space), CJK compatibility (``㎡``), vertical and small forms, and
#: the full- and halfwidth forms (``，``, ``Ａ``). Other blocks are left to NFKC, which is never wrong.
_COMPAT_BLOCKS = ((0x00A0, 0x00BF), (0x2000, 0x206F), (0x2100, 0x218F), (0x2460, 0x24FF), (0x3000, 0x303F),
                  (0x3200, 0x33FF), (0xFE10, 0xFE6F), (0xFF00, 0xFFEF))


@functools.cache
def _folding() -> tuple[re.Pattern[str], Callable[[re.Match[str]], str]]:
    """The compatibility characters of ``_COMPAT_BLOCKS`` and their NFKD forms, made on first use: 6 ms that
    every command importing this module (a no-op sync included) would pay at start-up."""
    decomposed = {
        c: d for c, d in ((chr(cp), unicodedata.normalize("NFKD", chr(cp)))
                          for first, last in _COMPAT_BLOCKS for cp in range(first, last + 1)) if d != c
    }
    return re.compile("[" + "".join(map(re.escape, decomposed)) + "]"), lambda m: decomposed[m.group()]


def comparable(text: str) -> str:
    """The text as compared: NFKC, case-folded, without whitespace and punctuation (``丨`` = ``｜`` = nothing)."""
    # NFKC is slow on a text that is not NFKC already, and Chinese news never is: its fullwidth punctuation
    # (，：！？) has compatibility forms. Replacing such a character by its NFKD form leaves the text's NFKD,
    # and so its NFKC, exactly as it was; once those are replaced the text is NFKC already as a rule, and
    # normalize() returns after its quick check (75 against 200 microseconds for a 1,600-character post).
    pattern, decomposed = _folding()
    folded = pattern.sub(decomposed, text)
    # str.replace: a hundred times faster than translate() for the one separator (same result)
    return word_chars(unicodedata.normalize("NFKC", folded).replace(_SEPARATOR, "")).casefold()


def shingle_strings(text: str, k: int = SHINGLE) -> set[str]:
    """Character k-grams of the comparable text (one gram for a text shorter than k, none for an empty one)."""
    return grams_of(comparable(text), k)


def grams_of(c: str, k: int = SHINGLE) -> set[str]:
    """``shingle_strings`` of a text already made ``comparable``."""
    if not c:
        return set()
    if len(c) <= k:
        return {c}
    return {c[i : i + k] for i in range(len(c) - k + 1)}


@functools.cache
def _anchored() -> re.Pattern[str]:
    """The 5-grams that start at an anchor: the letters and digits of the Basic Multilingual Plane (what a
    comparable text is made of; every script, not only Chinese) whose Knuth multiplicative hash falls in the
    lowest ``1 / 2**ANCHOR_BITS`` — one ``re.findall`` (in C), where a set of every gram made each string in
    Python. Made on first use (~20 ms); stored band keys depend on this exact choice (``INDEX_VERSION``)."""
    anchors = "".join(
        c for c in map(chr, range(0x10000))
        if c.isalnum() and (ord(c) * 2654435761) % 2**32 >> (32 - ANCHOR_BITS) == 0
    )
    return re.compile(f"(?=([{re.escape(anchors)}].{{{SHINGLE - 1}}}))", re.S)


def sampled_grams(c: str) -> list[str]:
    """The 5-grams of a comparable text that start at an anchor (repeats included: a minimum ignores them); a
    text shorter than a gram is its one gram."""
    if len(c) <= SHINGLE:
        return [c] if c else []
    return _anchored().findall(c)


@functools.lru_cache(maxsize=32)
def shingles(text: str, k: int = SHINGLE) -> frozenset[str]:
    """The shingle set compared exactly (Jaccard, containment) when two texts are verified.

    Kept as strings: they are only compared inside one process, and Python caches their hashes. Cached:
    a stored article verified against several re-posts of a batch is shingled once.
    """
    return frozenset(shingle_strings(text, k))


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What the near-duplicate index stores for one article: its band keys, and its size in 5-gram positions
    (at least its number of distinct shingles: a text under ``min_shingles`` of them is surely too short)."""

    bands: tuple[int, ...]
    size: int
    # the comparable text it was made from: verifying a match needs its shingles again, and the comparable
    # form (Unicode NFKC) is the costly half of them; not stored, not compared
    comparable: str = field(default="", compare=False, repr=False)


_BAND_PREFIX = tuple(f"{INDEX_VERSION}:{b}:" for b in range(BANDS))
assert ROWS == 3, "_band_keys formats three rows a band"


def _band_keys(digest: list[int]) -> list[int]:
    """The key of every band of a MinHash digest: a signed 63-bit integer (a BIGINT on SQLite and PostgreSQL),
    the first 8 bytes of BLAKE2b over ``"{INDEX_VERSION}:{band number}:{row},{row},{row}"``.

    Stored keys depend on this exact text: a change needs a new ``INDEX_VERSION`` and a re-index.
    """
    blake2b, from_bytes = hashlib.blake2b, int.from_bytes
    return [
        from_bytes(blake2b(f"{prefix}{digest[i]},{digest[i + 1]},{digest[i + 2]}".encode(), digest_size=8).digest(),
                   "big") >> 1
        for prefix, i in zip(_BAND_PREFIX, range(0, BANDS * ROWS, ROWS), strict=True)
    ]


def title_key(title: str) -> int | None:
    """The index key of a headline (None for one too short to tell stories apart, e.g. ``娱乐频道``)."""
    c = comparable(title)
    if len(c) < MIN_TITLE_CHARS:
        return None
    raw = f"{INDEX_VERSION}:title:{c}"
    return int.from_bytes(hashlib.blake2b(raw.encode(), digest_size=8).digest(), "big") >> 1


def fingerprint(text: str, title: str = "") -> Fingerprint:
    """MinHash (rensa) over the text's anchored shingles cut into LSH bands, plus the title key; nothing for a
    text without an anchored shingle.

    ``bands[i]`` is band number ``i``; the title key, when there is one, is the last item (``TITLE_BAND``).
    """
    c = comparable(text)
    grams = sampled_grams(c)
    if not grams:
        return Fingerprint((), 0)
    mh = rensa.RMinHash(num_perm=NUM_PERM, seed=SEED)
    mh.update(grams)  # a minimum depends on neither the order nor repeats: no sort, no set
    bands = _band_keys([int(v) for v in mh.digest()])
    tk = title_key(title)
    if tk is not None:
        bands.append(tk)
    return Fingerprint(tuple(bands), max(len(c) - SHINGLE + 1, 1), c)


# ---------------------------------------------------------------- similarity


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When two texts are one story (from config ``dedup:``)."""

    jaccard: float = 0.7  # shingle Jaccard at or above which two texts are near-duplicates
    containment: float = 0.9  # or: this share of the shorter text's shingles is in the longer one …
    max_extra: float = 0.55  # … and the longer one adds at most this share of its own shingles
    same_title_containment: float = 0.5  # under the same headline, this containment is enough
    min_shingles: int = 40  # shorter texts only merge by exact hash (same headline) or URL
    min_shingles_retitled: int = 200  # under different headlines both texts need this many shingles
    max_candidates: int = 20  # candidates verified per added article, the most band matches first
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Similarity:
    jaccard: float
    containment: float  # |A∩B| / min(|A|, |B|)
    extra: float  # share of the larger set that is not in the smaller one


def similarity(a: frozenset[str], b: frozenset[str]) -> Similarity:
    """Exact Jaccard and containment of two shingle sets."""
    if not a or not b:
        return Similarity(0.0, 0.0, 1.0)
    inter = len(a & b)
    small, large = sorted((len(a), len(b)))
    return Similarity(inter / (len(a) + len(b) - inter), inter / small, (large - inter) / large)


def near_duplicate(a: frozenset[str], b: frozenset[str], t: Thresholds, titled_alike: bool = False) -> bool:
    """Same story: nearly the same text, or one text is (almost) inside the other and not much longer.

    A different event that shares a template paragraph has its own facts on *both* sides, so neither
    Jaccard nor containment of the shorter text gets near the thresholds. Under different headlines a
    short text is most often a scraped template (a list of related links, a byline) rather than a
    re-post, so both texts must be long (``min_shingles_retitled``). Under the same headline (see
    ``same_title``) one text only has to hold ``same_title_containment`` of the other: the yicai version
    of a news item that appends the whole policy document is still the same story.
    """
    small = min(len(a), len(b))
    if small < t.min_shingles or (not titled_alike and small < t.min_shingles_retitled):
        return False
    sim = similarity(a, b)
    if sim.jaccard >= t.jaccard or (sim.containment >= t.containment and sim.extra <= t.max_extra):
        return True
    return titled_alike and sim.containment >= t.same_title_containment


# ---------------------------------------------------------------- decisions


@dataclass(frozen=True, slots=True)
class Stored:
    """What storage knows of the article with the same id."""

    content_hash: str
    title: str
    withdrawn: bool


@dataclass(frozen=True, slots=True)
class Candidate:
    """A stored live article of another key that may tell the same story."""

    article_id: str
    story_id: str
    content_hash: str
    canonical_url: str | None
    content_text: str = ""
    band_matches: int = 0
    title: str = ""
    source: str = ""  # the source's name


@dataclass(frozen=True, slots=True)
class New:
    story_id: str


@dataclass(frozen=True, slots=True)
class DuplicateOf:
    story_id: str
    article_id: str = ""
    how: str = "hash"  # hash | url | near


@dataclass(frozen=True, slots=True)
class Update:
    text_changed: bool = True  # False: only re-appeared (a withdrawn file came back with the same text)


@dataclass(frozen=True, slots=True)
class Unchanged:
    pass


Decision = New | DuplicateOf | Update | Unchanged


def same_title(a: str, b: str) -> bool:
    """Titles equal once width, case, spaces and punctuation are ignored (``丨`` vs ``｜``)."""
    return comparable(a) == comparable(b)


def titled_alike(a: str, b: str) -> bool:
    """The same headline, and one long enough to say something (``MIN_TITLE_CHARS``)."""
    ca = comparable(a)
    return len(ca) >= MIN_TITLE_CHARS and ca == comparable(b)


def decide(
    article: Article, stored: Stored | None, candidates: list[Candidate], thresholds: Thresholds | None = None,
    fp: Fingerprint | None = None,
) -> Decision:
    """Decide what an incoming article is, given the stored article of its key and candidate matches.

    ``content_hash`` already ignores whitespace and punctuation, so a re-scrape that only reflowed the text
    is Unchanged, and ``updated`` only moves for a real change of text or title. ``fp``, the article's own
    fingerprint when at hand, saves shingling its text again.
    """
    known = fp.comparable if fp is not None and fp.comparable else None
    t = thresholds or Thresholds()
    if stored is not None:
        changed = stored.content_hash != article.content_hash or not same_title(stored.title, article.title)
        if changed:
            return Update(text_changed=True)
        if stored.withdrawn:
            return Update(text_changed=False)
        return Unchanged()
    url = canonical_url(article.link)
    others = sorted((c for c in candidates if c.article_id != article.id), key=lambda c: c.article_id)
    for c in others:
        if url is not None and c.canonical_url == url:
            return DuplicateOf(c.story_id, c.article_id, "url")
    size: int | None = None
    for c in others:
        if c.content_hash == article.content_hash:
            # the same text under another headline is a re-post, unless it is a short text of the same
            # source: one site's template (a related-links list, a byline) under its different columns
            if size is None:
                size = len(grams_of(known)) if known is not None else len(shingle_strings(article.content_text))
            if same_title(c.title, article.title) or size >= t.min_shingles_retitled or c.source != article.source:
                return DuplicateOf(c.story_id, c.article_id, "hash")
    if t.enabled:
        mine: frozenset[str] | None = None  # only shingled when there is a text to verify against
        best: tuple[float, str, Candidate] | None = None
        for c in others:
            if not c.content_text:
                continue
            if mine is None:
                mine = frozenset(grams_of(known)) if known is not None else shingles(article.content_text)
            theirs = shingles(c.content_text)
            if near_duplicate(mine, theirs, t, titled_alike(article.title, c.title)):
                score = similarity(mine, theirs).jaccard
                if best is None or (score, c.article_id) > (best[0], best[1]):
                    best = (score, c.article_id, c)
        if best is not None:
            return DuplicateOf(best[2].story_id, best[2].article_id, "near")
    return New(story_id_for(article.id))
