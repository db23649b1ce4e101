"""Each cleaning rule, with a real line from the corpus."""

from __future__ import annotations

import pytest

from syndicator.config import NormalizeSettings, TagSettings
from syndicator.normalize import inspect_item, normalize_item
from syndicator.normalize.rules import compile_rules
from syndicator.normalize.tags import slugify
from syndicator.normalize.title import strip_title
from syndicator.types import RawItem

from .conftest import MTIME, raw_file

LEAD = "针对春节后企业复产复工和返程客流进入高峰期的情况，全市应急系统以有效防范和坚决遏制重特大事故为重点。"


def post(body: str, title: str = "标题", author: str = "wetech", date: str = "2019-02-25- 06:24") -> str:
    return f"---\ntitle: {title}\nauthor: {author}\ndate: {date}\ntags: \ncategories: \n---\n{body}"


@pytest.mark.parametrize(
    ("title", "clean", "channel"),
    [
        (
            "重庆市应急系统扎实推进安全生产形势持续稳定好转_重庆频道",
            "重庆市应急系统扎实推进安全生产形势持续稳定好转",
            "重庆频道",
        ),
        (
            "@四川人，1日起，这些新规将影响你的生活四川频道",
            "@四川人，1日起，这些新规将影响你的生活",
            "四川频道",
        ),
        (
            "江北新区今年还要再建300个智能公交站台——房产南京",
            "江北新区今年还要再建300个智能公交站台",
            "房产南京",
        ),
        ("一二线城市二手房价格回调——凤凰网房产北京", "一二线城市二手房价格回调", "房产北京"),
        (
            "刘爽：每次时尚之选都是一次春暖花开前的启航_试用中心_凤凰时尚",
            "刘爽：每次时尚之选都是一次春暖花开前的启航",
            "凤凰时尚",
        ),
        ("“雷峰塔”下面到底隐藏着什么秘密？_凤凰网", "“雷峰塔”下面到底隐藏着什么秘密？", "凤凰网"),
        ("退休警察不拿工资成“校警”护校12年_凤凰湖北", "退休警察不拿工资成“校警”护校12年", "凤凰湖北"),
        ("停止审批系谣言监管层倾向给这些游戏发版号_", "停止审批系谣言监管层倾向给这些游戏发版号", None),
        ("思想_文化频道_凤凰网", "思想", "凤凰网"),
        ("娱乐频道", "娱乐频道", None),  # a channel's own page: nothing left to strip to
        (
            "创造新的更大奇迹——党的十八届三中全会召开五周年述评",
            "创造新的更大奇迹——党的十八届三中全会召开五周年述评",
            None,
        ),
    ],
)
def test_title_suffixes(title: str, clean: str, channel: str | None, rules: NormalizeSettings) -> None:
    got_title, got_channel, _unknown = strip_title(title, compile_rules(rules))
    assert (got_title, got_channel) == (clean, channel)


def test_original_title_inline_teaser_and_split(rules: NormalizeSettings, tags: TagSettings) -> None:
    body = (
        "原标题：\n<!-- more -->\n原标题：全市应急系统扎实推进安全生产形势持续稳定好转" + LEAD[:30] + "\n"
        "原标题：\n全市应急系统扎实推进安全生产形势持续稳定好转\n" + LEAD + "\n"
    )
    a = normalize_item(raw_file(post(body)), rules, tags)
    assert a.original_title == "全市应急系统扎实推进安全生产形势持续稳定好转"
    assert a.content_text == LEAD


def test_original_title_in_parentheses(rules: NormalizeSettings, tags: TagSettings) -> None:
    a = normalize_item(
        raw_file(post("（原标题：多家房屋中介电商倒下 低佣金烧钱模式难以为继）\n" + LEAD)), rules, tags
    )
    assert a.original_title == "多家房屋中介电商倒下 低佣金烧钱模式难以为继"
    assert "原标题" not in a.content_text


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("[责任编辑：蒲双静]", "蒲双静"),
        ("（责任编辑：李波）", "李波"),
        ("责任编辑：吴雪倩", "吴雪倩"),
        ("[责任编辑：高晓晨 PSY087]", "高晓晨"),
    ],
)
def test_editor_lines(line: str, name: str, rules: NormalizeSettings, tags: TagSettings) -> None:
    a = normalize_item(
        raw_file(post(f"{LEAD}\n{line}\n标签：\n滕醉汉医院耍酒疯 对医生大打出手\n播放数：1133929\n")),
        rules,
        tags,
    )
    assert a.author == name
    assert a.submitter == "wetech"
    assert a.content_text == LEAD  # the editor line closes the article: the video list after it goes too


