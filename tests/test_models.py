import pytest
import torch
import torch.nn.functional as F

from textgan.config import DiscriminatorConfig, GeneratorConfig
from textgan.decoding.search import Search, beam_search, generate, greedy
from textgan.losses import ESTIMATORS, AdvOptions
from textgan.models.discriminator import DomainCritic, last_position
from textgan.models.generator import Generator, build_generator
from textgan.tokenizer import EOS

V = 50


def tiny_generator(seed=0):
    torch.manual_seed(seed)
    cfg = GeneratorConfig(d_model=32, encoder_layers=1, decoder_layers=1, heads=2, ffn_dim=64, dropout=0.0)
    return Generator(build_generator(cfg, V, max_len=20)).eval()


def tiny_critic(mode="multiclass"):
    torch.manual_seed(0)
    cfg = DiscriminatorConfig(mode=mode, d_model=32, layers=1, heads=2, ffn_dim=64, dropout=0.0)
    return DomainCritic(cfg, V, n_domains=2, max_len=20).eval()


def batch(b=3, t=6):
    ids = torch.randint(6, V, (b, t))
    ids[:, -1] = EOS
    return ids, torch.ones(b, t, dtype=torch.bool)


def test_one_hot_soft_input_gives_the_same_logits_as_ids():
    g, critic = tiny_generator(), tiny_critic()
    src, mask = batch()
    one_hot = F.one_hot(src, V).float()
    assert torch.allclose(g.embed(src), g.embed(one_hot), atol=1e-5)
    tgt, _ = batch()
    assert torch.allclose(g(src, mask, tgt, to=4), g(one_hot, mask, tgt, to=4), atol=1e-4)
    for mode in ("multiclass", "binary"):
        critic = tiny_critic(mode)
        for a, b in zip(critic.log_probs(src, 1), critic.log_probs(one_hot, 1)):
            assert torch.allclose(a, b, atol=1e-5)


def test_forward_and_sample_shapes():
    g = tiny_generator()
    src, mask = batch(b=4, t=5)
    assert g(src, mask, src, to=4).shape == (4, 5, V)
    for mode in ("greedy", "multinomial", "gumbel", "soft"):
        s = g.sample(src, mask, to=4, mode=mode, max_len=7)
        t = s.ids.size(1)
        assert s.ids.shape == s.mask.shape == s.logprobs.shape == (4, t) and t <= 7
        assert (s.probs is None) == (mode in ("greedy", "multinomial"))
        if s.probs is not None:
            assert s.probs.shape == (4, t, V)
            assert torch.allclose(s.probs.sum(-1), torch.ones(4, t), atol=1e-4)
        # nothing is masked in before the first EOS, everything after it is
        for row_ids, row_mask in zip(s.ids.tolist(), s.mask.tolist()):
            end = row_ids.index(EOS) + 1 if EOS in row_ids else len(row_ids)
            assert row_mask == [True] * end + [False] * (len(row_ids) - end)


def test_greedy_sample_matches_generate():
    g = tiny_generator()
    src, mask = batch(b=2, t=5)
    s = g.sample(src, mask, to=4, mode="greedy", max_len=8)
    generated = generate(g, src, mask, 4, Search(max_len=8))
    for row, (ids, m) in enumerate(zip(s.ids.tolist(), s.mask.tolist())):
        assert [i for i, keep in zip(ids, m) if keep] == generated[row][: sum(m)]


def test_rows_with_their_own_domain_token_and_budget_decode_as_if_alone():
    """One stacked batch with a (B,) `to` and a (B,) max_len gives each row what its own batch gives."""
    g = tiny_generator()
    src, mask = batch(b=5, t=6)
    to, limit = torch.tensor([4, 4, 3, 3, 3]), torch.tensor([3, 3, 7, 7, 7])
    stacked = g.sample(src, mask, to=to, mode="greedy", max_len=limit)
    forward = g(src, mask, stacked.ids, to=to)
    for rows, token, budget in [(slice(0, 2), 4, 3), (slice(2, 5), 3, 7)]:
        alone = g.sample(src[rows], mask[rows], to=token, mode="greedy", max_len=budget)
        for ids, m, ids_alone, m_alone in zip(stacked.ids[rows].tolist(), stacked.mask[rows].tolist(),
                                              alone.ids.tolist(), alone.mask.tolist()):
            assert [i for i, k in zip(ids, m) if k] == [i for i, k in zip(ids_alone, m_alone) if k]
            assert sum(m) <= budget
        width = alone.ids.size(1)
        assert torch.allclose(forward[rows, :width][alone.mask], g(src[rows], mask[rows], alone.ids, to=token)[alone.mask],
                              atol=1e-5)


