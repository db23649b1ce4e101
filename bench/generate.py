"""A deterministic generator of seed-shaped archives, so benchmark runs on any machine read the same posts.

The shape follows the real corpus (Hexo posts scraped from regional news channels): a title with a
``_<channel>`` suffix on about half the posts, ``author: wetech`` or ``None``, the seed's date shapes
(``2019-02-25- 06:24``, ``2019-02-25 06:24:00`` …, a few junk values), tags empty or as a comma-separated
string or a YAML list, Zipf-distributed, bodies of 300–3,000 Chinese characters wrapped in the seed's
boilerplate (``原标题：``, ``<!-- more -->``, a tracking image, ``[责任编辑：…]``), and ~10 % near-duplicates
(another post's body with a few characters changed, under another channel, keeping its headline). Headlines
are as distinct as the real corpus's (2,329 of 2,353); version 1 cut them from a pool of 4,000 sentences, so
at 10,000 posts only 3,615 were distinct and every post met up to 20 unrelated same-headline candidates.

Every file is valid YAML front matter, so a static site generator can build the same archive (broken YAML
or GBK files abort Hugo's build: the real corpus is where those are measured).
Same ``(n, seed)`` → byte-identical files; the generator only keeps a small sentence pool in memory.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

VERSION = 2  # bump when the output changes, so cached archives are regenerated
DEFAULT_SEED = 8

CHANNELS = (
    "江西频道", "安徽频道", "广东频道", "河北频道", "吉林频道", "辽宁频道", "河南频道", "甘肃频道", "黑龙江频道",
    "陕西频道", "重庆频道", "江苏频道", "湖北频道", "海南频道", "山东频道", "湖南频道", "青岛频道", "文化频道",
    "凤凰时尚", "凤凰网",
)
# Common characters of news prose; words are drawn from pairs of them.
_CHARS = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方"
    "后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它"
    "合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条"
    "只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资"
    "边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处府研质市省县镇街企"
    "安全生产应急救援改革推进落实责任监管检查整治防范风险隐患事故复工验收项目发展经济城乡建设服务保障环境教育医疗"
)
_PUNCT = "，，，、。"
_EDITORS = ("蒲双静", "王晓", "李明", "张婷", "刘洋", "陈晨", "杨帆", "赵磊")
_TRACKER = '<img align="center" border="0" src="http://p2.ifengimg.com/a/2016/0810/204c433878d5cf9size1_w16_h16.png" />'
_JUNK_DATES = ("在售", "待售", "评论", "微信扫一扫二维码", "999RMB")


@dataclass(frozen=True, slots=True)
class Post:
    """One generated post: its file name and bytes (and, for the benchmark's own checks, its tags)."""

    name: str
    data: bytes
    tags: tuple[str, ...]
    duplicate_of: int | None


class _Zipf:
    """Zipf(s) over ``k`` ranks by inverse CDF (deterministic with the caller's Random)."""

    def __init__(self, k: int, s: float = 1.1) -> None:
        weights = [1.0 / (r ** s) for r in range(1, k + 1)]
        self.cdf = list(itertools.accumulate(weights))
        self.total = self.cdf[-1]

    def draw(self, rnd: random.Random) -> int:
        return min(bisect.bisect_left(self.cdf, rnd.random() * self.total), len(self.cdf) - 1)


class Generator:
    """Posts ``0 … n-1`` of the archive for ``seed``; post ``i`` depends only on (seed, i) and earlier bodies."""

    def __init__(self, seed: int = DEFAULT_SEED, tags: int = 400) -> None:
        self.seed = seed
        rnd = random.Random(f"pool-{seed}")
        self.sentences = [self._sentence(rnd) for _ in range(4000)]
        self.tag_names = self._tag_names(rnd, tags)
        self.zipf = _Zipf(len(self.tag_names))
        self.start = datetime(2017, 3, 1, 6, 0)

    @staticmethod
    def _word(rnd: random.Random, lo: int = 2, hi: int = 4) -> str:
        return "".join(rnd.choice(_CHARS) for _ in range(rnd.randint(lo, hi)))

    def _sentence(self, rnd: random.Random) -> str:
        parts = []
        for _ in range(rnd.randint(2, 5)):
            parts.append("".join(self._word(rnd) for _ in range(rnd.randint(2, 6))))
            parts.append(rnd.choice(_PUNCT[:4]))
        parts[-1] = "。"
        return "".join(parts)

    def _tag_names(self, rnd: random.Random, k: int) -> list[str]:
        names: dict[str, None] = {}
        while len(names) < k:
            names[self._word(rnd, 2, 4)] = None
        return list(names)

    def _body(self, rnd: random.Random, length: int) -> list[str]:
        paras: list[str] = []
        size = 0
        while size < length:
            para = "".join(rnd.choice(self.sentences) for _ in range(rnd.randint(1, 4)))
            paras.append(para)
            size += len(para)
        return paras

    def _date(self, rnd: random.Random, i: int) -> str:
        # ten minutes apart on average, roughly in file order (100,000 posts span about two years)
        when = self.start + timedelta(minutes=i * 10 + rnd.randint(0, 59))
        r = rnd.random()
        if r < 0.54:
            return when.strftime("%Y-%m-%d- %H:%M")
        if r < 0.90:
            return when.strftime("%Y-%m-%d %H:%M:%S")
        if r < 0.91:
            return when.strftime("%Y-%m-%d- %H:%M:%S")
        if r < 0.92:
            return when.strftime("%Y.%m.%d %H:%M")
        return rnd.choice(_JUNK_DATES)  # the real date is then only in the body

    def _headline(self, i: int) -> str:
        """A headline of its own for post ``i`` (its own Random: the other draws stay as in version 1)."""
        rnd = random.Random(f"headline-{self.seed}-{i}")
        return "".join(self._word(rnd) for _ in range(rnd.randint(4, 8)))[:28]

    def post(self, i: int, bodies: dict[int, tuple[str, list[str]]]) -> Post:
        rnd = random.Random(f"post-{self.seed}-{i}")
        duplicate_of = None
        if i > 10 and rnd.random() < 0.10:
            duplicate_of = rnd.randrange(max(0, i - 500), i)
        if duplicate_of is not None and duplicate_of in bodies:
            headline, paras = bodies[duplicate_of]
            paras = list(paras)
            k = rnd.randrange(len(paras))
            p = paras[k]
            pos = rnd.randrange(len(p))
            paras[k] = p[:pos] + rnd.choice(_CHARS) + p[pos + 1 :]  # a near-duplicate: one character differs
        else:
            duplicate_of = None
            paras = self._body(rnd, rnd.randint(300, 3000))
            headline = self._headline(i)
        bodies[i] = (headline, paras)
        channel = rnd.choice(CHANNELS) if rnd.random() < 0.55 else None
        title = f"{headline}_{channel}" if channel else headline
        tags = tuple(dict.fromkeys(self.tag_names[self.zipf.draw(rnd)] for _ in range(rnd.randint(1, 4))))
        shape = rnd.random()
        if shape < 0.4:
            tag_line, tags = "tags: ", ()
        elif shape < 0.7:
            tag_line = "tags: " + ",".join(tags)
        else:
            tag_line = "tags: [" + ", ".join(tags) + "]"
        author = "wetech" if rnd.random() < 0.72 else "None"
        date = self._date(rnd, i)
        lead = paras[0][:60]
        lines = [
            "---", f"title: {title}", f"author: {author}", f"date: {date}", tag_line, "categories: ", "---",
            "原标题：", "<!-- more -->", "                ", _TRACKER, "                ", "            ",
            f"原标题：{headline}{lead}", "原标题：", headline, *paras,
            f"[责任编辑：{rnd.choice(_EDITORS)}]", "            ", "",
        ]
        if date in _JUNK_DATES:
            lines.insert(len(lines) - 3, f"发布时间：{(self.start + timedelta(days=i % 700)).strftime('%Y-%m-%d %H:%M')}")
        name = f"{i:06d}_{random.Random(f'name-{self.seed}-{i}').getrandbits(64):016x}.md"
        return Post(name, "\n".join(lines).encode("utf-8"), tags, duplicate_of)

    def posts(self, n: int, start: int = 0) -> Iterator[Post]:
        """Posts ``start … start+n-1``; keeps only the last 500 bodies (the near-duplicate window)."""
        bodies: dict[int, tuple[str, list[str]]] = {}
        # near-duplicates copy one of the previous 500 posts: rebuild that window first
        for j in range(max(0, start - 500), start):
            self.post(j, bodies)
        for i in range(start, start + n):
            yield self.post(i, bodies)
            bodies.pop(i - 500, None)


def generate(dest: Path, n: int, seed: int = DEFAULT_SEED) -> Path:
    """Write the ``n``-post archive for ``seed`` into ``dest/posts`` (reused when already complete)."""
    posts_dir = dest / "posts"
    stamp = dest / "archive.json"
    meta = {"generator": VERSION, "n": n, "seed": seed}
    if stamp.exists() and json.loads(stamp.read_text()) == meta:
        return posts_dir
    posts_dir.mkdir(parents=True, exist_ok=True)
    for old in os.listdir(posts_dir):
        os.unlink(posts_dir / old)
    for post in Generator(seed).posts(n):
        (posts_dir / post.name).write_bytes(post.data)
    stamp.write_text(json.dumps(meta))
    return posts_dir


def extra_post(n: int, k: int, seed: int = DEFAULT_SEED) -> Post:
    """A post that is not in the ``n``-post archive (the benchmark's "one new file")."""
    gen = Generator(seed)
    bodies: dict[int, tuple[str, list[str]]] = {}
    return gen.post(n + 1000 + k, bodies)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__.splitlines()[0])
    ap.add_argument("dest", type=Path)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = ap.parse_args(argv)
    print(generate(args.dest, args.n, args.seed))


if __name__ == "__main__":
    main()