def test_yicai_share_prompt_byline_footer_related(rules: NormalizeSettings, tags: TagSettings) -> None:
    body = (
        "打开微信，点击底部的“发现”，\n<!-- more -->\n打开微信，点击底部的“发现”，\n使用“扫一扫”即可将网页分享至朋友圈。\n"
        "冯芸清\n国家统计局9日的数据显示，11月CPI同比上涨2.2%。\n刘哲表示，PPI如期回落。\n \n \n"
        "公告逾期债务金额达6.69亿元，比8月31日确认的2.74亿逾期规模大幅增加。\n"
        "第一财经\nAPP\n第一财经\n日报微博\n第一财经\n微信服务号\n第一财经\n微信订阅号\n"
    )
    a = normalize_item(raw_file(post(body, author="第一财经", date="2018-12-11 23:33:41")), rules, tags)
    assert a.author == "冯芸清"
    assert a.publisher == "第一财经"
    assert a.submitter is None
    assert a.content_text == "国家统计局9日的数据显示，11月CPI同比上涨2.2%。\n\n刘哲表示，PPI如期回落。"


def test_tracking_image_dropped_real_image_kept(rules: NormalizeSettings, tags: TagSettings) -> None:
    body = (
        '<img align="center" border="0" src="http://p2.ifengimg.com/a/2016/0810/204c433878d5cf9size1_w16_h16.png" />\n'
        '<img src="http://x/pixel.gif" width="1" height="1">\n'
        '<img align="center" border="0" src="http://p0.ifengimg.com/a/2019/0219/photo_w600_h400.jpg" onerror="alert(1)" />\n'
        + LEAD
    )
    a = normalize_item(raw_file(post(body)), rules, tags)
    assert a.content_html == (
        '<p><img src="http://p0.ifengimg.com/a/2019/0219/photo_w600_h400.jpg"></p>' + f"<p>{LEAD}</p>"
    )


def test_whitespace_and_invisible_characters(rules: NormalizeSettings, tags: TagSettings) -> None:
    body = "\r\u3000\u3000" + LEAD + "\u200b\t \n\xa0\xa0记者\u3000王超\x07摄\ufffe\n" + LEAD + "\n"
    a = normalize_item(raw_file(post(body)), rules, tags)
    assert (
        a.content_text == LEAD + "\n\n记者 王超摄"
    )  # the repeated line appears once; full-width punctuation kept


def test_teaser_not_a_paragraph(rules: NormalizeSettings, tags: TagSettings) -> None:
    body = "各地统计局公布的数据显示，2017年末上海、北京\n<!-- more -->\n2018年哪个地方人口流入最多？\n各地统计局公布的数据显示，2017年末上海、北京、天津常住人口分别比上一年减少了。\n"
    a = normalize_item(raw_file(post(body)), rules, tags)
    assert a.content_text.split("\n\n") == [
        "2018年哪个地方人口流入最多？",
        "各地统计局公布的数据显示，2017年末上海、北京、天津常住人口分别比上一年减少了。",
    ]


def test_truncated_lead_copy_dropped(rules: NormalizeSettings, tags: TagSettings) -> None:
    a = normalize_item(
        raw_file(
            post(
                "“不变的天下文枢，我却从看灯的人变成了守\n"
                + "“不变的天下文枢，我却从看灯的人变成了守护人。”\n"
            )
        ),
        rules,
        tags,
    )
    assert a.content_text == "“不变的天下文枢，我却从看灯的人变成了守护人。”"


def test_summary_cut(rules: NormalizeSettings, tags: TagSettings) -> None:
    long_sentence = "字" * 200
    a = normalize_item(raw_file(post(long_sentence)), rules, tags)
    assert a.summary.endswith("…") and len(a.summary) == rules.summary_chars
    b = normalize_item(raw_file(post("第一句。" + "字" * 200)), rules, tags)
    assert b.summary == "第一句。"


def test_tags(rules: NormalizeSettings) -> None:
    tag_settings = TagSettings(
        channels={"重庆频道": "重庆"}, rules={"安全生产": ["复工复产", "/事故隐患|安全生产/"]}
    )
    text = "---\ntitle: 标题_重庆频道\ntags: [楼市, 房价]\ncategories: 房产，经济、民生 楼市\n---\n节后复工复产。\n"
    a = normalize_item(raw_file(text), rules, tag_settings)
    assert a.tags == ("楼市", "房价", "房产", "经济", "民生", "重庆", "安全生产")


def test_slugify() -> None:
    assert slugify("安全生产") == "an-quan-sheng-chan"
    assert slugify("房产北京") == "fang-chan-bei-jing"
    assert slugify("AI 时代!") == "ai-shi-dai"
    assert slugify("🙂") == slugify("🙂") and slugify("🙂").startswith("t-")


def test_config_rules_extend_and_replace(tags: TagSettings) -> None:
    extra = NormalizeSettings(title_suffixes=[r"\s*\|\s*(?P<channel>示例网)$"])
    assert strip_title("新闻 | 示例网", compile_rules(extra))[:2] == ("新闻", "示例网")
    assert strip_title("新闻_重庆频道", compile_rules(extra))[:2] == ("新闻", "重庆频道")
    only = NormalizeSettings(replace_defaults=True, title_suffixes=[r"\s*\|\s*(?P<channel>示例网)$"])
    assert strip_title("新闻_重庆频道", compile_rules(only))[:2] == ("新闻_重庆频道", None)


