"""Finetuning strategies: what differs between ways to finetune a pretrained agent online.

The loop (policy/finetune.py), the ROS policy node, Table 3 (policy/table3.py) and the
checkpoints are shared. A strategy owns only what differs:

- `prepare(log)`: what happens before the first online episode (once per run; a resumed run
  does not repeat it, the flag is checkpointed);
- `act(obs, state, deterministic)`: how it acts (one control step);
- `observe_episode(episode)`: what it reads from a new online episode before its updates;
- `update(batch)` / `settle(steps)`: what its gradient steps do;
- `end_episode(episode)`: what moves once per episode after its updates;
- `state_dict()` / `load_state_dict()`: what it adds to the checkpoint (resume is exact).

| `--strategy` | module | class |
|---|---|---|
| pex | policy/expansion.py | `PolicyExpansion` (FOSP §4.3) |
| direct | policy/direct.py | `DirectFinetune` (FOSP's ablation ii) |
| safedreamer | policy/safedreamer.py | `SafeDreamerFinetune` (Huang et al., PID-Lagrangian) |
| marvel | policy/marvel.py | `MarvelFinetune` (Chen et al.: VPA + aPID) |
| ocr-cft | policy/ocr_cft.py | `OcrCftFinetune` (Luo et al.: re-evaluation, alignment, CFT) |
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from data_collection.episode import Episode
from fosp.config_flags import check_choices
from policy import objectives as O
from policy.agent import FOSPAgent
from policy.config import STRATEGIES, FinetuneConfig
from policy.networks import Actor

OFFLINE, ONLINE = 0, 1  # who acted: the frozen offline actor, the learning actor


def cost_by_actor(acted: np.ndarray, cost: np.ndarray) -> tuple[list[int], list[int]]:
    """Cost steps and steps acted per actor ([offline, new] each): action t (`acted[t]`; -1 no
    actor, a deadline miss on the arm) earns cost row t + 1 of `cost` (one row longer)."""
    hit = np.asarray(cost)[1:] > 0
    mine = [np.asarray(acted) == k for k in (OFFLINE, ONLINE)]
    return [int(np.sum(hit & m)) for m in mine], [int(np.sum(m)) for m in mine]


# name -> "module:class"; policy/config.py's STRATEGIES lists the same names (a test checks)
REGISTRY = {
    "pex": "policy.expansion:PolicyExpansion",
    "direct": "policy.direct:DirectFinetune",
    "safedreamer": "policy.safedreamer:SafeDreamerFinetune",
    "marvel": "policy.marvel:MarvelFinetune",
    "ocr-cft": "policy.ocr_cft:OcrCftFinetune",
}


class FinetuneStrategy:
    """Shared parts: the config checks, the execution noise and its generator, eq. 19's (or eq.
    23's) weight for the learning actor, and a checkpoint of the generator."""

    name: ClassVar[str] = ""

    def __init__(self, agent: FOSPAgent, cfg: FinetuneConfig):
        check_choices(cfg)
        if cfg.horizon <= 0:
            raise ValueError("horizon must be set: the episode length (Finetuner resolves 0)")
        if cfg.strategy != self.name:
            raise ValueError(f"{type(self).__name__} is {self.name!r}, not {cfg.strategy!r}")
        self.agent, self.cfg = agent, cfg
        # finetuning starts from the offline policy as it acted (the Polyak average of the
        # trained actor, AgentConfig.actor_ema): every strategy copies, freezes or trains that
        agent.actor.load_state_dict(agent.acting_actor.state_dict())
        self.generator = torch.Generator(device="cpu").manual_seed(cfg.seed)
        self.prepared = False

    # ------------------------------------------------------------------ acting

    def propose(self, actor: Actor, feat: Tensor, deterministic: bool) -> Tensor:
        """The actor's action for `feat`: its mean, or a sample with std capped at action_std."""
        dist = actor.dist(feat)
        if deterministic:
            return dist.mean.clamp(-1.0, 1.0)
        std = dist.stddev.clamp(max=self.cfg.action_std)
        noise = torch.randn(dist.mean.shape, generator=self.generator).to(feat.device)
        return (dist.mean + std * noise).clamp(-1.0, 1.0)

    @torch.no_grad()
    def act_with(
        self, actor: Actor, obs: dict[str, np.ndarray], state: dict[str, Tensor] | None,
        deterministic: bool,
    ) -> tuple[np.ndarray, dict[str, Tensor]]:  # fmt: skip
        """One control step of `actor` alone; the recurrent state holds the executed action."""
        _, state = self.agent.act(obs, state, deterministic, actor=actor)
        action = self.propose(actor, state["feat"], deterministic)
        return action[0].cpu().numpy(), {**state, "action": action}

    def act(
        self,
        obs: dict[str, np.ndarray],
        state: dict[str, Tensor] | None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, dict[str, Tensor], dict[str, Any]]:
        """One control step: (executed action, recurrent state, info with "policy" = who acted).
        Default: the learning actor alone (its acting average, FOSPAgent.acting_actor)."""
        action, state = self.act_with(self.agent.acting_actor, obs, state, deterministic)
        return action, state, {"policy": ONLINE}

    # ------------------------------------------------------------------ learning

    def prepare(self, log: Callable[[str], None]) -> dict[str, float]:
        """Before the first online episode (the finetuning loop calls it once per run)."""
        self.prepared = True
        return {}

    def weight(self, adv_r: Tensor, adv_c: Tensor, feasible: Tensor, phi: Tensor, valid: Tensor):
        """The learning actor's weight on replay actions: eq. 19 over its 1/Z (awr), or eq. 23's
        linear weight (linear, the ablation)."""
        if self.cfg.actor_weight == "awr":
            return self.agent.eq19_weights(adv_r, adv_c, feasible, phi, valid)
        a = self.agent.cfg.agent
        phi = phi if self.cfg.linear_phi else 0.0
        return O.linear_weights(adv_r, adv_c, feasible, phi, a.beta_r, a.beta_c, valid)

    def observe_episode(self, episode: Episode) -> None:
        """A new online episode, before its K updates (default: nothing)."""

    def update(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """One of the K gradient steps after an episode (Algorithm 1 lines 17-24)."""
        return self.agent.train_step(batch, policy_weight=self.weight)

    def settle(self, steps: int) -> dict[str, Tensor]:
        """Behaviour steps on fresh features with the world model frozen (after the K steps)."""
        return self.agent.settle(steps, self.weight)

    def end_episode(self, episode: Episode) -> dict[str, float]:
        """After an episode's K updates: what moves once per episode (default: nothing)."""
        return {}

    def multiplier(self) -> float:
        """The cost multiplier the actor sees now (default: FOSP's lambda_p)."""
        return float(self.agent.lagrangian.lagrange)

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.name,
            "generator": self.generator.get_state(),
            "prepared": self.prepared,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # runs before issue 11 stored no name: PEX's frozen actor tells them apart
        name = state.get("strategy", "direct" if state.get("frozen") is None else "pex")
        if name != self.name:
            raise ValueError(
                f"checkpoint was written for finetuning strategy {name!r}, not {self.name!r}"
            )
        self.generator.set_state(state["generator"])
        self.prepared = bool(state.get("prepared", True))


def strategy_class(name: str) -> type[FinetuneStrategy]:
    if name not in REGISTRY:  # the registry and STRATEGIES agree (a test checks)
        choices = ", ".join(STRATEGIES)
        raise ValueError(f"unknown finetuning strategy {name!r}; choose one of {choices}")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_strategy(agent: FOSPAgent, cfg: FinetuneConfig) -> FinetuneStrategy:
    """The strategy `cfg.strategy` around `agent` (pex freezes the agent's actor here)."""
    return strategy_class(cfg.strategy)(agent, cfg)
