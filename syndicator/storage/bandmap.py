"""The near-duplicate index of one bulk sync, in memory: band key → (article id, band number).

A cold sync stores every article's ~43 band keys. Kept in ``ix_article_bands_key``, each key is an insert at a
random place of one B-tree that outgrows any page cache: at 100,000 posts every batch rewrote most of the
index (16 GB written for 1.4 GB of database) and that was most of the sync. During a bulk sync the
repository drops that index, answers look-ups from this map, writes the rows themselves at the end in the
order of their primary key (``rows``), and builds the index once (one sort).

Why not a dict: 4.3 million Python ints and tuples cost ~100 bytes each, far over the memory budget. Here
every article has ``width`` consecutive places in one flat array of keys (8 bytes each), and an open-addressing
hash table (linear probing) holds places (4 bytes a slot): ~0.7 MB per 1,000 articles. Band keys are already
uniform hashes, so their low bits are the home slot.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence

#: Grow (double) the table when more than this share of its slots is taken: probe chains stay short.
MAX_LOAD = 0.7
_NO_KEY = -1  # pads an article with fewer bands than ``width``; band keys are never negative


class BandMap:
    """Band key → the (article id, band number) pairs stored under it; articles can be dropped again."""

    def __init__(self, width: int) -> None:
        self._width = width
        self._keys = array("q")  # article number * width + band number → key
        self._ids: list[str | None] = []  # article number → id (None once dropped)
        self._number: dict[str, int] = {}  # live article id → its number
        self._alloc(1 << 12)

    def _alloc(self, size: int) -> None:
        self._mask = size - 1
        self._table = array("I", bytes(4 * size))  # place + 1; 0 is an empty slot
        self._filled = 0

    def __len__(self) -> int:
        """Live articles."""
        return len(self._number)

    @property
    def slots(self) -> int:
        return self._mask + 1

    def reserve(self, articles: int) -> None:
        """Make room for ``articles`` more articles at once (growing step by step costs ~3 s at 100,000)."""
        needed = self._filled + articles * self._width
        if needed > self.slots * MAX_LOAD:
            self._grow(needed)

    def add(self, article_id: str, bands: Sequence[int]) -> None:
        """Index ``bands[i]`` as band ``i`` of ``article_id`` (replacing what it had)."""
        self.discard(article_id)
        if not bands:
            return
        if len(bands) > self._width:
            raise ValueError(f"{len(bands)} bands: this map holds at most {self._width} an article")
        number = len(self._ids)
        first = number * self._width
        if first + self._width >= 1 << 32:
            raise OverflowError("too many articles for one band map")
        self._ids.append(article_id)
        self._number[article_id] = number
        self._keys.extend(bands)
        if len(bands) < self._width:
            self._keys.extend([_NO_KEY] * (self._width - len(bands)))
        if (self._filled + len(bands)) > self.slots * MAX_LOAD:
            self._grow(self._filled + len(bands))
        table, mask = self._table, self._mask
        for place, key in enumerate(bands, start=first + 1):
            h = key & mask
            while table[h]:
                h = (h + 1) & mask
            table[h] = place
        self._filled += len(bands)

    def _grow(self, needed: int) -> None:
        old = self._table
        size = self.slots
        while size * MAX_LOAD < needed:
            size <<= 1
        self._alloc(size)
        table, mask, keys, ids, width = self._table, self._mask, self._keys, self._ids, self._width
        filled = 0
        for place in old:
            if place and ids[(place - 1) // width] is not None:  # dropped articles' places are not carried over
                h = keys[place - 1] & mask
                while table[h]:
                    h = (h + 1) & mask
                table[h] = place
                filled += 1
        self._filled = filled

    def __contains__(self, article_id: object) -> bool:
        return article_id in self._number

    def rows(self) -> Iterator[tuple[str, int, int]]:
        """Every live (article id, band number, key), by article id then band number: the order of the
        ``article_bands`` primary key, so writing them appends to its B-tree instead of inserting at random."""
        keys, width = self._keys, self._width
        for article_id in sorted(self._number):
            first = self._number[article_id] * width
            for band_no in range(width):
                key = keys[first + band_no]
                if key != _NO_KEY:
                    yield article_id, band_no, key

    def discard(self, article_id: str) -> None:
        """Forget ``article_id`` (withdrawn, or re-indexed): its slots stay taken until the table grows."""
        number = self._number.pop(article_id, None)
        if number is not None:
            self._ids[number] = None

    def get(self, key: int, default: Sequence[tuple[str, int]] = ()) -> Sequence[tuple[str, int]]:
        """The live (article id, band number) pairs indexed under ``key`` (``default`` when none)."""
        table, mask, keys, ids, width = self._table, self._mask, self._keys, self._ids, self._width
        h = key & mask
        out: list[tuple[str, int]] = []
        while place := table[h]:
            if keys[place - 1] == key:
                number, band_no = divmod(place - 1, width)
                aid = ids[number]
                if aid is not None:
                    out.append((aid, band_no))
            h = (h + 1) & mask
        return out or default