def test_network_item(rules: NormalizeSettings, tags: TagSettings) -> None:
    raw = RawItem(
        source="feed",
        key="https://example.com/a",
        url="https://example.com/a",
        title=" 标题\u200b_重庆频道 ",
        content_html=f"<p>{LEAD}</p><script>alert(1)</script><p onclick='x'>第二段 &amp; <b>粗</b></p>"
        '<img src="javascript:alert(1)"><img src="https://example.com/p.jpg" width="600">',
        date_text="2019.02.21 16:48",
        author="记者",
        tags=("楼市, 房价",),
        mtime=MTIME,
        timezone="Asia/Shanghai",
    )
    a, problems = inspect_item(raw, rules, tags)
    assert a is not None, problems
    assert (a.title, a.channel, a.link, a.source_path, a.date_source) == (
        "标题",
        "重庆频道",
        raw.url,
        None,
        "feed",
    )
    assert a.content_text == LEAD + "\n\n第二段 & 粗"
    assert (
        "<script" not in a.content_html
        and "javascript:" not in a.content_html
        and "onclick" not in a.content_html
    )
    assert '<img src="https://example.com/p.jpg" width="600">' in a.content_html
    assert a.tags[:2] == ("楼市", "房价")


def test_yicai_related_snippets_without_share_prompt(rules: NormalizeSettings, tags: TagSettings) -> None:
    """Real lines (``基市要闻|货基考验重重指数基金春天要来了？``): the ``（绝对值 X）`` byline names the
    author, and the related-article headlines behind the single-space lines are not the article."""
    body = (
        "说到货币基金，估计不少基民会感慨收益变\n<!-- more -->\n绝对值\n"
        "说到货币基金，估计不少基民会感慨收益变低了。\n"
        "炒股的朋友都知道在委托买卖股票时，成交后需要交一点佣金给券商。\n"
        "（绝对值 戴先喜）\n \n \n"
        "基市要闻 | 终究没能等到帮忙资金，年内已赚16%的基金宣告清盘！\n"
        "基市要闻 | 元旦假期临近 已有货基提前闭门谢客！\n"
    )
    a = normalize_item(raw_file(post(body, date="2019-01-04 19:37:48")), rules, tags)
    assert a.author == "戴先喜"
    assert a.content_text == (
        "说到货币基金，估计不少基民会感慨收益变低了。\n\n炒股的朋友都知道在委托买卖股票时，成交后需要交一点佣金给券商。"
    )


@pytest.mark.parametrize(
    ("line", "author"),
    [("（绝对值 盛睿）", "盛睿"), ("（绝对值张佳平）", "张佳平"), ("（绝对值 －）", None), ("一财大政", None),
     ("绝对值", None), ("一财资讯", None)],
)
def test_byline_lines_and_column_labels(
    line: str, author: str | None, rules: NormalizeSettings, tags: TagSettings
) -> None:
    """A column label where a byline would be is not a person; its line goes either way."""
    body = f"打开微信，点击底部的“发现”，\n使用“扫一扫”即可将网页分享至朋友圈。\n{line}\n{LEAD}\n"
    a = normalize_item(raw_file(post(body, author="None")), rules, tags)
    assert (a.author, a.content_text) == (author, LEAD)


def test_blank_run_inside_ifeng_article_is_not_a_cut(rules: NormalizeSettings, tags: TagSettings) -> None:
    """Single-space lines followed by the article and its editor line: nothing is cut."""
    body = f"{LEAD[:20]}\n \n \n{LEAD}\n第二段，全文继续。\n[责任编辑：张安琪]\n"
    a = normalize_item(raw_file(post(body)), rules, tags)
    assert a.content_text.endswith("第二段，全文继续。") and a.author == "张安琪"


def test_related_cut_can_be_turned_off(tags: TagSettings) -> None:
    body = f"{LEAD}\n \n \n基市要闻 | 元旦假期临近 已有货基提前闭门谢客！\n"
    off = NormalizeSettings(related_blank_lines=0)
    assert normalize_item(raw_file(post(body)), off, tags).content_text.endswith("闭门谢客！")
    assert normalize_item(raw_file(post(body)), NormalizeSettings(), tags).content_text == LEAD


def test_reporters_leading_the_body(rules: NormalizeSettings, tags: TagSettings) -> None:
    """Real layout (``恒大造车另起炉灶将萨博技术收入囊中``): images and reporters' name lines before the text."""
    img = '<img align="center" border="0" src="https://imgcdn.yicai.com/uppics/images/2019/01/e25940cba.jpg" />'
    body = f"在FF没能实现恒大的造车梦想后\n<!-- more -->\n{img}\n张歆晨\n{img}\n陈淑贞\n李溯婉\n武子晔\n{LEAD}\n李娜\n"
    a = normalize_item(raw_file(post(body)), rules, tags)
    assert a.author == "张歆晨、陈淑贞、李溯婉、武子晔"
    assert a.content_text == LEAD + "\n\n李娜"  # a name-shaped line after the text has begun stays
