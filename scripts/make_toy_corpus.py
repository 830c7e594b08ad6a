"""Write the tiny synthetic corpora used by the tests and quick demos: corpora/toy/ (English sentiment,
lowercased and PTB-tokenized), corpora/toy_zh/ (Chinese sentiment, raw: full-width punctuation, no
spaces), corpora/toy_zh_en/ (translation) and corpora/toy_sum/ (news leads and headlines).

Sentences are template reviews whose sentiment is carried by one or two words, so a model can
learn a clean neg <-> pos mapping in seconds. Deterministic: running it again gives the same files.

    python scripts/make_toy_corpus.py
"""

import random
from pathlib import Path

SUBJECTS = ["the food", "the service", "the staff", "the pizza", "our waiter", "the room", "the coffee",
            "the price", "this place", "the menu", "the music", "the bar", "the salad", "the owner"]
VERBS = ["was", "is", "seemed", "felt"]
ADVERBS = ["", "very ", "really ", "so ", "pretty "]
POS = ["good", "great", "friendly", "delicious", "amazing", "excellent", "nice", "fresh", "perfect"]
NEG = ["bad", "terrible", "rude", "awful", "bland", "horrible", "poor", "stale", "disgusting"]
ENDINGS = {"pos": ["i will come back .", "highly recommend .", "we loved it ."],
           "neg": ["i will not come back .", "never again .", "we hated it ."]}


def sentences(words: list[str], domain: str, n: int, rng: random.Random) -> list[str]:
    out = []
    for _ in range(n):
        s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(ADVERBS)}{rng.choice(words)} ."
        if rng.random() < 0.3:
            s += " " + rng.choice(ENDINGS[domain])
        out.append(s)
    return out


def rewrite(sentence: str, domain: str) -> str:
    """The human-style reference of a test sentence in the other domain: swap the sentiment words."""
    src, tgt = (NEG, POS) if domain == "neg" else (POS, NEG)
    other = "pos" if domain == "neg" else "neg"
    for i, ending in enumerate(ENDINGS[domain]):
        if sentence.endswith(ending):
            sentence = sentence[: -len(ending)] + ENDINGS[other][i]
    return " ".join(tgt[src.index(w)] if w in src else w for w in sentence.split())


ZH_SUBJECTS = ["菜", "服务", "房间", "快递", "价格", "味道", "老板", "包装", "米饭", "屏幕", "酒店", "外卖"]
ZH_ADVERBS = ["", "很", "非常", "真", "特别", "太"]
ZH_POS = ["好", "好吃", "干净", "快", "热情", "新鲜", "便宜", "满意", "漂亮"]
ZH_NEG = ["差", "难吃", "脏", "慢", "冷淡", "难闻", "贵", "失望", "糟糕"]
ZH_ENDINGS = {"pos": ["下次还来！", "推荐！", "很喜欢。"], "neg": ["再也不来了！", "不推荐！", "很生气。"]}


def zh_sentences(words: list[str], domain: str, n: int, rng: random.Random) -> list[str]:
    out = []
    for _ in range(n):
        s = f"{rng.choice(ZH_SUBJECTS)}{rng.choice(ZH_ADVERBS)}{rng.choice(words)}"
        s += "，" + rng.choice(ZH_ENDINGS[domain]) if rng.random() < 0.4 else "。"
        out.append(s)
    return out


PEOPLE = {"我": "I", "你们": "you", "我们": "we", "他们": "they"}
VERBS_ZH_EN = {"喜欢": "like", "想要": "want", "看见": "see", "买": "buy"}
THINGS = {"猫": "cats", "狗": "dogs", "茶": "tea", "书": "books", "苹果": "apples", "花": "flowers"}


def zh_en_pair(rng: random.Random) -> tuple[str, str]:
    """One toy translation pair: "我喜欢猫。" <-> "I like cats."."""
    (p_zh, p_en), (v_zh, v_en), (t_zh, t_en) = (rng.choice(list(d.items())) for d in (PEOPLE, VERBS_ZH_EN, THINGS))
    return f"{p_zh}{v_zh}{t_zh}。", f"{p_en[0].upper()}{p_en[1:]} {v_en} {t_en}."


