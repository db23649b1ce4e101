"""Characters and lines: decoding, whitespace, XML-invalid characters, images, HTML → lines.

Everything here is plain ``str``/``re`` work on purpose: bodies are mostly plain text with a few
``<img>`` tags, and a regex pass is ~50× faster than building a DOM for each file.
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from dataclasses import dataclass

import charset_normalizer

from ..types import word_chars

# XML 1.0 allows #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]; everything else
# (C0 controls, lone surrogates, U+FFFE/U+FFFF) goes. C1 controls and zero-width/format characters
# that only hide text go too.
_INVALID = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff"
    "\u00ad\u200b-\u200d\u2060-\u2064\ufeff\u202a-\u202e\u2066-\u2069]"
)
# Every horizontal space (tab, NBSP, ideographic space, en/em spaces, ZWNJ-free) → one ASCII space.
_SPACES = re.compile("[ \t\x85\u00a0\u1680\u2000-\u200a\u200e\u200f\u2028\u2029\u202f\u205f\u3000]+")
_NEWLINES = re.compile(r"\r\n?|[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")

IMG_TAG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_ATTR = re.compile(r"""([a-zA-Z_:][-\w:.]*)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""")
_URL_SIZE = re.compile(r"_w(\d+)_h(\d+)", re.IGNORECASE)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def clean_chars(text: str) -> str:
    """Drop XML-invalid and invisible characters; keep newlines."""
    return _INVALID.sub("", text)


def clean_inline(text: str) -> str:
    """One line or field: invalid characters gone, every run of spaces one space, stripped."""
    return _SPACES.sub(" ", _INVALID.sub("", _NEWLINES.sub("\n", text)).replace("\n", " ")).strip()


def normalize_newlines(text: str) -> str:
    """CRLF, lone CR (e.g. at line starts) and other line separators → ``\\n``."""
    return _NEWLINES.sub("\n", text)


def clean_line(line: str) -> str:
    """The fast path of ``clean_inline`` for a line of text that ``clean_chars`` already saw."""
    # str.split() splits on the spaces of _SPACES but the two direction marks (U+200E, U+200F), and also on
    # newlines and a few controls, which are gone from a line by now; in C it is three times faster (same result)
    if "\u200e" in line or "\u200f" in line:
        return _SPACES.sub(" ", line).strip()
    return " ".join(line.split())


def is_blank(line: str) -> bool:
    """Only whitespace (``str.strip`` knows every Unicode space; invisible characters are gone by now)."""
    return not line.strip()


def content_hash(text: str) -> str:
    """sha256 of the text with all whitespace and punctuation removed, after NFKC."""
    # strip first (NFKC of a short string is cheaper), NFKC, strip again what NFKC turned into punctuation;
    # what is NFKC already (nearly every text) comes out of NFKC unchanged, and of the second strip too
    canon = word_chars(text)
    if not unicodedata.is_normalized("NFKC", canon):
        canon = word_chars(unicodedata.normalize("NFKC", canon))
    return hashlib.sha256(canon.casefold().encode("utf-8", "surrogatepass")).hexdigest()


# ---------------------------------------------------------------- decoding


class Undecodable(Exception):
    """The bytes are not text (binary, or no encoding fits)."""


def decode(data: bytes) -> tuple[str, str | None]:
    """Bytes → text, and the name of the encoding when it was not UTF-8 (for the lint)."""
    head = data[:8192]
    if b"\x00" in head or _binary_ratio(head) > 0.05:
        raise Undecodable("binary file, not an article")
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("gb18030")
        try:
            data.decode("gbk")
            return text, "gbk"
        except UnicodeDecodeError:
            return text, "gb18030"
    except UnicodeDecodeError:
        pass
    # UTF-8 with a few broken sequences (a lone surrogate's CESU-8 bytes, a cut character): keep the article,
    # broken bytes become U+FFFD, rather than lose it or let a guesser read it as some other encoding.
    repaired = data.decode("utf-8", "replace")
    if repaired.count("\ufffd") <= max(16, len(repaired) // 1000):
        return repaired.removeprefix("\ufeff"), "utf-8-repaired"
    best = charset_normalizer.from_bytes(data).best()
    if best is None:
        raise Undecodable("undecodable bytes, not an article")
    return str(best), str(best.encoding)


_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 12, 13))


def _binary_ratio(head: bytes) -> float:
    if not head:
        return 0.0
    return (len(head) - len(head.translate(None, _CONTROL_BYTES))) / len(head)


# ---------------------------------------------------------------- images


@dataclass(frozen=True, slots=True)
class Image:
    src: str
    alt: str
    width: int | None
    height: int | None


def parse_img(tag: str) -> Image | None:
    attrs: dict[str, str] = {}
    for m in _ATTR.finditer(tag):
        attrs.setdefault(m.group(1).lower(), html.unescape(m.group(2) or m.group(3) or m.group(4) or ""))
    src = attrs.get("src", "").strip()
    if not src:
        return None
    return Image(
        src=src, alt=attrs.get("alt", ""), width=_int(attrs.get("width")), height=_int(attrs.get("height"))
    )


def _int(value: str | None) -> int | None:
    if not value:
        return None
    m = re.match(r"\s*(\d{1,6})", value)
    return int(m.group(1)) if m else None


def is_tracking(img: Image, min_size: int) -> bool:
    """Smaller than ``min_size`` by width/height attribute or by the ``_wNN_hNN`` size in the URL."""
    if min_size <= 0:
        return False
    sizes = [s for s in (img.width, img.height) if s is not None]
    m = _URL_SIZE.search(img.src)
    if m:
        sizes += [int(m.group(1)), int(m.group(2))]
    return any(s < min_size for s in sizes)


# ---------------------------------------------------------------- HTML → lines (network items)

_BLOCK_BREAK = re.compile(
    r"<\s*(?:br|/?p|/?div|/?li|/?h[1-6]|/?tr|/?blockquote|/?section|/?article|/?pre|/?ul|/?ol|/?table|hr)\b[^>]*>",
    re.IGNORECASE,
)
_DROP_ELEMENTS = re.compile(
    r"<(script|style|noscript|iframe|template)\b.*?(?:</\1\s*>|$)", re.IGNORECASE | re.DOTALL
)
_TAG = re.compile(r"<[^>]*>")


def html_to_lines(markup: str) -> list[str]:
    """A fragment of HTML → text lines; ``<img>`` tags are kept as they are (cleaned later)."""
    markup = _COMMENT.sub("", clean_chars(markup))
    markup = _DROP_ELEMENTS.sub("", markup)
    markup = _BLOCK_BREAK.sub("\n", markup)
    imgs: list[str] = []

    def keep(m: re.Match[str]) -> str:
        imgs.append(m.group(0))
        return f"\x00{len(imgs) - 1}\x00"

    markup = IMG_TAG.sub(keep, markup)
    markup = _TAG.sub("", markup)
    text = html.unescape(markup)  # maps NUL/invalid references to U+FFFD or "": only our markers hold NUL
    # entities may have produced '<' again: that is text now; put the images back on their own lines.
    text = re.sub(r"\x00(\d+)\x00", lambda m: "\n" + imgs[int(m.group(1))] + "\n", text)
    return clean_chars(normalize_newlines(text)).split("\n")


def strip_comments(text: str) -> str:
    return _COMMENT.sub("", text)
