"""Full-history posterior features of every replay row, for behaviour learning.

When the policy acts, its RSSM state carries the whole episode (`FOSPAgent.act`). Training
windows start from a zero state, and on SafeReach a 16-row window's h is still far from the
full-history h of the same row (issue 10: gap 5.45 at row 0, 1.27 at row 15, |h| ~ 5).
Critics, values, the REF and the actor therefore learn on features computed the way acting
computes them: each episode observed from its first row, world model frozen, refreshed every
`cache_every` world-model steps (and whenever the replay grows). One refresh of 200 SafeReach
episodes is a few seconds on a CPU; a behaviour step then costs a gather.

The cache also holds the in-sample lambda-returns of the recorded rewards and costs
(`dataset_lambda_returns`), bootstrapped from the slow value networks, refreshed every
`returns_every` behaviour steps.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from policy import objectives as O
from policy.replay import Replay


class FeatureCache:
    def __init__(self, replay: Replay, gamma: float, chunk: int = 2048):
        self.replay = replay
        self.gamma = gamma
        self.chunk = chunk
        self.rows = 0  # replay rows covered by the last refresh
        self.layout = torch.zeros(0, 0, dtype=torch.long)  # [E, L] row indices, -1 padding
        self.feat = torch.zeros(0)
        self.ret_r = self.ret_c = torch.zeros(0)

    def stale(self) -> bool:
        return self.rows != len(self.replay)

    @torch.no_grad()
    def refresh(self, wm, only_new: bool = False) -> None:
        """Posterior features of every row, each episode observed from its first row. With
        `only_new`, rows cached before keep their features and only the episodes added since
        are observed (an online episode joins the cache without re-observing the dataset)."""
        episodes = self.replay.episode_rows()
        longest = max(len(e) for e in episodes)
        layout = torch.full((len(episodes), longest), -1, dtype=torch.long)
        for i, rows in enumerate(episodes):
            layout[i, : len(rows)] = rows
        feat = torch.zeros(len(self.replay), wm.feat_dim, device=self.replay.device)
        done = self.rows if only_new and len(self.feat) == self.rows else 0
        if done:
            feat[:done] = self.feat[:done]
        by_length: dict[int, list[int]] = {}
        for i, rows in enumerate(episodes):
            if int(rows[0]) >= done:
                by_length.setdefault(len(rows), []).append(i)
        data = self.replay.data
        for length, members in by_length.items():
            # images are encoded in chunks (memory), the RSSM runs over all episodes of one
            # length at once (few sequential steps: the refresh is dominated by the encoder)
            idx = layout[members, :length]
            flat = idx.reshape(-1)
            embed = torch.cat([
                wm.embed(*(self.replay.gather(flat[k : k + self.chunk])[f]
                           for f in ("image", "pose")))
                for k in range(0, len(flat), self.chunk)
            ]).reshape(*idx.shape, -1)  # fmt: skip
            action = data["action"][idx.to(data["action"].device)].to(embed.device)
            is_first = torch.zeros(idx.shape, dtype=torch.bool, device=embed.device)
            is_first[:, 0] = True
            h, z, _, _ = wm.observe(embed, action, is_first)
            feat[flat.to(feat.device)] = wm.feat(h, z).reshape(-1, wm.feat_dim)
        self.layout, self.feat = layout.to(self.replay.device), feat
        self.rows = len(self.replay)
        dev = self.replay.device
        self.action = data["action"].to(dev)
        self.reward = data["reward"].to(dev)
        self.cost = data["cost"].to(dev)
        self.cont = 1.0 - data["is_terminal"].float().to(dev)
        self.valid = ~data["is_last"].to(dev)  # rows whose action was executed
        last = torch.zeros(len(self.replay), dtype=torch.bool, device=dev)
        last[torch.tensor([int(e[-1]) for e in episodes], device=dev)] = True
        self.has_next = ~last
        self.next = torch.where(self.has_next, torch.arange(len(last), device=dev) + 1, 0)
        self.ret_r = self.ret_c = torch.zeros(len(self.replay), device=dev)
        # Monte-Carlo discounted cost to go of the recorded episode (no bootstrap): 0 exactly
        # on every row after which the episode stays safe; eq. 19's in-sample feasibility gate
        mask = self.layout >= 0
        idx = self.layout.clamp_min(0)
        mc = O.discounted_to_go(self.cost[idx] * mask, self.cont[idx] * mask, self.gamma)
        self.cost_to_go = torch.zeros(len(self.replay), device=dev)
        self.cost_to_go[idx[mask]] = mc[mask]
        # the whole episode's discounted cost (its first action's cost to go), on each of its rows
        whole = mc[:, :1].expand_as(mc)
        self.episode_cost = torch.zeros(len(self.replay), device=dev)
        self.episode_cost[idx[mask]] = whole[mask]

    @torch.no_grad()
    def update_returns(
        self, v_r: Callable[[Tensor], Tensor], v_c: Callable[[Tensor], Tensor], agent_cfg
    ) -> None:
        """In-sample lambda-returns of every executed row from the recorded rewards and costs,
        bootstrapped from the given (slow) value networks."""
        a = agent_cfg
        mask = self.layout >= 0
        idx = self.layout.clamp_min(0)
        ret = []
        for v_net, signal, lam in ((v_r, self.reward, a.lambda_r), (v_c, self.cost, a.lambda_c)):
            values = v_net(self.feat)[idx] * mask
            g = O.dataset_lambda_returns(
                signal[idx] * mask, self.cont[idx] * mask, values, a.gamma, lam
            )
            out = torch.zeros(len(self.feat), device=self.feat.device)
            rows = idx[:, :-1][mask[:, 1:]]
            out[rows] = g[mask[:, 1:]]
            ret.append(out)
        self.ret_r, self.ret_c = ret

    def sample(
        self, batch: int, generator: torch.Generator, online_from: int = -1, online_share=0.0
    ) -> Tensor:
        """Indices of `batch` executed rows; with `online_from` >= 0 a share `online_share` of
        them comes from rows at or after it (the online episodes of finetuning)."""
        valid = torch.nonzero(self.valid.cpu()).squeeze(-1)
        if online_from < 0 or online_share <= 0 or not bool((valid >= online_from).any()):
            pick = torch.randint(len(valid), (batch,), generator=generator)
            return valid[pick].to(self.feat.device)
        online, offline = valid[valid >= online_from], valid[valid < online_from]
        n_on = int(round(batch * online_share))
        a = online[torch.randint(len(online), (n_on,), generator=generator)]
        b = offline[torch.randint(len(offline), (batch - n_on,), generator=generator)]
        return torch.cat([a, b]).to(self.feat.device)
