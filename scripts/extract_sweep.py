"""The extract miner's settings, chosen on dev: ROUGE of the search alone on gigaword_valid_pool dev articles.

    python scripts/extract_sweep.py --articles 300       # writes results/summarization/extract-search-dev/
    python scripts/extract_sweep.py --readme-only        # rewrites its README.md from its results.json

Fits the headline n-gram model and the article IDF on the task's training text (the pool and
news_leads_headlines, as a run does), asks 8 words of each of the first --articles dev articles, and scores
each setting (gamma = miner.sim_weight, the LM order, random restarts) against the dev headlines beside
the first 8 words, with the articles/s of the search on one core.

The README's text is computed from the rows (`write_readme`): which search row scores best on the
selection metric (the mean of R-1, R-2 and R-L F1), the best value of each setting where the grid varies
it, and whether the config's miner.* defaults are the best row. It never states a conclusion the table
does not compute. `--readme-only` rewrites the text from a committed results.json without rerunning the
sweep, and says so in the README.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "results" / "summarization" / "extract-search-dev"
SETTINGS = [(3, 0, g) for g in (0.5, 1, 2, 3, 5, 8, 12, 20, 40)] + [(4, 0, 12), (2, 0, 12), (3, 2, 12)]
METRICS = ("rouge1", "rouge2", "rougeL")
NAMES = {"rouge1": "R-1", "rouge2": "R-2", "rougeL": "R-L", "order": "lm_order", "restarts": "restarts",
         "gamma": "gamma"}
SELECTION = "the mean of R-1, R-2 and R-L F1"


def setting_of(row: dict) -> dict | None:
    """(order, restarts, gamma) of a search row: its own keys, or parsed from its label (older results.json)."""
    if all(k in row for k in ("order", "restarts", "gamma")):
        return {k: float(row[k]) for k in ("order", "restarts", "gamma")}
    m = re.fullmatch(r"search: order (\S+), restarts (\S+), gamma (\S+)", row["system"])
    return {"order": float(m[1]), "restarts": float(m[2]), "gamma": float(m[3])} if m else None


def score(row: dict) -> float:
    return sum(row[k] for k in METRICS) / len(METRICS)


def figures(row: dict) -> str:
    return " / ".join(f"{row[k]:.1f}" for k in METRICS)


def num(x: float) -> str:
    return f"{x:g}"


def analysis(rows: list[dict], defaults: dict) -> str:
    """What the table computes, in words: no conclusion that is not computed here from `rows`."""
    search = [(r, setting_of(r)) for r in rows]
    search = [(r, s) for r, s in search if s is not None]
    if not search:
        return "The table has no search rows."
    ranked = sorted(search, key=lambda rs: score(rs[0]), reverse=True)
    best, best_setting = ranked[0]
    lines = [f"Selection metric: {SELECTION} on these dev articles (computed from the rows above). "
             f"Best search row: **{best['system']}** ({figures(best)}, mean {score(best):.2f})."]
    leaders = {k: max(search, key=lambda rs: rs[0][k])[0]["system"] for k in METRICS}
    if len(set(leaders.values())) == 1:
        lines.append("The same row leads each of R-1, R-2 and R-L.")
    else:
        lines.append("Per column, the leaders differ: " + "; ".join(f"{NAMES[k]}: {v}" for k, v in leaders.items()) + ".")
    first = [r for r in rows if setting_of(r) is None]
    for r in first:
        lines.append(f"Against {r['system']} ({figures(r)}): the best search row is "
                     + " / ".join(f"{best[k] - r[k]:+.1f}" for k in METRICS) + ".")

    # The best value of each setting where the grid varies it, with the other two settings held fixed.
    varied = []
    for p in ("gamma", "order", "restarts"):
        groups: dict = {}
        for r, s in search:
            groups.setdefault(tuple((q, s[q]) for q in ("order", "restarts", "gamma") if q != p), []).append((r, s))
        for fixed, members in groups.items():
            if len({s[p] for _, s in members}) < 2:
                continue
            top = max(members, key=lambda rs: score(rs[0]))
            values = ", ".join(num(v) for v in sorted({s[p] for _, s in members}))
            held = ", ".join(f"{NAMES[q]} {num(v)}" for q, v in fixed)
            varied.append(f"{NAMES[p]} over {values} at {held}: best {num(top[1][p])} "
                          f"({figures(top[0])})")
    if varied:
        lines.append("Where the grid varies one setting with the others held fixed (gamma is miner.sim_weight; "
                     "best by the same metric): "
                     + "; ".join(varied) + ". No other combinations were run.")

    match = [(r, s) for r, s in search if all(s[k] == float(defaults[k]) for k in ("order", "restarts", "gamma"))]
    named = ", ".join(f"miner.{k} = {num(defaults[v])}" for k, v in
                      (("sim_weight", "gamma"), ("lm_order", "order"), ("restarts", "restarts")))
    if not match:
        lines.append(f"The defaults in textgan/config.py ({named}) are not a row of this table.")
    else:
        row, _ = match[0]
        rank = [r["system"] for r, _ in ranked].index(row["system"]) + 1
        if row is best:
            lines.append(f"The defaults in textgan/config.py ({named}) are this best row.")
        else:
            lines.append(f"The defaults in textgan/config.py ({named}) are the row {row['system']} "
                         f"({figures(row)}, mean {score(row):.2f}): **not the best row**, "
                         f"{score(best) - score(row):.2f} below it on the mean "
                         f"(R-1 / R-2 / R-L " + " / ".join(f"{best[k] - row[k]:+.1f}" for k in METRICS)
                         + f" for the best row), rank {rank} of {len(ranked)} search rows.")
        if "articles_per_s" in row and "articles_per_s" in best and row is not best:
            lines.append(f"Search speed, one timing each: {best['articles_per_s']} articles/s for the best row, "
                         f"{row['articles_per_s']} for the defaults.")
    lines.append("Each figure is one pass over the same articles; no spread between repeats was measured.")
    return "\n\n".join(lines)


def git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def write_readme(out: Path, info: dict, defaults: dict, regenerated: str = "") -> None:
    """The README of a sweep, from its info dict (the results.json content) and the config's defaults."""
    rows = info["rows"]
    table = "\n".join(f"| {r['system']} | {r['rouge1']:.1f} | {r['rouge2']:.1f} | {r['rougeL']:.1f} | "
                      f"{r.get('articles_per_s', '')} |" for r in rows)
    uncommitted = (" (the tree had uncommitted changes to tracked files; what they were is not recorded)"
                   if str(info["commit"]).endswith(("+uncommitted", "-dirty")) else "")
    (out / "README.md").write_text(f"""# The extract miner's settings on dev (the search alone)

Command: `{info['command']}` at commit {info['commit']}{uncommitted}, {info['date']}; {info['machine']['cpu']}, one core for the search.
The first {info['dev_articles']} gigaword_valid_pool dev articles, {info['words']} words asked, ROUGE F1 (rouge-score,
stemming) against their headlines. The headline model and IDF are fitted on the task's training text.
{regenerated}
| system | R-1 | R-2 | R-L | articles/s |
|---|---|---|---|---|
{table}

{analysis(rows, defaults)}
""")


