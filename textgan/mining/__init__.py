"""Pseudo-parallel pairs mined from unpaired corpora (train.bootstrap): the miners, one package.

template.py holds the miners and mine_pairs for now (it was textgan/bootstrap.py); margin.py the `mine`
miner (was textgan/mining.py), extract.py the extract miner's search, pairs.py the pairs' record.
"""

from .extract import BOS, EOS, Extractor, NgramLM, idf_weights
from .margin import MarginIndex, MiningMiner, query_margin, translation_hits
from .pairs import Pairs
from .template import (MINERS, ContentIndex, ExtractMiner, PieceUnits, RetrievalMiner, StyleMarkers, TemplateMiner,
                       WordByWordMiner, WordUnits, fill, join_units, make_miner, mine_pairs, segmenter)

__all__ = ["BOS", "EOS", "MINERS", "ContentIndex", "ExtractMiner", "Extractor", "MarginIndex", "MiningMiner", "NgramLM",
           "Pairs", "PieceUnits", "RetrievalMiner", "StyleMarkers", "TemplateMiner", "WordByWordMiner", "WordUnits",
           "fill", "idf_weights", "join_units", "make_miner", "mine_pairs", "query_margin", "segmenter",
           "translation_hits"]