def test_last_position_picks_each_rows_last_real_entry():
    values = torch.arange(12).view(2, 6)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    assert last_position(values, mask).tolist() == [2, 11]


def _adv_grad_norm(estimator):
    g, critic = tiny_generator(), tiny_critic()
    g.train()
    critic.requires_grad_(False)
    src, mask = batch()
    mode = {"soft": "soft", "gumbel": "gumbel", "reinforce": "multinomial"}[estimator]
    fake = g.sample(src, mask, to=4, mode=mode, tau=0.5, max_len=6)
    loss, logs = ESTIMATORS[estimator](fake, lambda x: critic.log_probs(x, 1), AdvOptions())
    loss.backward()
    assert all(p.grad is None for p in critic.parameters())
    return sum(p.grad.norm() for p in g.parameters() if p.grad is not None)


def test_gradients_reach_the_generator_under_soft_and_gumbel():
    for estimator in ("soft", "gumbel"):
        assert _adv_grad_norm(estimator) > 0, estimator


def test_gradients_reach_the_generator_under_reinforce():
    assert _adv_grad_norm("reinforce") > 0


def test_conditional_gumbel_keeps_the_drawn_token_on_top():
    torch.manual_seed(1)
    from textgan.models.generator import conditional_gumbel

    logits = torch.randn(200, V) * 3
    ids = torch.multinomial(logits.softmax(-1), 1).squeeze(1)
    perturbed = logits.log_softmax(-1) + conditional_gumbel(logits, ids)
    assert torch.equal(perturbed.argmax(-1), ids)


def test_relax_matches_the_decoding_loop_and_carries_gradients():
    g = tiny_generator()
    src, mask = batch(b=4, t=5)
    drawn = g.sample(src, mask, to=4, mode="multinomial", tau=0.7, max_len=6)
    again = g.relax(src, mask, 4, drawn, "multinomial", tau=0.7)      # one teacher-forced pass, same ids
    assert torch.allclose(again.logprobs[drawn.mask], drawn.logprobs[drawn.mask], atol=1e-4)
    for mode in ("soft", "gumbel"):
        relaxed = g.relax(src, mask, 4, drawn, mode, tau=0.5, straight_through=mode == "gumbel")
        assert relaxed.probs.shape == (*drawn.ids.shape, V)
        assert torch.allclose(relaxed.probs.sum(-1), torch.ones(drawn.ids.shape), atol=1e-4)
        g.zero_grad()
        (relaxed.probs[..., 7].sum()).backward()
        assert g.model.get_input_embeddings().weight.grad.abs().sum() > 0
    plain = g.relax(src, mask, 4, drawn, "gumbel", tau=0.5)
    assert torch.equal(plain.probs.argmax(-1)[drawn.mask], drawn.ids[drawn.mask])   # relaxed sample agrees


def test_conditional_gumbel_relaxation_has_the_gumbel_softmax_distribution():
    """Drawing the token first and the noise given it must give the plain Gumbel-softmax law."""
    from textgan.models.generator import conditional_gumbel

    torch.manual_seed(0)
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0, 0.5]).expand(40000, 5)
    ids = torch.multinomial(logits.softmax(-1), 1).squeeze(1)
    conditional = ((logits.log_softmax(-1) + conditional_gumbel(logits, ids)) / 0.5).softmax(-1)
    plain = F.gumbel_softmax(logits, tau=0.5)
    assert torch.allclose(conditional.mean(0), plain.mean(0), atol=0.01)
    assert torch.allclose((conditional ** 2).mean(0), (plain ** 2).mean(0), atol=0.01)


def length_generator(words_left=True):
    """tiny_generator with length control: ids 40..49 are <len_1>..<len_10>, even ids begin a word."""
    g = tiny_generator()
    return Generator(g.model, length_ids=list(range(40, 50)), word_start=[i % 2 == 0 for i in range(V)],
                     words_left=words_left).eval()


