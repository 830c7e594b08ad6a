"""Write the tiny synthetic sentiment corpus in corpora/toy/ used by the tests and quick demos.

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


def main() -> None:
    root = Path(__file__).resolve().parent.parent / "corpora" / "toy"
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
