"""PPO arithmetic on hand-computed examples: masked GAE, per-token rewards, clipped losses."""

import math

import pytest

torch = pytest.importorskip("torch")
ppo = pytest.importorskip("envfactory_gym.training.ppo")


def test_gae_skips_env_tokens_and_matches_hand_computation():
    # Row 0: policy tokens at 1, 2, 4; position 3 is a tool result, 0 is padding/prompt.
    # Values off the mask are 9.0 so any leak would show.
    rewards = torch.tensor([[0.0, 0.1, 0.0, 5.0, 1.0], [0.0, 0.0, 0.0, 0.0, 2.0]])
    values = torch.tensor([[9.0, 0.5, 0.4, 9.0, 0.8], [9.0, 9.0, 9.0, 9.0, 1.5]])
    mask = torch.tensor([[0, 1, 1, 0, 1], [0, 0, 0, 0, 1]])
    gamma, lam = 0.9, 0.8
    advantages, returns = ppo.compute_gae(rewards, values, mask, gamma, lam)
    # By hand, over the compressed policy tokens r=[0.1, 0, 1.0], v=[0.5, 0.4, 0.8]:
    # d2 = 1.0 - 0.8 = 0.2                      A2 = 0.2
    # d1 = 0 + 0.9*0.8 - 0.4 = 0.32             A1 = 0.32 + 0.72*0.2 = 0.464
    # d0 = 0.1 + 0.9*0.4 - 0.5 = -0.04          A0 = -0.04 + 0.72*0.464 = 0.29408
    expected = torch.tensor([[0.0, 0.29408, 0.464, 0.0, 0.2], [0.0, 0.0, 0.0, 0.0, 0.5]])
    assert torch.allclose(advantages, expected, atol=1e-6)
    expected_returns = torch.tensor([[0.0, 0.79408, 0.864, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0, 2.0]])
    assert torch.allclose(returns, expected_returns, atol=1e-6)


def test_gae_with_gamma_lambda_one_is_reward_to_go_minus_value():
    rewards = torch.tensor([[0.0, 0.0, 0.0, 1.0]])
    values = torch.tensor([[0.2, 0.3, 0.1, 0.4]])
    mask = torch.tensor([[1, 1, 0, 1]])
    advantages, returns = ppo.compute_gae(rewards, values, mask, 1.0, 1.0)
    assert torch.allclose(advantages, torch.tensor([[0.8, 0.7, 0.0, 0.6]]))
    assert torch.allclose(returns, torch.tensor([[1.0, 1.0, 0.0, 1.0]]))


def test_token_rewards_put_episode_reward_on_last_policy_token_and_kl_on_policy_tokens():
    logprobs = torch.tensor([[-1.0, -2.0, -0.5, -3.0, 0.0]])
    ref = torch.tensor([[-1.5, -1.0, -0.5, -9.0, 0.0]])
    mask = torch.tensor([[1, 1, 0, 1, 0]])
    rewards, kl = ppo.token_rewards(torch.tensor([0.75]), logprobs, ref, mask, kl_coef=0.1)
    assert torch.allclose(kl, torch.tensor([[0.5, -1.0, 0.0, 6.0, 0.0]]))
    assert torch.allclose(rewards, torch.tensor([[-0.05, 0.1, 0.0, -0.6 + 0.75, 0.0]]))
    empty, _ = ppo.token_rewards(torch.tensor([1.0]), logprobs, ref, torch.zeros(1, 5), 0.1)
    assert torch.count_nonzero(empty) == 0


def test_ppo_loss_clips_policy_and_value_by_hand():
    old = torch.tensor([[-1.0, -2.0, -0.3]])
    logprobs = old + torch.tensor([[math.log(1.5), math.log(0.5), 4.0]])  # ratios 1.5, 0.5, e^4
    advantages = torch.tensor([[1.0, 1.0, 100.0]])
    values = torch.tensor([[0.5, 2.0, 50.0]])
    old_values = torch.tensor([[0.0, 1.0, 0.0]])
    returns = torch.tensor([[1.0, 1.0, 0.0]])
    mask = torch.tensor([[1, 1, 0]])  # the third token is an env token: must not count
    logprobs.requires_grad_(True)
    loss, stats = ppo.ppo_loss(
        logprobs, old, advantages, values, old_values, returns, mask, 0.2, 0.2, vf_coef=0.5
    )
    # policy: token0 max(-1.5, -1.2) = -1.2 (clipped); token1 max(-0.5, -0.8) = -0.5 -> -0.85
    # value: token0 max(0.25, (0.2-1)^2=0.64) = 0.64; token1 max(1.0, (1.2-1)^2) = 1.0 -> 0.41
    assert stats["loss/policy"].item() == pytest.approx(-0.85)
    assert stats["loss/value"].item() == pytest.approx(0.41)
    assert loss.item() == pytest.approx(-0.85 + 0.5 * 0.41)
    assert stats["policy/clipfrac"].item() == pytest.approx(0.5)
    assert stats["value/clipfrac"].item() == pytest.approx(0.5)
    loss.backward()
    # clipped token0 and masked token2 get no policy gradient; token1: -A * ratio / 2 tokens
    assert logprobs.grad[0, 0].item() == pytest.approx(0.0)
    assert logprobs.grad[0, 1].item() == pytest.approx(-0.5 * 1.0 / 2)
    assert logprobs.grad[0, 2].item() == pytest.approx(0.0)


def test_masked_whiten_ignores_masked_entries():
    values = torch.tensor([[1.0, 100.0, 3.0], [5.0, -100.0, 7.0]])
    mask = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 1.0]])
    out = ppo.masked_whiten(values, mask)
    kept = out[mask.bool()]
    assert kept.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert (kept**2).mean().item() == pytest.approx(1.0, abs=1e-5)
    assert out[0, 1].item() == 0.0 and out[1, 1].item() == 0.0