def test_words_left_teacher_forcing_matches_step_by_step_decoding():
    """The words-left count of a teacher-forced pass (cumulative over the target) is the one the decoding
    loop keeps: the same log-probabilities for the same tokens, in sample and in greedy."""
    g = length_generator()
    src, mask = batch(b=3, t=5)
    words = torch.tensor([1, 3, 6])
    s = g.sample(src, mask, to=4, mode="multinomial", max_len=9, words=words)
    forced = g(src, mask, s.ids, 4, words).log_softmax(-1).gather(2, s.ids[..., None]).squeeze(-1)
    assert torch.allclose(forced[s.mask], s.logprobs[s.mask], atol=1e-4)
    greedy = g.sample(src, mask, to=4, mode="greedy", max_len=9, words=words)
    for row, (ids, m) in enumerate(zip(greedy.ids.tolist(), greedy.mask.tolist())):
        assert [i for i, keep in zip(ids, m) if keep] == generate(g, src, mask, 4, Search(max_len=9), words)[row][: sum(m)]


def test_the_length_request_reaches_encoder_and_decoder():
    src, mask = batch(b=2, t=5)
    tgt, _ = batch(b=2, t=6)
    for words_left in (False, True):
        g = length_generator(words_left)
        cond, cond_mask = g.condition(src, mask, torch.tensor([2, 30]))
        assert cond[:, 0].tolist() == [41, 49] and cond.shape == (2, 6) and cond_mask.all()   # clamped to <len_10>
        assert not torch.allclose(g(src, mask, tgt, 4, torch.tensor([2, 2])), g(src, mask, tgt, 4, torch.tensor([3, 3])))
    # the decoder's own input: same weights and request, with and without the words-left encoding;
    # requests beyond K are K for the decoder too
    g, plain = length_generator(), length_generator(words_left=False)
    assert not torch.allclose(g(src, mask, tgt, 4, torch.tensor([3, 3])), plain(src, mask, tgt, 4, torch.tensor([3, 3])))
    assert torch.allclose(g(src, mask, tgt, 4, torch.tensor([10, 10])), g(src, mask, tgt, 4, torch.tensor([12, 12])))
    with pytest.raises(ValueError, match="no length control"):
        tiny_generator().condition(src, mask, torch.tensor([2, 2]))


def test_beam_search_finds_the_best_normalized_sequence_and_is_greedy_with_one_beam():
    """Generator.beam_search (used with words_left and the extraction constraint): with as many beams as
    pieces and 2 steps it must return the best of all sequences by log p / length, found by brute force
    (teacher-forced scores of every [a, b] and of [EOS]); with one beam it is greedy decoding."""
    g = length_generator()
    src, mask = batch(b=2, t=5)
    words = torch.tensor([1, 3])
    assert beam_search(g, src, mask, 4, beam=1, max_len=8, words=words) == greedy(g, src, mask, 4, 8, words)
    with torch.no_grad():
        for row in range(2):
            s, m, w = src[row:row + 1].expand(V * V, -1), mask[row:row + 1].expand(V * V, -1), words[row:row + 1].expand(V * V)
            pairs = torch.cartesian_prod(torch.arange(V), torch.arange(V))                  # (V*V, 2)
            logp = g(s, m, pairs, 4, w).log_softmax(-1).gather(2, pairs[..., None]).squeeze(-1)
            two = logp.sum(1) / 2
            two[pairs[:, 0] == EOS] = float("-inf")                                      # [EOS, x] is [EOS]
            eos = logp[pairs[:, 0] == EOS][0, 0]
            best = [EOS] if eos > two.max() else pairs[two.argmax()].tolist()
            assert beam_search(g, src[row:row + 1], mask[row:row + 1], 4, beam=V, max_len=2, words=words[row:row + 1]) == [best]
    assert generate(g, src, mask, 4, Search(beam=3, max_len=8), words)   # generate sends words_left models here


def test_beam_search_nbest_keeps_each_rows_best_hypotheses_best_first():
    """nbest n: each row's n hypotheses of highest log p(y | src) / |y|, best first (row r's at r*n ..), the
    first of them beam search's answer; in both beam searches (the own one and `transformers`' generate)."""
    g = length_generator()
    src, mask = batch(b=2, t=5)
    words = torch.tensor([1, 3])
    best = beam_search(g, src, mask, 4, beam=4, max_len=8, words=words)
    top = beam_search(g, src, mask, 4, beam=4, max_len=8, words=words, nbest=3)
    assert len(top) == 6 and [top[0], top[3]] == best
    with torch.no_grad():
        for r in range(2):
            mean = []
            for ids in top[3 * r:3 * r + 3]:
                logits = g(src[r:r + 1], mask[r:r + 1], torch.tensor([ids]), 4, words[r:r + 1])
                mean.append(float(logits.log_softmax(-1)[0, torch.arange(len(ids)), ids].mean()))
            assert mean == sorted(mean, reverse=True) and len({tuple(h) for h in top[3 * r:3 * r + 3]}) == 3
    plain = tiny_generator()                                   # no words: transformers' generate
    top = generate(plain, src, mask, 4, Search(beam=3, nbest=3, max_len=8))
    assert len(top) == 6 and [top[0], top[3]] == generate(plain, src, mask, 4, Search(beam=3, max_len=8))
    assert all(EOS not in ids[:-1] for ids in top)             # each hypothesis ends at its first EOS
    with pytest.raises(ValueError, match="beam >= nbest"):
        generate(plain, src, mask, 4, Search(beam=2, nbest=3, max_len=8))