def config_defaults() -> dict:
    from textgan.config import load_config

    miner = load_config("summarization", "cpu", []).miner
    return {"gamma": miner.sim_weight, "order": miner.lm_order, "restarts": miner.restarts}


def readme_only(out: Path) -> None:
    info = json.loads((out / "results.json").read_text())
    committed = git("log", "-1", "--format=%h", "--", str(out / "results.json")) or "not committed"
    script = git("log", "-1", "--format=%h", "--", "scripts/extract_sweep.py") or "not committed"
    if git("status", "--porcelain", "--", "scripts/extract_sweep.py"):
        script += "+uncommitted"
    note = (f"\nThis text was regenerated from the committed results.json (as committed at {committed}) by "
            f"`python scripts/extract_sweep.py --readme-only` (the script at commit {script}); the sweep was not "
            f"rerun. The miner.* defaults named below were read from textgan/config.py (summarization's cpu preset) when "
            f"this text was written.\n")
    write_readme(out, info, config_defaults(), regenerated=note)
    print(f"rewrote {out / 'README.md'} from {out / 'results.json'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=300)
    parser.add_argument("--words", type=int, default=8)
    parser.add_argument("--readme-only", action="store_true",
                        help="rewrite README.md from the committed results.json; no sweep")
    args = parser.parse_args()
    if args.readme_only:
        readme_only(OUT)
        return

    from textgan.provenance import commit
    from bench_speed import machine  # noqa: E402

    from textgan.config import load_config  # noqa: E402
    from textgan.corpora import corpus_dir, load_card, read_lines  # noqa: E402
    from textgan.mining.extract import Extractor, NgramLM, idf_weights  # noqa: E402
    from textgan.metrics import rouge  # noqa: E402

    cfg = load_config("summarization", "cpu", [])
    train = {"article": [], "title": []}
    for name in [cfg.data.corpus, *cfg.data.extra_train]:
        card = load_card(name)
        root = corpus_dir(card, ("train",))
        for domain in train:
            train[domain] += [line.split() for line in read_lines(root / card.files["train"][domain]) if line.strip()]
    card = load_card(cfg.data.corpus)
    root = corpus_dir(card, ("dev",))
    articles = [line.split() for line in read_lines(root / card.files["dev"]["article"])][: args.articles]
    headlines = read_lines(root / card.files["dev"]["title"])[: args.articles]
    idf = idf_weights(train["article"])
    rows = [{"system": f"first {args.words} words",
             **rouge([" ".join(a[: args.words]) for a in articles], headlines)}]
    lms = {}
    for order, restarts, gamma in SETTINGS:
        lm = lms.setdefault(order, NgramLM(train["title"], order))
        extractor = Extractor(lm, idf, sim_weight=gamma, restarts=restarts)
        started = time.time()
        outs = [" ".join(a[i] for i in extractor.search(a, min(args.words, len(a)))[0]) for a in articles]
        rows.append({"system": f"search: order {order}, restarts {restarts}, gamma {gamma}",
                     "order": order, "restarts": restarts, "gamma": gamma,
                     **rouge(outs, headlines), "articles_per_s": round(len(articles) / (time.time() - started), 1)})
        print(json.dumps(rows[-1]), flush=True)

    OUT.mkdir(parents=True, exist_ok=True)
    command = "python scripts/extract_sweep.py " + " ".join(sys.argv[1:])
    info = {"command": command, "commit": commit(short=True), "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(),
            "dev_articles": len(articles), "words": args.words, "rows": rows}
    (OUT / "results.json").write_text(json.dumps(info, indent=2) + "\n")
    write_readme(OUT, info, config_defaults())
    print(f"written to {OUT}")


if __name__ == "__main__":
    main()
