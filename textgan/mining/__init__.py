"""Pseudo-parallel pairs mined from unpaired corpora: the data of the bootstrap phase.

The strongest unpaired systems do not start their adversarial or RL phase from an autoencoder that
copies: they first learn, by maximum likelihood, from (source, pseudo-target) pairs mined from the two
unpaired corpora (DualRL, Luo et al. 2019; IMaT, Jin et al. 2019). A miner never sees a labelled pair:
it reads the training text of each domain and nothing else. Each kind of task has its own miner, one
module each, behind one interface, and the trainer's bootstrap phase learns from any of them:

    miner = make_miner(name, cfg.miner, log, segment, lexicon)
    pairs = miner.mine(texts_by_domain)          # {(src, tgt): Pairs}
    miner.transfer(texts, src, tgt)              # the miner alone as a system (a baseline row)

Miners (train.bootstrap):
- `template`, `retrieve` (template.py): Li et al. 2018's TemplateBased: style markers by salience
  deleted, the target-domain sentence with the most similar content retrieved, its markers filling the
  slots; `retrieve` takes the retrieved sentence itself (IMaT's and TSST's starting point).
- `extract` (extract.py; summarization): word-extraction search (Schumann et al. 2020): the k of an
  article's words, in order, that a headline n-gram model finds fluent and that keep its rare words.
- `wordbyword` (wordbyword.py; translation): each sentence translated piece by piece through the run's
  cross-lingual lexicon (train.crosslingual), a target-language n-gram model choosing (Kim et al. 2018).
- `mine` (margin.py; translation): real sentences of both languages paired as translations when a
  pretrained multilingual encoder (miner.encoder, multilingual-e5-small) finds them mutual nearest
  neighbours by margin score (Artetxe & Schwenk 2019; CRISS).

Text is cut into units by a Segmenter (segment.py, miner.units: words or SentencePiece pieces). The pairs'
record, its TSV and which pairs training keeps (the pair filters) are in pairs.py; mine_pairs below writes
them under <run>/pairs/ and reads them back on resume.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .extract import ExtractMiner
from .margin import MiningMiner
from .pairs import Pairs, training_pairs
from .segment import PieceUnits, WordUnits, segmenter
from .template import RetrievalMiner, TemplateMiner
from .wordbyword import WordByWordMiner

__all__ = ["MINERS", "ExtractMiner", "MiningMiner", "Pairs", "PieceUnits", "RetrievalMiner", "TemplateMiner",
           "WordByWordMiner", "WordUnits", "make_miner", "mine_pairs", "segmenter", "training_pairs"]


MINERS = {"template": TemplateMiner, "retrieve": RetrievalMiner, "extract": ExtractMiner,
          "wordbyword": WordByWordMiner, "mine": MiningMiner}


def make_miner(name: str, cfg, log=print, segment=None, lexicon=None):
    """MINERS[name] with the run's segmenter and, for `wordbyword`, its cross-lingual lexicon."""
    if name not in MINERS:
        raise ValueError(f"unknown miner {name!r}; choose from {', '.join(MINERS)}")
    return MINERS[name](cfg, log, segment, **({"lexicon": lexicon} if name == "wordbyword" else {}))


def mine_pairs(name: str, cfg, texts_by_domain: dict[str, list[str]], out_dir: Path, log=print,
               progress_factory=None, segment=None, lexicon=None, miner=None) -> dict[tuple[str, str], Pairs]:
    """Mine with MINERS[name] (or `miner`, any object with this interface's `mine`, e.g. a trained run as
    training/teacher.py's TeacherMiner) and write `<out_dir>/<src>2<tgt>.tsv` (+ mining.json: settings,
    counts, seconds, and the miner's `report` if it keeps one), or read them back when they are already
    there (a resumed run)."""
    out_dir = Path(out_dir)
    info_file = out_dir / "mining.json"
    if info_file.exists():
        info = json.loads(info_file.read_text())
        return {(p["src"], p["tgt"]): Pairs.load(out_dir / p["file"]) for p in info["pairs"]}
    started = time.time()
    miner = miner or make_miner(name, cfg, log, segment, lexicon)
    pairs = miner.mine(texts_by_domain, progress_factory)
    out_dir.mkdir(parents=True, exist_ok=True)
    listing = []
    for (src, tgt), p in pairs.items():
        p.save(out_dir / f"{src}2{tgt}.tsv")
        listing.append({"src": src, "tgt": tgt, "file": f"{src}2{tgt}.tsv", "pairs": len(p),
                        "of": len(texts_by_domain[src]),
                        "mean_score": sum(p.scores) / max(1, len(p))})
    info = {"miner": name, "settings": dict(vars(cfg)), "seconds": round(time.time() - started, 1), "pairs": listing,
            **({"report": miner.report} if getattr(miner, "report", None) else {})}
    info_file.write_text(json.dumps(info, indent=2) + "\n")
    log(f"mined pseudo-parallel pairs ({name}) in {info['seconds']:.0f} s: "
        + ", ".join(f"{p['src']}->{p['tgt']} {p['pairs']}" for p in listing))
    return pairs