def write_unpaired_halves(root: Path, make_pair, domains: tuple[str, str]) -> dict[str, list[tuple[str, str]]]:
    """train.<domain>: each side from its own draws of make_pair(rng) (unpaired halves); dev and test:
    aligned pairs, returned by split."""
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    for k, domain in enumerate(domains):
        (root / f"train.{domain}").write_text("".join(make_pair(rng)[k] + "\n" for _ in range(1500)))
    pairs = {}
    for split, n in [("dev", 40), ("test", 30)]:
        pairs[split] = [make_pair(rng) for _ in range(n)]
        for k, domain in enumerate(domains):
            (root / f"{split}.{domain}").write_text("".join(p[k] + "\n" for p in pairs[split]))
    return pairs


def write_toy_zh_en(root: Path) -> None:
    """Unpaired training halves (each side from its own draws), aligned dev/test with multiref TSVs."""
    for split, pairs in write_unpaired_halves(root, zh_en_pair, ("zh", "en")).items():
        (root / f"{split}.zh2en.multiref.tsv").write_text("".join(f"{zh}\t{en}\n" for zh, en in dict(pairs).items()))
        (root / f"{split}.en2zh.multiref.tsv").write_text(
            "".join(f"{en}\t{zh}\n" for en, zh in {en: zh for zh, en in pairs}.items()))


COUNTRIES = ["france", "japan", "kenya", "brazil", "canada", "india", "egypt", "norway"]
OFFICIALS = ["president", "prime minister", "foreign minister", "central bank", "army chief"]
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday"]
ACTIONS = {"raise taxes": "to raise taxes", "close schools": "closes schools", "cut interest rates": "cuts rates",
           "hold elections": "to hold elections", "sign a trade deal": "signs trade deal",
           "send troops": "sends troops", "ban smoking": "bans smoking", "build a new airport": "to build airport"}
REASONS = ["amid protests", "after a long debate", "despite strong opposition", "to calm markets", ""]


def news_pair(rng: random.Random) -> tuple[str, str]:
    """A toy lead sentence (11-20 words) and its headline (3-5 words), Gigaword-style lower case."""
    country, official, day = rng.choice(COUNTRIES), rng.choice(OFFICIALS), rng.choice(DAYS)
    action, short = rng.choice(list(ACTIONS.items()))
    reason = rng.choice(REASONS)
    article = f"{country} 's {official} said on {day} that the government would {action} {reason} , officials said ."
    return " ".join(article.split()), f"{country} {short}"


def write_toy_sum(root: Path) -> None:
    """Unpaired training halves, aligned dev/test, and a committed lead-4 baseline of the test articles."""
    test = write_unpaired_halves(root, news_pair, ("article", "title"))["test"]
    (root / "test.lead4_baseline").write_text("".join(" ".join(a.split()[:4]) + "\n" for a, _ in test))


def main() -> None:
    corpora = Path(__file__).resolve().parent.parent / "corpora"
    write_toy_sum(corpora / "toy_sum")
    write_toy_zh_en(corpora / "toy_zh_en")
    root = corpora / "toy_zh"
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    for split, n in [("train", 2000), ("dev", 100), ("test", 50)]:
        for domain, words in [("neg", ZH_NEG), ("pos", ZH_POS)]:
            (root / f"{split}.{domain}").write_text("\n".join(zh_sentences(words, domain, n, rng)) + "\n")

    root = corpora / "toy"
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    for split, n in [("train", 2000), ("dev", 100), ("test", 50)]:
        for domain, words in [("neg", NEG), ("pos", POS)]:
            lines = sentences(words, domain, n, rng)
            (root / f"{split}.{domain}").write_text("\n".join(lines) + "\n")
            if split == "test":
                other = "pos" if domain == "neg" else "neg"
                (root / f"test.{domain}2{other}.ref0").write_text("\n".join(rewrite(x, domain) for x in lines) + "\n")


if __name__ == "__main__":
    main()
