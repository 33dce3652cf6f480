"""Building blocks: MLPs, the 64x64 image CNN encoder/decoder, output heads, the actor, critics."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from policy import objectives as O


def mlp(inp: int, units: int, layers: int, out: int | None = None) -> nn.Sequential:
    """`layers` x (Linear, LayerNorm, SiLU) as in DreamerV3, then an optional linear output."""
    mods: list[nn.Module] = []
    for _ in range(layers):
        mods += [nn.Linear(inp, units), nn.LayerNorm(units), nn.SiLU()]
        inp = units
    if out is not None:
        mods.append(nn.Linear(inp, out))
    return nn.Sequential(*mods)


def zero_output(seq: nn.Sequential) -> nn.Sequential:
    """Zero-initialise the last linear layer (DreamerV3 does this for reward/value heads, so
    early predictions are 0 instead of large random returns)."""
    last = seq[-1]
    assert isinstance(last, nn.Linear)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return seq


class ImageEncoder(nn.Module):
    """uint8 [..., 64, 64, 3] -> flat features; four stride-2 convs (64 -> 4 pixels)."""

    def __init__(self, depth: int):
        super().__init__()
        chans = [3, depth, 2 * depth, 4 * depth, 8 * depth]
        mods: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:], strict=True):
            mods += [nn.Conv2d(a, b, 4, 2, 1), nn.GroupNorm(1, b), nn.SiLU()]
        self.net = nn.Sequential(*mods)
        self.out_dim = 8 * depth * 4 * 4

    def forward(self, image: Tensor) -> Tensor:
        lead = image.shape[:-3]
        x = image.reshape(-1, *image.shape[-3:]).permute(0, 3, 1, 2).float() / 255.0 - 0.5
        return self.net(x).reshape(*lead, self.out_dim)


class ImageDecoder(nn.Module):
    """Features -> image in [-0.5, 0.5], [..., 64, 64, 3] (the mean of a unit Gaussian)."""

    def __init__(self, feat: int, depth: int):
        super().__init__()
        self.depth = depth
        self.inp = nn.Linear(feat, 8 * depth * 16)
        chans = [8 * depth, 4 * depth, 2 * depth, depth]
        mods: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:], strict=True):
            mods += [nn.ConvTranspose2d(a, b, 4, 2, 1), nn.GroupNorm(1, b), nn.SiLU()]
        mods.append(nn.ConvTranspose2d(depth, 3, 4, 2, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, feat: Tensor) -> Tensor:
        lead = feat.shape[:-1]
        x = self.inp(feat.reshape(-1, feat.shape[-1])).reshape(-1, 8 * self.depth, 4, 4)
        return self.net(x).permute(0, 2, 3, 1).reshape(*lead, 64, 64, 3)


class TwoHotHead(nn.Module):
    """Scalar prediction as a categorical over symlog bins (DreamerV3 reward/cost heads)."""

    def __init__(self, inp: int, units: int, layers: int, bins: int):
        super().__init__()
        self.net = zero_output(mlp(inp, units, layers, bins))
        self.register_buffer("bins", O.twohot_bins(bins), persistent=False)

    def forward(self, feat: Tensor) -> Tensor:
        return self.net(feat)

    def mean(self, logits: Tensor) -> Tensor:
        return O.twohot_mean(logits, self.bins)

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        return O.twohot_loss(logits, target, self.bins)


class Actor(nn.Module):
    """pi_psi(a | s): a Gaussian with tanh-squashed mean and bounded std; samples are clipped to
    the action box. Unlike a tanh-transformed Gaussian it gives finite log-probabilities to dataset
    actions on the box edge (+-1), which AWR (eq. 20) evaluates."""

    def __init__(self, feat: int, action_dim: int, units: int, layers: int, std=(0.1, 1.0)):
        super().__init__()
        self.net = mlp(feat, units, layers, 2 * action_dim)
        self.min_std, self.max_std = std

    def dist(self, feat: Tensor) -> torch.distributions.Normal:
        mean, std = self.net(feat).chunk(2, -1)
        std = self.min_std + (self.max_std - self.min_std) * torch.sigmoid(std + 2.0)
        return torch.distributions.Normal(torch.tanh(mean), std)

    def sample(self, feat: Tensor, deterministic: bool = False) -> Tensor:
        d = self.dist(feat)
        a = d.mean if deterministic else d.sample()
        return a.clamp(-1.0, 1.0)


class Critic(nn.Module):
    """Q(s, a) (with `action_dim`) or V(s) (without) as a symlog two-hot head (DreamerV3's
    critic): `forward` gives the value, `loss(inputs, target)` the cross-entropy, so a target's
    size never sets the gradient's (MSE on returns of ~20 let one outlier dominate)."""

    def __init__(self, feat: int, units: int, layers: int, bins: int, action_dim: int = 0):
        super().__init__()
        self.head = TwoHotHead(feat + action_dim, units, layers, bins)

    def _inputs(self, feat: Tensor, action: Tensor | None) -> Tensor:
        return feat if action is None else torch.cat([feat, action], -1)

    def forward(self, feat: Tensor, action: Tensor | None = None) -> Tensor:
        return self.head.mean(self.head(self._inputs(feat, action)))

    def loss(self, feat: Tensor, target: Tensor, action: Tensor | None = None) -> Tensor:
        """-ln p(target) per element (two-hot of symlog target)."""
        return self.head.loss(self.head(self._inputs(feat, action)), target)


class VNet(nn.Module):
    """A scalar of the state: the REF's logit (u(s) = sigmoid of it)."""

    def __init__(self, feat: int, units: int, layers: int):
        super().__init__()
        self.net = zero_output(mlp(feat, units, layers, 1))

    def forward(self, feat: Tensor) -> Tensor:
        return self.net(feat).squeeze(-1)


def bce_soft(logits: Tensor, target: Tensor) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none")
