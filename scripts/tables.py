"""Build the results tables of README.md and docs/*.md from the committed results files.

Each table is a spec below (TABLES): which results folders and systems are its rows, which columns it
shows, and the label of each row. The figures come from the files alone: results/<task>/<folder>/metrics.json
(report["systems"][system]["mean"], or ["directions"] for per-direction cells), a folder's results.json
("rows") where a script wrote that instead, the folder's run.json ("trained at") and results/TESTLOG.md
("test looks": how many times the same run had been scored on the test set before the row's own scoring).

A table stands in a markdown file between two markers:

    <!-- table:NAME -->
    ... generated ...
    <!-- /table -->

    python scripts/tables.py            rewrite every block of README.md and docs/*.md
    python scripts/tables.py --check    exit 1, naming each block whose text differs from what the files give

In README.md a row's folder is a link into results/; in docs/ (an mkdocs site, whose --strict build refuses
links out of docs/) it is the folder's path in a code span.

The speed, serving and sample tables of docs/ (results/speed/, results/serve/, samples.md) are the functions
of tables_bench.py, laid out by grid() below; TABLES holds both kinds.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tables_bench  # (the speed, serving and sample tables; scripts/, beside this file)

from textgan import testlog  # noqa: E402  (reads a markdown file; imports no torch)

RESULTS = ROOT / "results"
BLOCK = re.compile(r"(<!-- table:([\w-]+) -->\n)(.*?)(<!-- /table -->)", re.S)


@dataclass
class Row:
    folder: str                    # "<task>/<folder>" under results/
    label: str = ""                # "{run}" stands for the folder (a link in README.md, a path in docs/)
    system: str = ""               # the system in metrics.json; default: the folder's own name
    bold: bool = False             # bold figures (the preset's row)
    text: dict = field(default_factory=dict)   # cells that are words, not figures: {column key: text}


@dataclass
class Column:
    key: str                       # a metric key of "mean"; "dir:<direction>:<metric>" for one direction;
    title: str                     # "at" (trained at), "looks" (test looks), or a key of Row.text
    fmt: str = "{:.1f}"


@dataclass
class Table:
    columns: list[Column]
    rows: list[Row]
    first: str = "system"          # the title of the label column


def ppl(value: float) -> str:
    return f"{value / 1e6:.1f}M" if value >= 1e6 else f"{value:,.0f}"


def load(row: Row) -> tuple[dict, dict]:
    """(mean, directions) of the row's system."""
    folder = RESULTS / row.folder
    name = row.system or Path(row.folder).name
    if (folder / "metrics.json").is_file():
        system = json.loads((folder / "metrics.json").read_text())["systems"][name]
        return system["mean"], system.get("directions", {})
    for r in json.loads((folder / "results.json").read_text())["rows"]:
        if r["system"] == name:
            return r, {}
    raise KeyError(f"results/{row.folder}: no system {name!r}")


def trained_at(row: Row) -> str:
    if row.system:                                   # a baseline scored beside a run: not trained there
        return ""
    at = testlog.trained_commit(RESULTS / row.folder / "run.json")
    if at == "unknown":
        metrics = RESULTS / row.folder / "metrics.json"
        at = json.loads(metrics.read_text()).get("trained_at_commit", "") if metrics.is_file() else ""
    return at.replace("-dirty", ", uncommitted code") if at not in ("", "unknown") else ""


def looks(row: Row, log: list) -> str:
    if row.system:
        return ""
    before = [r.looks_before for r in log if r.results == row.folder and r.test_set == "test"]
    return str(before[-1]) if before else ""


def cell(row: Row, col: Column, mean: dict, directions: dict, log: list) -> str:
    if col.key in row.text:
        return row.text[col.key]
    if col.key == "at":
        return trained_at(row)
    if col.key == "looks":
        return looks(row, log)
    if col.key.startswith("dir:"):
        _, direction, key = col.key.split(":")
        value = directions.get(direction, {}).get(key)
    else:
        value = mean.get(col.key)
    if value is None:
        return ""
    text = ppl(value) if col.fmt == "ppl" else col.fmt.format(value)
    return f"**{text}**" if row.bold else text


