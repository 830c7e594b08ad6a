"""The wordbyword miner's settings, chosen on dev: BLEU of the miner alone on the Tatoeba dev set.

    python scripts/wordbyword_sweep.py --run runs/translation/cedict-wbwboot-cpu
    # writes results/translation/wordbyword-miner-dev/

Takes a trained run's tokenizer and cross-lingual lexicon (crosslingual.pt), fits the miner's target piece
n-gram models on the task's training text (as a run does), and translates the dev sources of both
directions with each setting, beside the nearest piece alone (CrossLingual.word_by_word). sacreBLEU
against the dev references (13a into English, zh into Chinese).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import sacrebleu
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from textgan.provenance import commit  # noqa: E402
from bench_speed import machine  # noqa: E402

from textgan.mining import make_miner, segmenter  # noqa: E402
from textgan.config import config_from_dict  # noqa: E402
from textgan.crosslingual import CrossLingual  # noqa: E402
from textgan.data import prepare_data  # noqa: E402
from textgan.evaluate import task_directions  # noqa: E402
from textgan.tokenizer import Tokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = [{"candidates": c, "lm_weight": w} for c in (5, 10) for w in (0.0, 0.5, 1.0, 2.0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a translation run with crosslingual.pt")
    parser.add_argument("--test-set", default="dev")
    args = parser.parse_args()

    run = Path(args.run)
    cfg = config_from_dict(yaml.safe_load((run / "config.yaml").read_text()))
    tok = Tokenizer(run / "tokenizer.model", cfg.data.domains, cfg.data.normalize)
    xl = CrossLingual.load(run / "crosslingual.pt")
    split = prepare_data(cfg)[0]
    texts = {d: list(split[d]["text"]) for d in cfg.data.domains}
    directions = task_directions(cfg, test_set=args.test_set)

    def bleu(outputs: dict) -> dict:
        return {d.name: round(sacrebleu.corpus_bleu(outputs[d.name], [[r or "" for r in refs] for refs in d.references],
                                                    tokenize=cfg.eval.bleu_tokenize[d.tgt]).score, 2)
                for d in directions}

    rows = [{"system": "nearest piece alone", **bleu({d.name: xl.word_by_word(tok, d.inputs, d.src, d.tgt)
                                                      for d in directions})}]
    print(json.dumps(rows[-1]), flush=True)
    for setting in SETTINGS:
        miner = make_miner("wordbyword", replace(cfg.miner, **setting), segment=segmenter("pieces", tok),
                           lexicon=xl, log=lambda *_: None).fit(texts)
        rows.append({"system": ", ".join(f"{k} {v}" for k, v in setting.items()),
                     **bleu({d.name: miner.transfer(d.inputs, d.src, d.tgt) for d in directions})})
        print(json.dumps(rows[-1]), flush=True)

    out = ROOT / "results" / "translation" / "wordbyword-miner-dev"
    out.mkdir(parents=True, exist_ok=True)
    command = "python scripts/wordbyword_sweep.py " + " ".join(sys.argv[1:])
    info = {"command": command, "commit": commit(short=True), "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(),
            "lexicon": xl.info.get("method"), "bli_p1_zh2en": xl.info.get("bli_p1_zh2en"),
            "test_set": args.test_set, "rows": rows}
    (out / "results.json").write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    names = [d.name for d in directions]
    table = "\n".join(f"| {r['system']} | " + " | ".join(f"{r[n]:.2f}" for n in names) + " |" for r in rows)
    (out / "README.md").write_text(f"""# The wordbyword miner's settings on {args.test_set} (the miner alone)

Command: `{command}` at commit {info['commit']}, {info['date']}; {info['machine']['cpu']}.
Lexicon: {run}/crosslingual.pt ({info['lexicon']}, lexicon induction P@1 {info['bli_p1_zh2en']:.1f} %);
temperature {cfg.miner.temperature}, beam {cfg.miner.beam}, {cfg.miner.lm_order}-gram piece models of the
training text. sacreBLEU on the Tatoeba {args.test_set} multi-reference sets.

| setting | {' | '.join(names)} |
|---|{'---|' * len(names)}
{table}

lm_weight 0 is the nearest candidate with punctuation and shared pieces handled as the miner does.
""")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
