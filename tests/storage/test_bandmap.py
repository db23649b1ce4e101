"""The bulk sync's in-memory band index answers as a dict of lists would, through growth and removals."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syndicator.storage.bandmap import BandMap

# few distinct keys with the same low bits: long probe chains and shared keys are the cases that matter
KEYS = st.one_of(st.integers(0, 2**63 - 1), st.sampled_from([5, 5 + 4096, 5 + 8192, 2**62 + 5, 7]))
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from([f"a{i}" for i in range(40)]), st.lists(KEYS, max_size=45)),
        st.tuples(st.just("drop"), st.sampled_from([f"a{i}" for i in range(40)]), st.just([])),
    ),
    max_size=120,
)


def model_get(model: dict[str, list[int]], key: int) -> list[tuple[str, int]]:
    return sorted((aid, i) for aid, bands in model.items() for i, k in enumerate(bands) if k == key)


@settings(max_examples=150, deadline=None)
@given(OPS, st.integers(0, 100))
def test_answers_as_a_dict_of_lists(ops: list[tuple[str, str, list[int]]], expected: int) -> None:
    bands = BandMap(45)
    bands.reserve(expected)
    model: dict[str, list[int]] = {}
    for op, aid, keys in ops:
        if op == "add":
            bands.add(aid, keys)
            model.pop(aid, None)
            if keys:
                model[aid] = keys
        else:
            bands.discard(aid)
            model.pop(aid, None)
    assert len(bands) == len(model)
    for key in {k for keys in model.values() for k in keys} | {5, 7, 12345}:
        assert sorted(bands.get(key)) == model_get(model, key)
    absent = next(k for k in range(2**62, 2**62 + 100) if not model_get(model, k))
    assert bands.get(absent, ()) == ()
    # the rows written at the end of a bulk sync: every live band, in primary key order
    assert list(bands.rows()) == sorted((aid, i, k) for aid, keys in model.items() for i, k in enumerate(keys))
    assert all(aid in bands for aid in model) and not any(f"a{i}" in bands for i in range(40) if f"a{i}" not in model)


def test_grows_past_its_first_size_and_keeps_every_key() -> None:
    bands = BandMap(43)
    first = bands.slots
    for n in range(first):  # 43 keys an article: many doublings
        bands.add(f"{n:016x}", [(n << 16) + i * 7919 + 3 for i in range(43)])
        if n == 5:
            bands.discard(f"{n:016x}")  # a dropped article is not carried into the bigger table
    assert bands.slots > first * 8
    for n in range(0, first, 97):
        assert bands.get((n << 16) + 3 * 7919 + 3) == [(f"{n:016x}", 3)]
    assert bands.get((5 << 16) + 3) == ()
    reserved = BandMap(43)
    reserved.reserve(first)
    assert reserved.slots == bands.slots  # made room at once: no growing step by step


def test_refuses_more_bands_than_its_width() -> None:
    bands = BandMap(43)
    bands.add("x", list(range(42)))  # fewer is fine (an article without a headline key)
    assert bands.get(41) == [("x", 41)]
    with pytest.raises(ValueError):
        bands.add("y", list(range(44)))
