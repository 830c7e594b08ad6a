"""DualRL's sequence rewards on hand-made inputs with known values, and the style classifier."""

import math

import pytest
import torch

from textgan.config import DiscriminatorConfig
from textgan.rewards import StyleClassifier, combine, content_reward, style_reward


def test_style_reward_is_the_target_class_probability():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0], [0.0, math.log(3.0)]])
    assert torch.allclose(style_reward(logits, 1), torch.tensor([0.5, 0.25, 0.75]))


def test_content_reward_is_the_geometric_mean_token_probability():
    mean_logprob = torch.tensor([0.0, math.log(0.5), -100.0])
    assert torch.allclose(content_reward(mean_logprob), torch.tensor([1.0, 0.5, 0.0]))


def test_sum_mix_weights_style_and_log_content():
    r_style, logp = torch.tensor([0.8, 0.2]), torch.tensor([math.log(0.5), -2.0])
    assert torch.allclose(combine(r_style, logp, 1.0, 0.5, "sum"), torch.tensor([0.8 + 0.5 * math.log(0.5), 0.2 - 1.0]))
    # with no style weight it is the former content-only reward, w_c * log p
    assert torch.allclose(combine(r_style, logp, 0.0, 0.5, "sum"), 0.5 * logp)


def test_harmonic_mix_is_the_weighted_harmonic_mean():
    r_style, logp = torch.tensor([0.8, 0.2, 0.0]), torch.log(torch.tensor([0.2, 0.2, 0.9]))
    equal = combine(r_style, logp, 1.0, 1.0, "harmonic")
    # 2 / (1/0.8 + 1/0.2) = 0.32;  2 / (1/0.2 + 1/0.2) = 0.2;  no style: ~0
    assert equal[:2].tolist() == pytest.approx([0.32, 0.2], rel=1e-5)
    assert equal[2] < 1e-4
    weighted = combine(r_style[:1], logp[:1], 1.0, 3.0, "harmonic")          # (1 + 3) / (1/0.8 + 3/0.2)
    assert weighted.item() == pytest.approx(4 / (1 / 0.8 + 3 / 0.2), rel=1e-5)
    with pytest.raises(ValueError, match="unknown reward mix"):
        combine(r_style, logp, 1.0, 1.0, "product")


def test_style_classifier_learns_planted_tokens():
    torch.manual_seed(0)
    cfg = DiscriminatorConfig(d_model=32, layers=1, heads=2, ffn_dim=64, dropout=0.0)
    clf = StyleClassifier(cfg, vocab_size=20, n_domains=2, max_len=12)
    neg = [[5, 6, 7, 10], [8, 10, 9], [10, 5, 5]] * 20             # token 10 only in domain 0
    pos = [[5, 6, 7, 11], [8, 11, 9], [11, 5, 5]] * 20             # token 11 only in domain 1
    clf.fit([neg, pos], steps=60, batch_size=16, lr=3e-3)
    assert clf.accuracy([neg, pos]) == 100.0
    ids = torch.tensor([[5, 10, 3], [5, 11, 3]])
    p = style_reward(clf(ids, torch.ones_like(ids, dtype=torch.bool)), 1)
    assert p[1] > 0.9 > 0.1 > p[0]
