"""Labelled evaluation of story clustering, and the cost of adding one article to a large database.

    python -m bench.stories                       # quality (synthetic + real groups) and timing
    python -m bench.stories --quality             # only precision/recall
    python -m bench.stories --timing --sizes 1000,10000,100000

Quality goes through the real pipeline: articles are stored one batch at a time with
``Repository.save_batch`` (the persistent LSH index, candidate look-up, verification), then the stories
in the database are compared with the labels, pair by pair.

* Synthetic set (deterministic for a seed): stories of sentences drawn from the corpus (or from a
  Zipf pseudo-language when the corpus is absent), each re-posted 0–3 times with sentences dropped or
  changed, a new headline, another channel, an editor line or respaced punctuation; and hard negatives:
  different events that share two standard paragraphs, some under the same column headline.
* Real groups: the whole corpus is synced from ``../shared/corpus/posts`` and every group of
  ``near_duplicate_groups.tsv`` is checked; merges outside the groups are listed for a human.

Timing: a database is filled with N stored articles, then ``Repository.find_duplicates`` (fingerprint,
index look-up, verification: what one added article costs) and one ``save_batch`` are timed for probes
that are near-duplicates of stored articles and probes that are new. Medians in milliseconds.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from syndicator import dedup
from syndicator.config import Settings
from syndicator.normalize import normalize_item
from syndicator.normalize.text import content_hash
from syndicator.storage.engine import open_database
from syndicator.storage.repo import FileState, ItemChange, Repository
from syndicator.types import Article, RawItem, article_id

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
CHANNELS = ("重庆频道", "吉林频道", "湖北频道", "凤凰资讯", "房产北京", "房产武汉", "江苏频道", "一财资讯")
COLUMNS = ("收盘|", "基排辣评|", "午市盘点丨", "投资日历 | ")
_SPLIT = re.compile(r"(?<=[。！？])|\n+")


# ---------------------------------------------------------------- sentences


def corpus_sentences(corpus: Path, limit: int | None = None) -> list[str]:
    """Sentences (15–150 characters) of the corpus posts, normalized as sync does, deduplicated."""
    settings = Settings()
    seen: dict[str, None] = {}
    for path in sorted((corpus / "posts").iterdir())[:limit]:
        raw = RawItem(source="bench", key=path.name, timezone="Asia/Shanghai", data=path.read_bytes(), path=str(path))
        try:
            text = normalize_item(raw, settings.normalize, settings.tags).content_text
        except Exception:
            continue
        for s in _SPLIT.split(text):
            s = s.strip()
            if 15 <= len(s) <= 150:
                seen.setdefault(s, None)
    return list(seen)


def zipf_sentences(n: int, rnd: random.Random) -> list[str]:
    """A pseudo-language: words of 2–4 common ideographs, drawn with Zipf frequencies (shared phrases)."""
    chars = [chr(c) for c in range(0x4E00, 0x4E00 + 1500)]
    words = ["".join(rnd.choice(chars) for _ in range(rnd.choice((2, 2, 3, 4)))) for _ in range(6000)]
    cum = list(itertools.accumulate(1 / (i + 1) for i in range(len(words))))
    return ["".join(rnd.choices(words, cum_weights=cum, k=rnd.randint(8, 30))) + "。" for _ in range(n)]


# ---------------------------------------------------------------- synthetic set


@dataclass(frozen=True, slots=True)
class Labelled:
    article: Article
    story: int


def make_article(key: str, title: str, paragraphs: Sequence[str], channel: str, published: datetime,
                 source: str = "synthetic") -> Article:
    text = "\n".join(paragraphs)
    return Article(
        source=source, key=key, id=article_id(source, key), title=title, original_title=None, channel=channel,
        published=published, updated=None, date_source="front_matter", author=None, submitter=None,
        summary=text[:80], content_html="".join(f"<p>{p}</p>" for p in paragraphs), content_text=text, link=None,
        source_path=key, tags=(channel,), content_hash=content_hash(text or title),
    )


def _mutate(paras: list[str], rnd: random.Random) -> list[str]:
    """Edit a sentence: change some characters and the numbers, the way re-posts differ."""
    i = rnd.randrange(len(paras))
    chars = list(paras[i])
    for _ in range(max(1, len(chars) // 12)):
        j = rnd.randrange(len(chars))
        chars[j] = chr(0x4E00 + rnd.randrange(3000))
    out = list(paras)
    out[i] = re.sub(r"\d+", lambda m: str(int(m.group()) + 1), "".join(chars))
    return out


def synthetic_set(sentences: Sequence[str], stories: int = 400, seed: int = 7) -> list[Labelled]:
    """Stories with their re-posts, plus hard negatives; labels are story numbers."""
    rnd = random.Random(seed)
    pool = list(sentences)
    rnd.shuffle(pool)
    templates = ["".join(pool.pop() for _ in range(3)) for _ in range(6)]  # standard policy paragraphs
    base_time = datetime(2019, 2, 1, tzinfo=UTC)
    out: list[Labelled] = []
    for n in range(stories):
        kind = rnd.random()
        event = [pool.pop() for _ in range(rnd.randint(5, 14))]
        title = pool.pop()[: rnd.randint(10, 24)]
        if kind < 0.45:  # a hard negative: standard paragraphs around a different event
            shared = rnd.sample(templates, 2)
            paras = [shared[0], *event, shared[1]]
            if kind < 0.15:  # … under a recurring column name
                title = rnd.choice(COLUMNS) + title
        else:
            paras = event
        published = base_time + timedelta(hours=n)
        channel = rnd.choice(CHANNELS)
        out.append(Labelled(make_article(f"s{n}/0.md", title, paras, channel, published), n))
        for v in range(1, rnd.choice((0, 1, 1, 2, 3)) + 1):
            vp, vt, vc = list(paras), title, rnd.choice([c for c in CHANNELS if c != channel])
            for op in rnd.sample(("drop", "change", "headline", "editor", "respace", "add"), rnd.randint(1, 3)):
                if op == "drop" and len(vp) > 4:
                    for _ in range(rnd.choice((1, 1, 2))):
                        del vp[rnd.randrange(1, len(vp))]
                elif op == "change":
                    vp = _mutate(vp, rnd)
                elif op == "headline":
                    vt = pool.pop()[: rnd.randint(10, 24)]
                elif op == "editor":
                    vp.append(f"[责任编辑：{pool.pop()[:3]}]")
                elif op == "respace":
                    vp = [p.replace("，", ", ").replace("。", "。 ") for p in vp]
                elif op == "add":
                    vp.insert(rnd.randrange(len(vp) + 1), pool.pop())
            when = published + timedelta(minutes=rnd.randint(5, 3000))
            out.append(Labelled(make_article(f"s{n}/{v}.md", vt, vp, vc, when), n))
    rnd.shuffle(out)
    return out


# ---------------------------------------------------------------- storing and scoring


def store(repo: Repository, articles: Iterable[Article], batch: int = 200) -> None:
    """Store articles through save_batch, in the given order, one transaction per ``batch``."""
    chunk: list[ItemChange] = []
    sources: set[str] = set()
    for a in articles:
        if a.source not in sources:
            repo.ensure_source(a.source, "archive", None)
            sources.add(a.source)
        chunk.append(ItemChange(a.key, FileState(1, 1, a.content_hash), a))
        if len(chunk) >= batch:
            _flush(repo, chunk)
    _flush(repo, chunk)


def _flush(repo: Repository, chunk: list[ItemChange]) -> None:
    by_source: dict[str, list[ItemChange]] = {}
    for c in chunk:
        assert c.article is not None
        by_source.setdefault(c.article.source, []).append(c)
    for source, changes in by_source.items():
        repo.save_batch(source, changes)
    chunk.clear()


def story_of(repo: Repository) -> dict[str, str]:
    """article id → story id, for every live article."""
    return {str(mb["id"]): str(st["story_id"]) for st in repo.iter_stories() for mb in st["members"]}  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Score:
    precision: float
    recall: float
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int


def pair_score(labels: dict[str, int], predicted: dict[str, str]) -> Score:
    def pairs(groups: dict[str, object]) -> set[frozenset[str]]:
        by: dict[object, list[str]] = {}
        for k, g in groups.items():
            by.setdefault(g, []).append(k)
        return {frozenset(p) for members in by.values() for p in itertools.combinations(sorted(members), 2)}

    true = pairs(dict(labels))
    pred = pairs({k: v for k, v in predicted.items() if k in labels})
    tp = len(true & pred)
    return Score(tp / len(pred) if pred else 1.0, tp / len(true) if true else 1.0, len(true), len(pred), tp)


def evaluate_synthetic(sentences: Sequence[str], thresholds: dedup.Thresholds, stories: int, seed: int) -> Score:
    items = synthetic_set(sentences, stories, seed)
    with tempfile.TemporaryDirectory() as tmp:
        repo = Repository(open_database(f"sqlite:///{tmp}/bench.db"), thresholds)
        store(repo, (i.article for i in items))
        return pair_score({i.article.id: i.story for i in items}, story_of(repo))


@dataclass(frozen=True, slots=True)
class RealResult:
    groups: int
    merged: int
    apart: list[str]
    outside: list[tuple[str, str]]  # (story title, member titles) merged but in no group together


def evaluate_corpus(corpus: Path, thresholds: dedup.Thresholds) -> RealResult:
    """Sync the whole corpus (in file order) and check the groups of near_duplicate_groups.tsv."""
    settings = Settings()
    groups: dict[str, list[str]] = {}
    with (corpus / "near_duplicate_groups.tsv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            groups.setdefault(row["group"], []).append(row["file"])
    articles = []
    for path in sorted((corpus / "posts").iterdir()):
        raw = RawItem(source="corpus", key=f"posts/{path.name}", timezone="Asia/Shanghai", data=path.read_bytes(),
                      path=str(path))
        try:
            articles.append(normalize_item(raw, settings.normalize, settings.tags))
        except Exception:
            continue
    with tempfile.TemporaryDirectory() as tmp:
        repo = Repository(open_database(f"sqlite:///{tmp}/bench.db"), thresholds)
        store(repo, articles, batch=500)
        story = story_of(repo)
        stories = list(repo.iter_stories(min_members=2))
    by_key = {a.key: a.id for a in articles}
    apart = [g for g, files in groups.items() if len({story.get(by_key.get(f, ""), f) for f in files}) > 1]
    grouped = {frozenset(p) for files in groups.values() for p in itertools.combinations(files, 2)}
    key_of = {a.id: a.key for a in articles}
    outside = []
    for st in stories:
        keys = [key_of[str(mb["id"])] for mb in st["members"]]  # type: ignore[attr-defined]
        if any(frozenset(p) not in grouped for p in itertools.combinations(keys, 2)):
            outside.append((str(st["title"]), " | ".join(str(mb["title"]) for mb in st["members"])))  # type: ignore[attr-defined]
    return RealResult(len(groups), len(groups) - len(apart), apart, outside)


# ---------------------------------------------------------------- timing


def timing(sentences: Sequence[str], size: int, thresholds: dedup.Thresholds, probes: int = 200,
           seed: int = 11) -> dict[str, float]:
    """Fill a database with ``size`` articles, then time what adding one more costs."""
    rnd = random.Random(seed)
    base_time = datetime(2019, 1, 1, tzinfo=UTC)

    def filler(n: int) -> Article:
        paras = [f"第{n}号。", *rnd.sample(sentences, rnd.randint(4, 10))]
        return make_article(f"f{n}.md", rnd.choice(sentences)[:20], paras, rnd.choice(CHANNELS),
                            base_time + timedelta(minutes=n), source="fill")

    with tempfile.TemporaryDirectory() as tmp:
        repo = Repository(open_database(f"sqlite:///{tmp}/bench.db"), thresholds)
        started = time.perf_counter()
        stored: list[Article] = []
        repo.ensure_source("fill", "archive", None)
        for start in range(0, size, 2000):
            chunk = [filler(n) for n in range(start, min(size, start + 2000))]
            repo.bulk_load("fill", chunk)
            stored.extend(rnd.sample(chunk, min(len(chunk), 20)))
        fill_seconds = time.perf_counter() - started
        probe_articles = []
        for i in range(probes):
            if i % 2 == 0:  # a re-post of a stored article with a sentence dropped and another channel
                src = rnd.choice(stored)
                paras = src.content_text.split("\n")
                del paras[rnd.randrange(1, len(paras))]
                probe_articles.append(replace(make_article(f"p{i}.md", src.title, paras, "凤凰资讯",
                                                           src.published, source="probe")))
            else:
                probe_articles.append(filler(size + 10_000 + i))
        lookup, lookup_cpu, save, hits = [], [], [], 0
        repo.ensure_source("probe", "archive", None)
        for a in probe_articles:
            t0, c0 = time.perf_counter(), time.process_time()
            decision = repo.find_duplicates(a)
            lookup.append((time.perf_counter() - t0) * 1000)
            lookup_cpu.append((time.process_time() - c0) * 1000)
            hits += isinstance(decision, dedup.DuplicateOf)
            t0 = time.perf_counter()
            repo.save_batch(a.source, [ItemChange(a.key, FileState(1, 1, a.content_hash), a)])
            save.append((time.perf_counter() - t0) * 1000)
    return {
        "size": size, "fill_s": fill_seconds, "lookup_median_ms": statistics.median(lookup),
        "lookup_cpu_median_ms": statistics.median(lookup_cpu),
        "lookup_p90_ms": statistics.quantiles(lookup, n=10)[-1], "save_median_ms": statistics.median(save),
        "found_reposts": hits / (probes // 2),
    }


def compare_libraries(sentences: Sequence[str], n: int = 500, seed: int = 5) -> dict[str, float]:
    """ms per article to MinHash the same shingles with rensa and with datasketch (when installed),
    and the mean absolute error of each one's Jaccard estimate on re-post pairs."""
    import rensa

    rnd = random.Random(seed)
    texts = ["".join(rnd.sample(sentences, 12)) for _ in range(n)]
    pairs = [(t, t[: len(t) * 3 // 4] + "".join(rnd.sample(sentences, 2))) for t in texts[:100]]
    out: dict[str, float] = {}

    def exact(a: str, b: str) -> float:
        x, y = dedup.shingle_strings(a), dedup.shingle_strings(b)
        return len(x & y) / len(x | y)

    grams = [sorted(dedup.shingle_strings(t)) for t in texts]
    t0 = time.perf_counter()
    for g in grams:
        r = rensa.RMinHash(num_perm=dedup.NUM_PERM, seed=dedup.SEED)
        r.update(g)
        r.digest()
    out["rensa_ms"] = (time.perf_counter() - t0) * 1000 / n

    def rensa_j(a: str, b: str) -> float:
        ma, mb = (rensa.RMinHash(num_perm=dedup.NUM_PERM, seed=dedup.SEED) for _ in range(2))
        ma.update(sorted(dedup.shingle_strings(a)))
        mb.update(sorted(dedup.shingle_strings(b)))
        return float(ma.jaccard(mb))

    out["rensa_err"] = statistics.mean(abs(rensa_j(a, b) - exact(a, b)) for a, b in pairs)
    try:
        import datasketch  # type: ignore[import-untyped]
    except ImportError:
        return out
    t0 = time.perf_counter()
    for g in grams:
        d = datasketch.MinHash(num_perm=dedup.NUM_PERM, seed=dedup.SEED)
        d.update_batch([x.encode() for x in g])
        d.digest()
    out["datasketch_ms"] = (time.perf_counter() - t0) * 1000 / n

    def ds_j(a: str, b: str) -> float:
        da, db = (datasketch.MinHash(num_perm=dedup.NUM_PERM, seed=dedup.SEED) for _ in range(2))
        da.update_batch([x.encode() for x in dedup.shingle_strings(a)])
        db.update_batch([x.encode() for x in dedup.shingle_strings(b)])
        return float(da.jaccard(db))

    out["datasketch_err"] = statistics.mean(abs(ds_j(a, b) - exact(a, b)) for a, b in pairs)
    return out


# ---------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.stories", description=__doc__.split("\n")[0])
    p.add_argument("--quality", action="store_true", help="only precision/recall")
    p.add_argument("--timing", action="store_true", help="only the time to add one article")
    p.add_argument("--sizes", default="1000,10000,100000", help="stored articles for --timing (comma list)")
    p.add_argument("--stories", type=int, default=400, help="synthetic stories (each with 0-3 re-posts)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--corpus", type=Path, default=CORPUS, help="the real corpus (default ../shared/corpus)")
    p.add_argument("--zipf", action="store_true", help="synthetic text from a Zipf pseudo-language")
    p.add_argument("--libraries", action="store_true", help="only: rensa vs datasketch (pip install datasketch)")
    args = p.parse_args(argv)
    both = not (args.quality or args.timing)
    thresholds = dedup.Thresholds(**Settings.model_validate(_config()).dedup.model_dump())
    have_corpus = (args.corpus / "posts").is_dir()
    if args.zipf or not have_corpus:
        why = "" if args.zipf else f" (no corpus at {args.corpus})"
        print(f"sentences: Zipf pseudo-language{why}")
        sentences = zipf_sentences(60_000, random.Random(args.seed))
    else:
        sentences = corpus_sentences(args.corpus)
        print(f"sentences: {len(sentences)} from {args.corpus}/posts")
    print(f"thresholds: {thresholds}")
    if args.libraries:
        lib = compare_libraries(sentences)
        print("MinHash per article (ms) and mean |estimated - exact Jaccard| on re-post pairs:")
        for name in ("rensa", "datasketch"):
            if f"{name}_ms" in lib:
                print(f"  {name:<10} {lib[f'{name}_ms']:.3f} ms  error {lib[f'{name}_err']:.3f}")
            else:
                print(f"  {name:<10} not installed")
        return 0
    if args.quality or both:
        t0 = time.perf_counter()
        s = evaluate_synthetic(sentences, thresholds, args.stories, args.seed)
        print(f"synthetic: precision={s.precision:.4f} recall={s.recall:.4f} true_pairs={s.true_pairs} "
              f"predicted_pairs={s.predicted_pairs} correct={s.correct_pairs} ({time.perf_counter() - t0:.1f}s)")
        if have_corpus:
            r = evaluate_corpus(args.corpus, thresholds)
            print(f"real groups: {r.merged}/{r.groups} merged; apart: {', '.join(r.apart) or 'none'}")
            print(f"real stories merged outside the groups file (check by hand): {len(r.outside)}")
            for title, members in r.outside:
                print(f"  {title[:40]}  <=  {members[:160]}")
        else:
            print(f"real groups: skipped (no corpus at {args.corpus})")
    if args.timing or both:
        for size in (int(x) for x in args.sizes.split(",")):
            r2 = timing(sentences, size, thresholds)
            print(f"stored={size:>7}: lookup median {r2['lookup_median_ms']:.2f} ms (p90 {r2['lookup_p90_ms']:.2f}, "
                  f"cpu median {r2['lookup_cpu_median_ms']:.2f}), "
                  f"save one median {r2['save_median_ms']:.2f} ms, re-posts found {r2['found_reposts']:.0%}, "
                  f"fill {r2['fill_s']:.0f}s")
            sys.stdout.flush()
    return 0


def _config() -> dict[str, object]:
    """The shipped config.yaml's ``dedup:`` section (the thresholds being measured)."""
    import yaml

    data = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    return {"dedup": data.get("dedup", {})}


if __name__ == "__main__":
    sys.exit(main())
