"""Generated archive posts in the seed's format, for the crash and concurrency tests.

Deterministic for a given seed: the same folder every time, so two runs can be compared row by row.
Some posts repeat another post's body under another channel (duplicates), some carry a tag rule's word.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

CHANNELS = ["重庆频道", "河南频道", "四川频道", "湖北频道", "陕西频道", "广东频道", "山东频道", "江苏频道"]
WORDS = ["安全生产", "应急管理", "机构改革", "复产复工", "防灾减灾", "北碚", "云阳", "武隆", "大足", "忠县", "垫江"]
HAN = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处理府研质"


def post_text(rng: random.Random, n: int, when: datetime, channel: str, body: list[str]) -> str:
    title = "".join(rng.choice(HAN) for _ in range(rng.randint(8, 20))) + f"{n}"
    lines = ["---", f"title: {title}_{channel}", "author: wetech", f"date: {when:%Y-%m-%d- %H:%M}", "tags: ",
             "categories: ", "---", "<!-- more -->", *body, "（责任编辑：小编）"]
    return "\n".join(lines) + "\n"


def paragraph(rng: random.Random) -> str:
    text = "".join(rng.choice(HAN) for _ in range(rng.randint(40, 160)))
    if rng.random() < 0.3:
        cut = rng.randint(0, len(text))
        text = text[:cut] + rng.choice(WORDS) + text[cut:]
    return text + "。"


def write_posts(folder: Path, count: int, seed: int = 9) -> list[Path]:
    """``count`` posts into ``folder`` (about one in eight repeats an earlier body on another channel)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    start = datetime(2019, 1, 1, 8, 0)
    bodies: list[list[str]] = []
    paths = []
    for n in range(count):
        when = start + timedelta(minutes=37 * n)
        if bodies and rng.random() < 0.12:
            body = rng.choice(bodies)
        else:
            body = [paragraph(rng) for _ in range(rng.randint(2, 6))]
            bodies.append(body)
        path = folder / f"{n:05d}_{rng.randrange(16**8):08x}.md"
        path.write_text(post_text(rng, n, when, rng.choice(CHANNELS), body), encoding="utf-8")
        paths.append(path)
    return paths
