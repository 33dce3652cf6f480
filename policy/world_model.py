"""DreamerV3-style RSSM world model with reward, cost and continuation heads (FOSP §3, eq. 1).

State s = (h, z): h the deterministic GRU state, z N_l categorical latents of C_l classes
(straight-through samples, 1 % unimix). Encoders: CNN for the 64x64 image, MLP for the symlog
pose. Decoders: image (MSE), pose (symlog MSE), reward and cost (two-hot symlog), continuation
(Bernoulli). Step alignment of the batch (data_collection.episode): row t holds observation t,
the reward/cost received on arriving at it, and the action taken at it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from policy import objectives as O
from policy.config import ModelConfig
from policy.networks import ImageDecoder, ImageEncoder, TwoHotHead, mlp
from policy.replay import FIELDS

State = tuple[Tensor, Tensor]  # (h [..., deter], z [..., stoch, classes])


# eq. 1 weighs its terms equally; the KL's balance (dyn 1, rep beta) and free bits live inside
# objectives.kl_balance. One dict of named losses, one of scales, checked against each other.
LOSS_SCALES = {"image": 1.0, "pose": 1.0, "reward": 1.0, "cost": 1.0, "cont": 1.0, "kl": 1.0}
USED_FIELDS = ("image", "pose", "action", "reward", "cost", "is_first", "is_terminal")


def check_batch(batch: dict[str, Tensor]) -> tuple[int, int]:
    """Shape check at the seam between replay and the world model: every field the loss reads
    is [B, T, *its shape in the episode format] (policy.replay.FIELDS)."""
    b, t = batch["reward"].shape
    for name in USED_FIELDS:
        want = (b, t, *FIELDS[name][1])
        assert tuple(batch[name].shape) == want, (name, tuple(batch[name].shape), want)
    return b, t


class GRUCell(nn.Module):
    """DreamerV3's normalised GRU: one linear layer + LayerNorm for all gates, update bias -1."""

    def __init__(self, inp: int, size: int):
        super().__init__()
        self.linear = nn.Linear(inp + size, 3 * size, bias=False)
        self.norm = nn.LayerNorm(3 * size)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        reset, cand, update = self.norm(self.linear(torch.cat([x, h], -1))).chunk(3, -1)
        reset = torch.sigmoid(reset)
        cand = torch.tanh(reset * cand)
        update = torch.sigmoid(update - 1.0)
        return update * cand + (1 - update) * h


# the predictors of eq. 1's reward, cost and continuation terms (everything else is the
# representation: encoders, RSSM, decoders)
HEADS = ("reward_head", "cost_head", "cont_head")


class WorldModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg
        self.image_enc = ImageEncoder(c.cnn_depth)
        self.pose_enc = mlp(c.pose_dim, c.mlp_units, max(1, c.mlp_layers - 2))
        self.embed_dim = self.image_enc.out_dim + c.mlp_units
        stoch_flat = c.stoch * c.classes
        self.feat_dim = c.deter + stoch_flat
        self.img_in = mlp(stoch_flat + c.action_dim, c.hidden, 1)
        self.gru = GRUCell(c.hidden, c.deter)
        self.prior_net = mlp(c.deter, c.hidden, 1, stoch_flat)
        self.post_net = mlp(c.deter + self.embed_dim, c.hidden, 1, stoch_flat)
        f, u, n = self.feat_dim, c.mlp_units, c.mlp_layers
        self.image_dec = ImageDecoder(f, c.cnn_depth)
        self.pose_dec = mlp(f, u, n, c.pose_dim)
        self.reward_head = TwoHotHead(f, u, n, c.bins)
        self.cost_head = TwoHotHead(f, u, n, c.bins)
        self.cont_head = mlp(f, u, n, 1)

    def learn_heads_only(self, heads_only: bool) -> None:
        """heads_only: gradients reach the reward, cost and continuation heads only, so the
        features (and every actor and critic reading them) keep their meaning while the heads
        learn a new task's rewards and costs (FinetuneConfig.world_model = heads)."""
        for name, p in self.named_parameters():
            p.requires_grad_(not heads_only or name.split(".")[0] in HEADS)

    def representation(self) -> list[nn.Parameter]:
        """Every parameter but the reward, cost and continuation heads': encoders, RSSM and
        decoders, what the features are made of (FinetuneConfig.representation_lr)."""
        return [p for name, p in self.named_parameters() if name.split(".")[0] not in HEADS]

    # ------------------------------------------------------------------ RSSM

    def initial(self, batch: int, device=None) -> State:
        c = self.cfg
        return (
            torch.zeros(batch, c.deter, device=device),
            torch.zeros(batch, c.stoch, c.classes, device=device),
        )

    def _logits(self, flat: Tensor) -> Tensor:
        return flat.reshape(*flat.shape[:-1], self.cfg.stoch, self.cfg.classes)

    def _unimix(self, logits: Tensor) -> Tensor:
        """Mix 1 % uniform into the categoricals (keeps KLs finite and gradients alive)."""
        probs = torch.softmax(logits, -1)
        probs = (1 - self.cfg.unimix) * probs + self.cfg.unimix / self.cfg.classes
        return torch.log(probs)

    def sample(self, logits: Tensor) -> Tensor:
        """One-hot sample with straight-through gradients (of the unimixed probabilities)."""
        probs = torch.softmax(logits, -1)
        idx = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1).reshape(probs.shape[:-1])
        onehot = F.one_hot(idx, self.cfg.classes).to(probs.dtype)
        return onehot + probs - probs.detach()

    def img_step(self, state: State, action: Tensor) -> tuple[Tensor, Tensor]:
        """h_t = f(z_{t-1}, h_{t-1}, a_{t-1}); returns (h_t, prior logits of z_t)."""
        h, z = state
        x = self.img_in(torch.cat([z.flatten(-2), action], -1))
        h = self.gru(x, h)
        return h, self._unimix(self._logits(self.prior_net(h)))

    def post_logits(self, h: Tensor, embed: Tensor) -> Tensor:
        return self._unimix(self._logits(self.post_net(torch.cat([h, embed], -1))))

    def embed(self, image: Tensor, pose: Tensor) -> Tensor:
        return torch.cat([self.image_enc(image), self.pose_enc(O.symlog(pose))], -1)

    def observe(
        self, embed: Tensor, action: Tensor, is_first: Tensor, state: State | None = None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Posterior states along [B, T]. The step into row t uses the action of row t - 1; state
        and previous action are zeroed where is_first. Returns h, z, post and prior logits."""
        batch, length = embed.shape[:2]
        h, z = state if state is not None else self.initial(batch, embed.device)
        prev_action = torch.zeros_like(action[:, 0])
        hs, zs, posts, priors = [], [], [], []
        for t in range(length):
            keep = (~is_first[:, t]).to(h.dtype)
            h, z = h * keep[:, None], z * keep[:, None, None]
            prev_action = prev_action * keep[:, None]
            h, prior = self.img_step((h, z), prev_action)
            post = self.post_logits(h, embed[:, t])
            z = self.sample(post)
            prev_action = action[:, t]
            hs.append(h)
            zs.append(z)
            posts.append(post)
            priors.append(prior)
        return tuple(torch.stack(x, 1) for x in (hs, zs, posts, priors))  # type: ignore[return-value]

    def imagine_step(self, state: State, action: Tensor) -> State:
        h, prior = self.img_step(state, action)
        return h, self.sample(prior)

    @staticmethod
    def feat(h: Tensor, z: Tensor) -> Tensor:
        return torch.cat([h, z.flatten(-2)], -1)

    # ------------------------------------------------------------------ predictions

    def reward(self, feat: Tensor) -> Tensor:
        return self.reward_head.mean(self.reward_head(feat))

    def cost(self, feat: Tensor) -> Tensor:
        return self.cost_head.mean(self.cost_head(feat))

    def cont(self, feat: Tensor) -> Tensor:
        return torch.sigmoid(self.cont_head(feat).squeeze(-1))

    # ------------------------------------------------------------------ eq. 1

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """Eq. 1: -ln p(x) - ln p(r) - ln p(c) (+ continuation) + KL balancing with free bits,
        summed over terms and averaged over [B, T]. Returns (loss, per-term means, features)."""
        c = self.cfg
        batch_shape = check_batch(batch)
        embed = self.embed(batch["image"], batch["pose"])
        h, z, post, prior = self.observe(embed, batch["action"], batch["is_first"])
        feat = self.feat(h, z)
        image_target = batch["image"].float() / 255.0 - 0.5
        terms = {
            "image": (self.image_dec(feat) - image_target).square().sum((-3, -2, -1)),
            "pose": (self.pose_dec(feat) - O.symlog(batch["pose"])).square().sum(-1),
            "reward": self.reward_head.loss(self.reward_head(feat), batch["reward"]),
            "cost": self.cost_head.loss(self.cost_head(feat), batch["cost"]),
            "cont": F.binary_cross_entropy_with_logits(
                self.cont_head(feat).squeeze(-1),
                1.0 - batch["is_terminal"].float(),
                reduction="none",
            ),
        }
        kl, dyn, rep = O.kl_balance(post, prior, c.kl_dyn, c.kl_rep, c.free_nats)
        losses = {**terms, "kl": kl}
        assert set(losses) == set(LOSS_SCALES), sorted(losses)
        for name, value in losses.items():
            assert value.shape == batch_shape, (name, tuple(value.shape), batch_shape)
        assert feat.shape == (*batch_shape, self.feat_dim), tuple(feat.shape)
        scales = {**LOSS_SCALES, "cost": c.cost_scale}
        total = sum(scales[k] * v for k, v in losses.items())
        metrics = {f"wm/{k}": v.mean() for k, v in terms.items()}
        metrics["wm/kl_dyn"] = dyn.mean()
        metrics["wm/kl_rep"] = rep.mean()
        metrics["wm/loss"] = total.mean()
        return total.mean(), metrics, feat