def test_beam_search_nbest_ranks_hypotheses_of_different_lengths_by_mean_log_prob():
    """With EOS and piece 9 both likely at every step, the own beam search's 4 best end at different
    lengths, where the total log p(y | src) and the length-normalised one rank them differently: the n-best
    come in the order of log p(y | src) / |y|."""
    g = tiny_generator()
    with torch.no_grad():
        g.model.final_logits_bias[0, EOS] = 3.0
        g.model.final_logits_bias[0, 9] = 3.0
    src, mask = batch(b=2, t=5)
    top = beam_search(g, src, mask, 4, beam=4, max_len=8, nbest=4)
    for r in range(2):
        hyps = top[4 * r:4 * r + 4]
        with torch.no_grad():
            total = [float(g(src[r:r + 1], mask[r:r + 1], torch.tensor([ids]), 4).log_softmax(-1)[
                0, torch.arange(len(ids)), ids].sum()) for ids in hyps]
        mean = [t / len(ids) for t, ids in zip(total, hyps)]
        assert len({len(ids) for ids in hyps}) == 4 and total != sorted(total, reverse=True)
        assert mean == sorted(mean, reverse=True)

def test_draw_samples_the_categorical_distribution():
    from textgan.models.generator import draw

    torch.manual_seed(0)
    probs = torch.tensor([[0.0, 0.1, 0.0, 0.6, 0.3]]).repeat(40000, 1)
    counts = torch.bincount(draw(probs), minlength=5).float() / 40000
    assert counts[0] == 0 and counts[2] == 0                     # zero-probability tokens never come out
    assert torch.allclose(counts, probs[0], atol=0.01)


def stuttering_generator(max_run):
    """A tiny generator that, left alone, writes piece 9 at every step (its output bias dwarfs the rest)."""
    g = tiny_generator()
    g.model.final_logits_bias[0, 9] = 50.0
    g.max_run = max_run
    return g


def longest_run(ids, piece=9):
    best = run = 0
    for t in ids:
        run = run + 1 if t == piece else 0
        best = max(best, run)
    return best


def test_run_guard_stops_a_stuttering_decoder_in_every_loop():
    src, mask = batch(b=2, t=5)
    src[:, :4] = torch.tensor([6, 7, 8, 10])
    assert longest_run(generate(stuttering_generator(0), src, mask, 4, Search(max_len=8))[0]) == 8   # unguarded
    g = stuttering_generator(2)
    for ids in [*generate(g, src, mask, 4, Search(max_len=8)), *generate(g, src, mask, 4, Search(beam=3, max_len=8)),
                *generate(g, src, mask, 4, Search(sample=True, max_len=8))]:
        assert longest_run(ids) == 2 and len(ids) >= 6          # it writes on, only never 9 a third time
    drawn = g.sample(src, mask, to=4, mode="multinomial", max_len=8)
    assert all(longest_run(row) == 2 for row in drawn.ids.tolist())
    again = g.relax(src, mask, 4, drawn, "multinomial")        # the guard's masks reach the one-pass view
    assert torch.allclose(again.logprobs[drawn.mask], drawn.logprobs[drawn.mask], atol=1e-4)


def test_run_guard_lets_a_run_through_where_the_source_has_it():
    src, mask = batch(b=2, t=6)
    src[0, :5] = torch.tensor([6, 9, 9, 9, 7])                 # row 0's source says 9 three times in a row
    src[1, :5] = torch.tensor([6, 9, 9, 7, 9])                 # row 1's only twice
    mask[0, :] = True
    out = generate(stuttering_generator(2), src, mask, 4, Search(max_len=8))
    assert longest_run(out[0]) == 8 and longest_run(out[1]) == 2
    padded = src.clone()
    padded[1, 3:] = 9                                          # a run in the padding does not count
    short = mask.clone()
    short[1, 3:] = False
    assert longest_run(generate(stuttering_generator(2), padded, short, 4, Search(max_len=8))[1]) == 2
