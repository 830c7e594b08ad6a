"""Extraction-constrained decoding: the summarizer writes only subsequences of its source's words."""

import pytest
import torch

from textgan.config import ConfigError, load_config
from textgan.constrain import CopyConstraint, split_words
from textgan.decoding.search import Search, generate
from textgan.models.generator import Generator, build_generator
from textgan.tokenizer import EOS
from textgan.config import GeneratorConfig

V = 50
WORD_START = [i % 2 == 0 for i in range(V)]      # even ids begin a word, odd ids continue one
TITLE, ARTICLE = 4, 5                             # domain tokens


def is_subsequence(words, source):
    it = iter(source)
    return all(w in it for w in words)


def extractor(seed=0):
    """A random tiny generator whose decodes into TITLE are extractive; ids 40..49 are <len_1>..<len_10>."""
    torch.manual_seed(seed)
    cfg = GeneratorConfig(d_model=32, encoder_layers=1, decoder_layers=1, heads=2, ffn_dim=64, dropout=0.0)
    return Generator(build_generator(cfg, V, max_len=40), length_ids=list(range(40, 50)), word_start=WORD_START,
                     extract_to=[TITLE]).eval()


def sources(b=6, t=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(6, 40, (b, t), generator=gen)
    ids[:, 0] = 2 * torch.randint(3, 20, (b,), generator=gen)       # a sentence starts with a word
    lengths = torch.randint(4, t + 1, (b,), generator=gen)
    mask = torch.arange(t)[None] < lengths[:, None]
    return ids.masked_fill(~mask, 0), mask


def written_words(ids, word_start=WORD_START):
    ids = ids[: ids.index(EOS)] if EOS in ids else ids
    return split_words(ids, word_start, set())


def test_split_words_groups_pieces_after_each_word_start():
    assert split_words([6, 7, 9, 8, 10, 11, 41], WORD_START, {41}) == [(6, 7, 9), (8,), (10, 11)]


def test_the_constraint_allows_continuations_then_next_words_in_order():
    c = CopyConstraint([[6, 7, 8, 10, 11, 8]], WORD_START, V)     # words: (6,7) (8,) (10,11) (8,)
    assert c.allowed(0) == {6, 8, 10}                            # any word may come first; no EOS before a word
    c.advance([0], [10])
    assert c.allowed(0) == {11}                                  # (10,) is no word: it must go on
    c.advance([0], [11])
    assert c.allowed(0) == {8, EOS}                              # after (10,11) only the last (8,) is left
    c.advance([0], [8])
    assert c.allowed(0) == {EOS}
    c.advance([0], [EOS])
    assert c.mask([0]).all()                                     # a finished row writes padding freely


def test_unordered_words_are_each_used_once():
    c = CopyConstraint([[6, 8, 6]], WORD_START, V, ordered=False)
    for t in (6, 6):
        c.advance([0], [t])
    assert c.allowed(0) == {8, EOS}                              # both 6's used


def test_greedy_and_sampled_decodes_are_subsequences_of_the_source_words():
    g = extractor()
    src, mask = sources()
    words = torch.full((src.size(0),), 4)
    skip = set(range(40, 50)) | {0}
    source_words = [split_words(row[: int(n)], WORD_START, skip) for row, n in zip(src.tolist(), mask.sum(1))]
    outputs = generate(g, src, mask, TITLE, Search(max_len=30), words)
    outputs += [row.tolist() for row in g.sample(src, mask, TITLE, mode="multinomial", max_len=30, words=words).ids]
    for out, source in zip(outputs, source_words + source_words):
        assert EOS in out, "with 30 pieces every row ends"
        assert written_words(out) and is_subsequence(written_words(out), source)
    # the same model without the constraint writes other words (so the test above can fail)
    free = generate(Generator(g.model, g.length_ids.tolist(), WORD_START).eval(), src, mask, TITLE, Search(max_len=30), words)
    assert any(not is_subsequence(written_words(out), source) for out, source in zip(free, source_words))


def test_only_rows_into_an_extract_domain_are_constrained():
    g = extractor()
    src, mask = sources()
    to = torch.tensor([TITLE, ARTICLE] * 3)
    c = g.constraint(src, mask, to)
    assert c.mask(list(range(6)))[1::2].all() and not c.mask(list(range(6)))[0::2].all()
    assert g.constraint(src, mask, ARTICLE) is None


def test_relax_rebuilds_the_constrained_log_probabilities():
    """REINFORCE's teacher-forced pass applies the masks the decoding loop used: the same log-probs."""
    g = extractor()
    src, mask = sources()
    drawn = g.sample(src, mask, TITLE, mode="multinomial", max_len=20)
    assert drawn.allowed is not None and drawn.allowed.shape == (*drawn.ids.shape, V)
    relaxed = g.relax(src, mask, TITLE, drawn, "multinomial")
    assert torch.allclose(relaxed.logprobs[drawn.mask], drawn.logprobs[drawn.mask], atol=1e-4)
    assert torch.isfinite(relaxed.logprobs).all()
    relaxed.logprobs[drawn.mask].sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in g.parameters() if p.grad is not None)
    gumbel = g.relax(src, mask, TITLE, drawn, "gumbel", tau=0.5)
    assert torch.isfinite(gumbel.probs).all()
    assert (gumbel.probs[~drawn.allowed] < 1e-6).all()           # no mass on forbidden pieces


def test_extract_to_must_name_a_domain(tmp_path):
    from textgan.checkpoint import wrap_generator
    from textgan.tokenizer import Tokenizer

    cfg = load_config("toy_summarization", overrides=["generator.extract_to=[headline]"])
    tok = Tokenizer.train([f"word{i} of article {i}" for i in range(200)], tmp_path / "sp.model",
                          cfg.data.domains, "gigaword", vocab_size=60, length_tokens=4)
    with pytest.raises(ConfigError, match="'headline', which is not a domain"):
        wrap_generator(build_generator(cfg.generator, tok.vocab_size, 30), cfg, tok)


def test_a_decode_cut_mid_word_drops_the_unfinished_word():
    c = CopyConstraint([[6, 7, 9, 8]], WORD_START, V)
    c.advance([0], [8])
    assert c.unfinished(0) == 0
    c = CopyConstraint([[6, 7, 9, 8]], WORD_START, V)
    c.advance([0], [6])
    c.advance([0], [7])
    assert c.unfinished(0) == 2                                  # (6, 7) is no word of the source
    g = extractor()
    src, mask = sources()
    skip = set(range(40, 50)) | {0}
    for out, row in zip(generate(g, src, mask, TITLE, Search(max_len=3), torch.full((6,), 4)), src.tolist()):
        source = split_words(row, WORD_START, skip)
        assert is_subsequence(written_words(out), source)        # whole words only, even when cut


def test_beam_search_under_the_constraint_writes_subsequences():
    g = extractor()
    src, mask = sources()
    skip = set(range(40, 50)) | {0}
    for out, row in zip(generate(g, src, mask, TITLE, Search(beam=4, max_len=30), torch.full((6,), 3)), src.tolist()):
        assert EOS in out and is_subsequence(written_words(out), split_words(row, WORD_START, skip))