def grid(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table: the header, the rule, one line per row."""
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def render(table: Table, in_docs: bool) -> str:
    log = testlog.read(RESULTS / "TESTLOG.md")
    rows = []
    for row in table.rows:
        mean, directions = load(row)
        name = Path(row.folder).name
        run = f"`results/{row.folder}`" if in_docs else f"[{name}](results/{row.folder}/)"
        if row.bold:
            run = f"**{run}**"
        label = row.label.replace("{run}", run) if row.label else run
        rows.append([label] + [cell(row, c, mean, directions, log) for c in table.columns])
    return grid([table.first] + [c.title for c in table.columns], rows)


def block(spec, in_docs: bool) -> str:
    """A block's text: a quality Table rendered, or a tables_bench function's Grid laid out (or its text)."""
    if isinstance(spec, Table):
        return render(spec, in_docs)
    out = spec()
    return grid(out.header, out.rows) if isinstance(out, tables_bench.Grid) else out


# --- the tables ------------------------------------------------------------------------------------------

YELP_COLUMNS = [Column("at", "trained at"), Column("looks", "test looks"), Column("acc", "ACC"),
                Column("acc_neural", "ACC-nn"), Column("ref_bleu", "ref-BLEU"), Column("self_bleu", "self-BLEU"),
                Column("ppl", "PPL", "ppl"), Column("g", "G"), Column("repeats", "rep3 %")]
PUB = "sentiment/bootstrap-cpu"          # the published systems and the input copy, as scored there
PUBLISHED = [
    ("TemplateBased (Li et al. 2018) (published outputs)", "TemplateBased (Li et al. 2018), published outputs"),
    ("DeleteAndRetrieve (Li et al. 2018) (published outputs)", "DeleteAndRetrieve (Li et al. 2018)"),
    ("UnsuperMT (Zhang et al. 2018) (published outputs)", "UnsuperMT (Zhang et al. 2018)"),
    ("DualRL (Luo et al. 2019) (published outputs)", "DualRL (Luo et al. 2019)"),
    ("Style Transformer multi (Dai et al. 2019) (published outputs)", "Style Transformer multi (Dai et al. 2019)"),
    ("Style Transformer cond (Dai et al. 2019) (published outputs)", "Style Transformer cond (Dai et al. 2019)"),
    ("TSST (Xiao et al. 2021) (published outputs)", "TSST (Xiao et al. 2021)"),
    ("CBD (Ma et al. 2021) (published outputs)", "CBD (Ma et al. 2021)"),
    ("DIRR (Liu et al. 2021, GPT-2) (published outputs)", "DIRR (Liu et al. 2021, pretrained GPT-2)"),
]


def published(names: list[str] | None = None) -> list[Row]:
    return [Row(PUB, label, system=system) for system, label in PUBLISHED
            if names is None or any(label.startswith(n) for n in names)]


S = "sentiment/"
SENTIMENT = Table(YELP_COLUMNS, [
    Row(PUB, "input copy", system="input copy"),
    Row(S + "smollm2-real-fluent-cpu", "{run} ‖ (**today's cpu preset**, `textgan train --task sentiment`; "
        "pretrained start: the smollm2-real-cpu model decoded by the guidance ladder of the next row plus a "
        "fluency term, `decode.fluency_weight=0.0075`, chosen on dev after earlier test looks at this run; "
        "test transfer 4385 s, not a clean timing)", bold=True),
    Row(S + "refined-cpu", "{run} § (**quality in the weights**: a run of the cpu preset (cpu-sweepbase) after "
        "two self-training rounds, `textgan refine` with the cpu-long preset's round settings: each round its "
        "guidance ladder rewrote 600 new training sentences per domain, the accepted rewrites trained 120 steps; "
        "decoded **greedily**, no guidance; test transfer 72 s; results/sentiment/refine-rounds-dev)"),
    Row(S + "refined-teacher-greedy-cpu", "{run} § (the run it was refined from, the same greedy decoding, scored "
        "in the same session: the baseline of the row above)"),
    Row(S + "student-ct2-int8-cpu", "{run} § (a student of the refined run: the small from-scratch "
        "encoder-decoder, `textgan distill` on its greedy rewrites of 6,000 training sentences per domain; "
        "CTranslate2 int8)"),
    Row(S + "smollm2-real-ladder5-cpu", "{run} ‖ (the previous cpu preset: the same model decoded by a guidance "
        "ladder, greedy rewrites at guidance 0.15, 0.6, 1.0, 1.5 and 2.0 reranked by the run's reward with style "
        "weight 4; test transfer 1040 s)"),
    Row(S + "smollm2-real-ladder-cpu", "{run} ‖ (the same model, the first ladder tried on test: rungs 0.15, "
        "0.6, 1.0, 1.5, style weight 2; test transfer 805 s)"),
    Row(S + "smollm2-real-guided045-cpu", "{run} ‖ (an earlier cpu preset: the same model, guidance 0.45 alone, "
        "greedy, no reranking; test transfer 180 s)"),
    Row(S + "smollm2-real-cpu", "{run} ‖ (pretrained start: SmolLM2-135M + LoRA on the filtered template pairs "
        "turned round, `train.pairs_targets=real`; guidance 0.3; 23.8 min of training)"),
    Row(S + "smollm2-real-guided06-cpu", "{run} ‖ (the same model, guidance 0.6)"),
    Row(S + "smollm2-real-greedy-cpu", "{run} ‖ (the same model, nothing at decoding: greedy, no guidance; "
        "test transfer 86 s)"),
    Row(S + "smollm2-real-ct2-int8-cpu", "{run} ‖ (the same greedy decoding on the CTranslate2 engine, int8; "
        "test transfer 24 s)"),
    Row(S + "smollm2-full-cpu", "{run} ‖ (ablation: full fine-tuning instead of LoRA, "
        "`generator.finetune=full train.lr_g=1e-4`; guidance 0.3; 19.1 min of training)"),
    Row(S + "smollm2-reward-cpu", "{run} ‖ (ablation: smollm2-real-cpu trained further with a reward phase, "
        "20 D + 60 REINFORCE steps, 17.4 more minutes; the last step; guidance 0.3)"),
    Row(S + "smollm2-realstyle-cpu", "{run} ‖ (the preset's training plus `train.pairs_min_style_real=0.8`; "
        "guidance 0.45; 22.6 min of training)"),
    Row(S + "smollm2-filtered-guided03-cpu", "{run} ‖ (an earlier cpu preset: smollm2-filtered-cpu decoded with "
        "guidance 0.3, chosen on dev after the greedy row was scored on test)"),
    Row(S + "smollm2-filtered-cpu", "{run} ‖ (pretrained start, greedy: SmolLM2-135M + LoRA r=16, 360 bootstrap "
        "steps on template pairs kept by the style classifier at 0.8 and the miner's score at 0.6; 18.4 min)"),
    Row(S + "smollm2-zeroshot-cpu", "{run} ‖ (the pretrained model prompted `<s> x <2to>` with no training: "
        "it continues rather than rewrites)"),
    Row(S + "smollm2-boot-cpu", "{run} ‖ (pretrained start, bootstrap only, pairs filtered at 0.5; "
        "21.4 min of training)"),
    Row(S + "smollm2-boot-style09-cpu", "{run} ‖ (the same with the pair filter at 0.9 and a weak, 80.7 %-on-dev "
        "style classifier)"),
    Row(S + "filter-cpu", "{run} † (the from-scratch recipe, today's `--preset cpu-scratch`: 300 autoencoder + "
        "900 bootstrap + 50 D + 120 adversarial steps, pairs filtered by the style classifier; 22.6 min)"),
    Row(S + "bootstrap-cpu", "{run} † (without the pair filter; an earlier commit than filter-cpu, so not an "
        "ablation of it; 22.4 min)"),
    Row(S + "nostyle-cpu", "{run} † (without the style reward, `train.style_reward=0`; another commit)"),
    Row(S + "adv240-cpu", "{run} † (700 bootstrap + 240 adversarial steps; 26.2 min)"),
    Row(S + "adv240-after-bootstrap", "{run} (adv240-cpu's model at the end of its bootstrap; no selection)"),
    Row(S + "sum-cpu", "{run} † (`train.reward_mix=sum`, without the pair filter; 22.5 min)"),
    Row(S + "latent-cpu", "{run} † (with the encoder's domain adversary, `train.latent_adv=0.1`; 59.3 min "
        "sharing the 2 cores)"),
    Row(S + "boot-v1", "{run} † (a ~45-min schedule, resumed; see its README)"),
    Row(S + "gpu-h200-bootstrap", "{run} † (one H200, the gpu preset's model size, stopped by its 390-s limit "
        "inside the bootstrap phase: no adversarial step)"),
    Row(PUB, "our TemplateBased miner alone (`bench_quality.py --miner template`)",
        system="template miner alone (ours)"),
    Row(S + "default-cpu", "{run} † (an older preset: 1600 autoencoder + 250 adversarial steps; scored before "
        "the neural judge existed)"),
] + published(), first="system (Yelp test, 500 + 500)")

README = Table(YELP_COLUMNS, [
    Row(PUB, "input copy", system="input copy"),
    Row(S + "smollm2-real-fluent-cpu", "{run} (today's cpu preset: SmolLM2-135M + LoRA, guidance ladder, "
        "fluency term)", bold=True),
    Row(S + "smollm2-real-greedy-cpu", "{run} (the same model, plain greedy decoding)"),
    Row(S + "refined-cpu", "{run} § (a cpu-preset run after two self-training rounds, `textgan refine`: "
        "greedy decoding, 14 lines/s on 2 cores)"),
    Row(S + "refined-teacher-greedy-cpu", "{run} § (the run it was refined from, greedy)"),
    Row(S + "student-ct2-int8-cpu", "{run} § (its distilled student: the small encoder-decoder, CTranslate2 int8)"),
    Row(S + "filter-cpu", "{run} † (the from-scratch recipe, `--preset cpu-scratch`)"),
    Row(PUB, "our TemplateBased miner alone", system="template miner alone (ours)"),
] + published(["DualRL", "TSST", "CBD", "DIRR"]))

Z = "sentiment_zh/"
ZH = Table([Column("at", "trained at"), Column("looks", "test looks"), Column("acc", "ACC"),
            Column("acc_neural", "ACC-nn"), Column("self_bleu", "self-BLEU"), Column("ppl", "PPL", "ppl"),
            Column("repeats", "rep3 %"), Column("len_ratio", "len", "{:.2f}")], [
    Row(Z + "semstyle-cpu", "input copy", system="input copy"),
    Row(Z + "semstyle-cpu", "our template miner alone (piece markers), in semstyle-cpu's run",
        system="template miner alone (ours)"),
    Row(Z + "semstyle-cpu", "{run} (**the cpu preset end to end**: 1500 denoising steps, the template bootstrap, "
        "400 REINFORCE steps with style reward min(piece classifier, e5 MLP); reranked by the same minimum with "
        "the length penalty, 16 candidates, 3 passes; 55.0 min of training)", bold=True),
    Row(Z + "semstyle-fork-cpu", "{run} (guard-cpu + 300 REINFORCE steps with the minimum style reward; decoded "
        "at style weight 15, no length penalty)"),
    Row(Z + "guard-semdecode-cpu", "{run} (guard-cpu's model decoded as semstyle-fork-cpu: no extra training)"),
    Row(Z + "guard-cpu", "{run} (1500 denoising steps, the run guard, a 2000-step style classifier, reranked "
        "decoding; 35.4 min)"),
    Row(Z + "longae-guard-cpu", "{run} (longae-cpu's model decoded under the run guard)"),
    Row(Z + "longae-e5reward-cpu", "{run} (longae-cpu forked at step 2200, 100 REINFORCE steps with the e5 "
        "content reward)"),
    Row(Z + "longae-cpu", "{run} (1500 denoising steps instead of 250, reranked decoding)"),
    Row(Z + "bootstrap-cpu", "{run} † (the Yelp recipe, 250 denoising steps; 26.7 min)"),
    Row(Z + "default-cpu", "{run} † (an older preset; scored by the previous evaluator)"),
])

T = "translation/"
PRE, LEX, UNS = "pretrained multilingual encoder", "CC-CEDICT lexicon (weak supervision)", "fully unsupervised"
TRANSLATION = Table([Column("kind", "kind"), Column("at", "trained at"), Column("looks", "test looks"),
                     Column("acc", "ACC"), Column("ref_bleu", "ref-BLEU"), Column("dir:zh2en:ref_bleu", "zh->en"),
                     Column("dir:en2zh:ref_bleu", "en->zh"), Column("repeats", "rep3 %")], [
    Row(T + "e5-cpu", "input copy", system="input copy"),
    Row(T + "mine-miner", "mine miner alone: retrieval by e5 margin over the other language's training text",
        system="mine miner alone (ours)", text={"kind": PRE}),
    Row(T + "e5-cpu-b-nbest", "{run} (**the cpu preset end to end**, a second training; greedy + 7 samples + "
        "the 5 beam hypotheses, reranked by back-translation, direct, e5 and SmolLM2 (into English) terms; "
        "no retrieval; 2501 s for the test set)", bold=True, text={"kind": PRE}),
    Row(T + "e5-cpu-b-noisy-channel", "{run} (the same model, greedy + 7 samples, semantic weight 2, no beam "
        "hypotheses; 2482 s)", text={"kind": PRE}),
    Row(T + "e5-cpu-rerank", "{run} (e5-cpu, its candidates and 4 retrieved training sentences reranked by e5 "
        "cosine + back-translation log-prob; 1047 s)", text={"kind": PRE}),
    Row(T + "e5-cpu-rerank-model", "{run} (e5-cpu, its own greedy + 7 samples reranked the same way, no "
        "retrieval; 738 s)", text={"kind": PRE}),
    Row(T + "e5-cpu", "{run} (the cpu preset's model, greedy; 93 min of training)", text={"kind": PRE}),
    Row(T + "smollm2-decoder-pilot-cpu", "{run} (a pilot: SmolLM2-135M + LoRA as the decoder, 300 steps on the "
        "mined pairs, greedy)", text={"kind": PRE}),
    Row(T + "cedict-wbw-cpu", "word-by-word, unsupervised embeddings", system="word-by-word (unsupervised)",
        text={"kind": UNS}),
    Row(T + "cedict-wbw-cpu", "word-by-word, CC-CEDICT seed", system="word-by-word (cedict)", text={"kind": LEX}),
    Row(T + "anchors-wbwboot-cpu", "wordbyword miner alone, anchors lexicon + target-language LM",
        system="wordbyword miner alone (ours)", text={"kind": UNS}),
    Row(T + "cedict-wbwboot-cpu", "wordbyword miner alone, CC-CEDICT lexicon + target-language LM",
        system="wordbyword miner alone (ours)", text={"kind": LEX}),
    Row(T + "default-cpu", "{run} (denoising + back-translation; copies its input)", text={"kind": UNS}),
    Row(T + "anchors-mask-nolatent-cpu", "{run} (anchors, target vocabulary, denoising anneal to 0.1)",
        text={"kind": UNS}),
    Row(T + "anchors-mask-cpu", "{run} (anchors-mask-nolatent-cpu's settings + `train.latent_adv=0.1`, at an "
        "earlier commit; collapsed to one output per direction)", text={"kind": UNS}),
    Row(T + "anchors-wbwboot-cpu", "{run} (anchors, target vocabulary, the wordbyword bootstrap)",
        text={"kind": UNS}),
    Row(T + "cedict-wbw-cpu", "{run} (CC-CEDICT seed; word-by-word first back-translation)", text={"kind": LEX}),
    Row(T + "cedict-mask-cpu", "{run} (cedict-wbw-cpu's settings + the target vocabulary, at a later commit)",
        text={"kind": LEX}),
    Row(T + "cedict-wbwboot-cpu", "{run} (CC-CEDICT seed, target vocabulary, the wordbyword bootstrap)",
        text={"kind": LEX}),
])

WMT = Table([Column("ref_bleu", "BLEU"), Column("dir:zh2en:ref_bleu", "zh->en"), Column("dir:en2zh:ref_bleu", "en->zh"),
             Column("dir:zh2en:len_ratio", "len into English", "{:.2f}")], [
    Row(T + f"{run}/{test}", f"{label}, {test.upper()}", system=system)
    for run, label, system in [("e5-cpu", "input copy", "input copy"), ("e5-cpu", "e5-cpu (greedy)", "e5-cpu"),
                               ("cedict-wbwboot-cpu", "cedict-wbwboot-cpu", "cedict-wbwboot-cpu"),
                               ("cedict-wbw-cpu", "cedict-wbw-cpu", "cedict-wbw-cpu"),
                               ("anchors-wbwboot-cpu", "anchors-wbwboot-cpu", "anchors-wbwboot-cpu"),
                               ("default-cpu", "default-cpu", "default-cpu")]
    for test in ("wmt21", "wmt22")
] + [Row(T + "cedict-mask-cpu/wmt21", "cedict-mask-cpu, WMT21 (WMT22 not scored)", system="cedict-mask-cpu")],
    first="system, test set")

G = "summarization/"
SUMMARIZATION = Table([Column("at", "trained at"), Column("looks", "test looks"), Column("rouge1", "R-1"),
                       Column("rouge2", "R-2"), Column("rougeL", "R-L"), Column("words", "words"),
                       Column("repeats", "rep3 %"), Column("acc", "ACC (headline-like)")], [
    Row(G + "extract-copy-cpu", "input copy", system="input copy"),
    Row(G + "extract-copy-cpu", "lead-8 (the committed `test.lead8_baseline`) = first 8 words",
        system="lead-8 (published outputs)"),
    Row(G + "ae2000-cpu", "first 7 words", system="first 7 words"),
    Row(G + "extract-copy-cpu", "the search alone (`extract` miner, `--miner extract`)",
        system="extract miner alone (ours)"),
    Row(G + "extract-search-lm", "{run}: the search + a pretrained LM's last step (`miner.rescore_lm=smollm2`, "
        "top 24 neighbours, weight 0.5; `scripts/bench_extract.py`; 2213 s for the 1,933 articles)",
        system="search + smollm2 last step (top 24, weight 0.5)"),
    Row(G + "extract-copy-cpu-after-bootstrap", "{run} (bootstrap only: 400 autoencoder + 2400 pair steps; "
        "no selection)"),
    Row(G + "extract-copy-cpu", "{run} ‡ (the cpu preset: + 50 D + 100 adversarial steps, greedy)", bold=True),
    Row(G + "extract-copy-cpu-beam4", "{run} ‡ (the same model, `--beam 4`)", bold=True),
    Row(G + "extract-cpu", "{run} ‡ (the previous preset: no extraction constraint, 1600 pair steps)"),
    Row(G + "extract-cpu-after-bootstrap", "{run} (its bootstrap only; no selection)"),
    Row(G + "ae2000-cpu", "{run} ‡ (2000 autoencoder + 200 adversarial steps, no bootstrap, 7 words asked)"),
    Row(G + "wordsleft-cpu", "{run} ‡ (1000 denoising steps)"),
    Row(G + "default-cpu", "{run} (encoder `<len_k>` only, last checkpoint)"),
    Row(G + "lenmix-cpu", "{run} (a negative result, last checkpoint)"),
])

TABLES = {"readme-sentiment": README, "sentiment": SENTIMENT, "sentiment_zh": ZH, "translation": TRANSLATION,
          "translation-wmt": WMT, "summarization": SUMMARIZATION, **tables_bench.TABLES}


def files() -> list[Path]:
    return [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def rebuild(text: str, in_docs: bool, where: str) -> tuple[str, list[str]]:
    """The file's text with every block regenerated, and the names of the blocks that changed."""
    changed = []

    def one(m: re.Match) -> str:
        name = m.group(2)
        if name not in TABLES:
            raise SystemExit(f"{where}: unknown table {name!r} (known: {', '.join(TABLES)})")
        new = block(TABLES[name], in_docs)
        if new != m.group(3):
            changed.append(name)
        return m.group(1) + new + m.group(4)

    return BLOCK.sub(one, text), changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path in files():
        text = path.read_text()
        where = str(path.relative_to(ROOT))
        new, changed = rebuild(text, path.parent.name == "docs", where)
        stale += [f"{where}: table:{name}" for name in changed]
        if changed and not args.check:
            path.write_text(new)
    for line in stale:
        print(("out of date: " if args.check else "rewrote: ") + line)
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
