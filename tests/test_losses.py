import torch

from textgan.config import GeneratorConfig
from textgan.losses import (AdvOptions, EMABaseline, discounted_returns, discriminator_loss,
                            reconstruction_loss, reinforce_adversarial)
from textgan.models.generator import Generator, Sample, build_generator
from textgan.tokenizer import EOS


def test_discounted_returns_by_hand():
    rewards = torch.tensor([[1.0, 1.0, 1.0], [1.0, 2.0, 5.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    returns = discounted_returns(rewards, mask, gamma=0.5)
    assert torch.allclose(returns, torch.tensor([[1.75, 1.5, 1.0], [2.0, 2.0, 0.0]]))


def test_reinforce_raises_the_probability_of_a_rewarded_token():
    """One policy-gradient step on a 1-step policy: the token D rewards becomes more likely."""
    torch.manual_seed(0)
    logits = torch.zeros(8, 5, requires_grad=True)              # 8 independent 1-token "sentences"
    rewarded = 3
    tokens = torch.arange(8) % 5                                # every token sampled at least once
    logprobs = logits.log_softmax(-1).gather(1, tokens[:, None])  # (8, 1)
    fake = Sample(ids=tokens[:, None], mask=torch.ones(8, 1, dtype=torch.bool), logprobs=logprobs, probs=None)

    def score(ids):  # D: token 3 looks real, others fake
        p_real = torch.where(ids == rewarded, 0.9, 0.1)
        return p_real.log(), (1 - p_real).log()

    loss, _ = reinforce_adversarial(fake, score, AdvOptions(gamma=1.0, baseline=EMABaseline(0.0)))
    loss.backward()
    before = logits.softmax(-1)[:, rewarded].mean()
    with torch.no_grad():
        after = (logits - 1.0 * logits.grad).softmax(-1)[:, rewarded].mean()
    assert after > before


def test_sequence_reward_reaches_every_step_undiscounted():
    """With D indifferent, a sentence reward (e.g. the cycle log-prob) pushes up EVERY token of the
    rewarded sentence, the first as much as the last, and down those of the other sentence."""
    logits = torch.zeros(2, 4, 5, requires_grad=True)          # 2 sentences of 4 steps
    tokens = torch.tensor([[1, 2, 3, 4], [4, 3, 2, 1]])
    logprobs = logits.log_softmax(-1).gather(2, tokens[..., None]).squeeze(-1)
    fake = Sample(ids=tokens, mask=torch.ones(2, 4, dtype=torch.bool), logprobs=logprobs, probs=None)

    def score(ids):
        half = torch.full(ids.shape, 0.5)
        return half.log(), half.log()

    opts = AdvOptions(gamma=0.5, baseline=EMABaseline(0.0), seq_reward=torch.tensor([-1.0, -3.0]))
    loss, _ = reinforce_adversarial(fake, score, opts)
    loss.backward()
    chosen_grad = logits.grad.gather(2, tokens[..., None]).squeeze(-1)     # d loss / d chosen logit
    assert (chosen_grad[0] < 0).all() and (chosen_grad[1] > 0).all()
    assert torch.allclose(chosen_grad[0], chosen_grad[0, :1].expand(4))   # same push at every step


def test_ema_baseline_tracks_the_mean_return():
    base = EMABaseline(decay=0.5)
    mask = torch.ones(4, 3, dtype=torch.bool)
    twos, fours = torch.full((4, 3), 2.0), torch.full((4, 3), 4.0)
    assert torch.allclose(base(twos, mask), twos)             # first call: seeded with the first mean
    assert torch.allclose(base(fours, mask), twos)            # baseline lags; value -> 0.5 * 2 + 0.5 * 4
    assert torch.allclose(base(fours, mask), torch.full((4, 3), 3.0))
    base.load_state_dict(base.state_dict())
    assert torch.allclose(base.value, torch.full((3,), 3.5))


def test_discriminator_loss_is_small_when_d_is_right():
    right = torch.full((2, 3), 0.99).log()
    wrong = torch.full((2, 3), 0.01).log()
    mask = torch.ones(2, 3, dtype=torch.bool)
    good, logs = discriminator_loss([(right, mask)], [(right, mask)])
    bad, _ = discriminator_loss([(wrong, mask)], [(wrong, mask)])
    assert good < 0.1 < bad and set(logs) == {"d_real", "d_fake"}


def test_reconstruction_loss_ignores_masked_positions():
    logits = torch.randn(2, 4, 10)
    target = torch.randint(0, 10, (2, 4))
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    loss, _ = reconstruction_loss(logits, target, mask)
    logits2 = logits.clone()
    logits2[0, 2:] = 100.0                                         # garbage where the mask is off
    assert torch.allclose(loss, reconstruction_loss(logits2, target, mask)[0])


def test_loss_falls_on_a_toy_copy_task():
    """The generator learns to copy random sequences: teacher-forced NLL falls to under half."""
    torch.manual_seed(0)
    cfg = GeneratorConfig(d_model=64, encoder_layers=1, decoder_layers=1, heads=2, ffn_dim=128, dropout=0.0)
    g = Generator(build_generator(cfg, vocab_size=12, max_len=10))
    opt = torch.optim.Adam(g.parameters(), lr=1e-3)
    losses = []
    for _ in range(300):
        ids = torch.randint(6, 12, (16, 5))
        ids = torch.cat([ids, torch.full((16, 1), EOS)], 1)
        mask = torch.ones_like(ids, dtype=torch.bool)
        loss, _ = reconstruction_loss(g(ids, mask, ids, to=4), ids, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10
