"""Typed configs and the named presets (`paper` = FOSP Table 4, `small` = CPU demo, `tiny` = tests).

One `Config` holds everything a run needs; `resolve(preset, **overrides)` builds it and
`Config.to_dict()` is what every run writes beside its outputs (and what a resumed run is compared
against: the `model` and `agent` sections must match for a checkpoint to load).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from fosp.config_flags import option as _opt
from robot.task_spec import TEST_LAYOUT_SEED


@dataclass(frozen=True)
class ModelConfig:
    """World model (DreamerV3-style RSSM) and network sizes."""

    deter: int = 512  # GRU state h
    stoch: int = 48  # number of categorical latents N_l (Table 4)
    classes: int = 48  # classes per latent C_l (Table 4)
    hidden: int = 512  # units of the RSSM's own layers
    mlp_units: int = 512  # N_units (Table 4)
    mlp_layers: int = 5  # N_MLP (Table 4): encoder/decoder/heads/actor/critics
    cnn_depth: int = 32  # channels of the first conv layer (doubles 3 times: 64 -> 4)
    unimix: float = 0.01  # DreamerV3's 1 % uniform mix in the latent categoricals
    bins: int = 255  # two-hot bins of the reward and cost heads (symlog space)
    kl_dyn: float = 1.0  # eq. 1: weight of KL[sg(q) || p]
    kl_rep: float = 0.1  # eq. 1: beta (Table 4) of KL[q || sg(p)]
    free_nats: float = 1.0  # DreamerV3 free bits, per loss term
    cost_scale: float = 1.0  # eq. 1: weight of the cost head's term (the others weigh 1)
    action_dim: int = 6
    pose_dim: int = 6


@dataclass(frozen=True)
class AgentConfig:
    """Offline FOSP (paper §4.1-4.2, App. A-B); defaults are Table 4."""

    horizon: int = 15  # H, imagination horizon (eq. 6)
    gamma: float = 0.997  # discount
    lambda_r: float = 0.95  # TD(lambda) of the reward critic (eq. 8)
    lambda_c: float = 0.95  # TD(lambda) of the cost critic
    expectile: float = 0.8  # kappa (eq. 7)
    beta_r: float = 10.0  # beta_1, AWR temperature on A_r (eq. 19)
    beta_c: float = 10.0  # beta_2, AWR temperature on A_c (eq. 19)
    scale_decay: float = 0.99  # EMA of the return scale that normalises advantages (DreamerV3)
    awr_max_exponent: float = 4.6  # clip of each exponent in eq. 19 (e^4.6 ~ 100, as in IQL)
    entropy: float = 3e-4  # eta (eq. 20)
    gamma_u: float = 0.99  # REF discount (eq. 30)
    ref_imagined: bool = True  # also train the REF on imagined rollouts (predicted costs)
    cost_event: float = 0.5  # a predicted cost above this counts as a violation in imagination
    lagrange_init: float = 0.01  # lambda_p^0 (Table 4)
    penalty_init: float = 1e-6  # mu^0 (Table 4, read as 1e-6)
    penalty_growth: float = 5e-9  # nu (Table 4, read as 5e-9): mu^{k+1} = mu^k (1 + nu)
    actor_min_std: float = 0.1
    actor_max_std: float = 1.0
    # behaviour learning on full-history features (policy/feature_cache.py; docs/algorithm.md)
    expectile_c: float = 0.2  # V_c fits the lower expectile: the best in-support cost (FISOR)
    slow_rate: float = 0.02  # EMA rate of the slow V, V_c and REF that every bootstrap reads
    adv_decay: float = 0.99  # EMA of each advantage's std, which normalises it before eq. 19
    lagrange_max: float = 1.0  # lambda_p bound (App. A.1: lambda_p moves only where infeasible)
    # eq. 19's feasibility weight f: ref = 1 - u(s) (the paper); in_sample = 1{G_c(s, a) <=
    # cost_limit}, the recorded action's own in-sample cost return (FISOR's hard gate: unsafe
    # successes never enter the reward branch); both = their product; episode = 1{the recorded
    # episode's whole cost <= cost_limit}: no row of a violating episode, not even the clean
    # tail where unsafe operators camp pressing on the target. episode: over 5 pretrainings x 4
    # tasks x 20 tests SR 95 -> 98.5 %, CV 11 -> 6 %, train CV 13 -> 4 % (docs/algorithm.md,
    # ambiguity 11); configs written before this default ran with in_sample (LEGACY_AGENT)
    feasible_gate: str = _opt("episode", choices=("ref", "in_sample", "both", "episode"))
    cost_limit: float = 0.1
    # weight of eq. 19's cost branch, (1 - f) exp(-beta_2 A_c): 1 as written; 0 drops it, so
    # rows whose recorded episode goes on to violate teach the actor nothing. 0: over 5
    # pretrainings x 4 tasks x 20 tests SR 91 -> 95 %, CV 17.5 -> 11 % (docs/algorithm.md,
    # ambiguity 18); configs written before the field existed ran with 1 (LEGACY_AGENT)
    cost_branch: float = 0.0
    behaviour_batch: int = 256  # cached rows per behaviour step
    behaviour_repeats: int = 4  # behaviour steps per world-model step
    imagine_starts: int = 64  # rows of a behaviour batch that start an imagined rollout (eq. 6)
    cache_every: int = 50  # world-model steps between refreshes of the feature cache
    returns_every: int = 5  # behaviour steps between refreshes of the in-sample returns
    # behaviour steps at the end of training with the world model frozen and the cache fresh:
    # the features drift between refreshes, and the actor must fit the features it acts from
    settle_steps: int = 0
    # the policy that acts is a Polyak (EMA) average of the trained actor, this rate per
    # behaviour step (0: act with the trained actor itself). The actor's SGD iterates differ a
    # lot in safety: three continuations of one run scored train CV 13, 4 and 2 / 20, their
    # averages 4, 4 and 0; over 3 pretrainings x 4 tasks the average scored SR 93 % / CV 14 %
    # against the trained actor's 86 % / 16 % (docs/algorithm.md "Issue 10: the acting actor")
    actor_ema: float = 0.01
    # weight of a second actor term: REINFORCE on the actor's own imagined actions with the
    # imagined cost advantage, w_h log pi(a_h | s_h) sg(A^c_h) (SafeDreamer's cost side, no reward
    # side: the actor sees where its own actions lead, not only the dataset's). 0: eq. 20 alone.
    # Off: screened at 1, 3, 10, it trades SR for CV on train (10: 83/20 -> 62/3) and lowers
    # neither on unseen-3 (docs/algorithm.md "post-touch pressing")
    imagined_cost: float = 0.0


# AgentConfig fields whose default changed after they were added: a config (or checkpoint)
# written before the field existed ran with these values, not with today's defaults
LEGACY_AGENT: dict[str, Any] = {"cost_branch": 1.0, "feasible_gate": "in_sample"}


@dataclass(frozen=True)
class OptimConfig:
    lr_model: float = 1e-4  # l_wm
    lr_actor_critic: float = 3e-5  # l_ac: actor, Q, Q_c, V, V_c
    lr_ref: float = 5e-5  # l_r: REF (between l_ac and the multiplier step mu/2, App. B)
    eps: float = 1e-8
    grad_clip: float = 1000.0  # global norm per optimiser (DreamerV3 uses 1000 for the model)
    weight_decay: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    batch: int = _opt(64, check="positive")  # windows per world-model batch (Table 4)
    length: int = _opt(16, check="non_negative")  # rows per window (Table 4; 0: whole episodes)
    log_every: int = _opt(50, check="positive")  # steps between metrics lines
    checkpoint_every: int = _opt(1000, check="positive")  # steps between atomic checkpoints
    seed: int = _opt(0, check="seed")  # seeds torch, the replay's sampling and the cache's
    device: str = "auto"  # auto = cuda if available else cpu | cpu | cuda | cuda:N
    compile: bool = False  # torch.compile the train step (GPU; slow to compile on CPU)
    bf16: bool = False  # bf16 autocast (GPU)


@dataclass(frozen=True)
class Config:
    preset: str = "paper"
    model: ModelConfig = field(default_factory=ModelConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        return cls(
            preset=data.get("preset", "custom"),
            model=ModelConfig(**data["model"]),
            agent=AgentConfig(**{**LEGACY_AGENT, **data["agent"]}),
            optim=OptimConfig(**data["optim"]),
            # eval_every (never used) was dropped; runs that still list it load
            train=TrainConfig(**{k: v for k, v in data["train"].items() if k != "eval_every"}),
        )

    def architecture(self) -> dict[str, Any]:
        """What a checkpoint's tensors depend on: must match to load one."""
        return {"model": dataclasses.asdict(self.model), "agent": dataclasses.asdict(self.agent)}


PRESETS: dict[str, Config] = {
    "paper": Config(preset="paper"),
    # Trains on 2 CPU cores in minutes (fosp demo). Smaller everything; higher learning rates so
    # a few hundred steps already give a usable policy. mu^0 = 1e-4: with 2e-3 lambda_p grew to ~1
    # in 600 steps (V_c never reaches 0) and Phi swamped the reward branch of eq. 19.
    "small": Config(
        preset="small",
        model=ModelConfig(
            deter=128,
            stoch=16,
            classes=16,
            hidden=128,
            mlp_units=128,
            mlp_layers=2,
            cnn_depth=16,
            bins=127,
        ),  # fmt: skip
        # 8 behaviour steps per world-model step + 500 settling steps: issue 10's measurements
        # (docs/algorithm.md "Issue 10"): 8 without settling fit stale features (CV 65 %)
        agent=AgentConfig(
            horizon=10,
            gamma=0.99,
            penalty_init=1e-4,
            penalty_growth=1e-4,
            behaviour_repeats=8,
            settle_steps=500,
        ),
        optim=OptimConfig(lr_model=4e-4, lr_actor_critic=2e-4, lr_ref=4e-4),
        train=TrainConfig(batch=16, length=16, log_every=25, checkpoint_every=250),
    ),
    "tiny": Config(
        preset="tiny",
        model=ModelConfig(
            deter=64,
            stoch=8,
            classes=8,
            hidden=64,
            mlp_units=64,
            mlp_layers=1,
            cnn_depth=8,
            bins=63,
        ),  # fmt: skip
        agent=AgentConfig(horizon=5, gamma=0.99, penalty_init=1e-4, penalty_growth=1e-4),
        optim=OptimConfig(lr_model=1e-3, lr_actor_critic=3e-4, lr_ref=6e-4),
        train=TrainConfig(batch=8, length=16, log_every=10, checkpoint_every=50),
    ),
}


def resolve(
    preset: str, sections: dict[str, dict[str, Any]] | None = None, **train_overrides: Any
) -> Config:
    """The preset (a named base) with fields overridden: `sections` = {"model" | "agent" |
    "optim" | "train": {field: value}}, `train_overrides` TrainConfig fields (None values are
    ignored)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    cfg = PRESETS[preset]
    for name, changes in (sections or {}).items():
        if changes:
            cfg = dataclasses.replace(
                cfg, **{name: dataclasses.replace(getattr(cfg, name), **changes)}
            )
    overrides = {k: v for k, v in train_overrides.items() if v is not None}
    unknown = set(overrides) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise ValueError(f"unknown train option(s): {', '.join(sorted(unknown))}")
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **overrides))


# finetuning strategies (policy/strategy.py)
STRATEGIES = ("pex", "direct", "safedreamer", "marvel", "ocr-cft")


@dataclass(frozen=True)
class FinetuneConfig:
    """Online finetuning (FOSP §4.3, Algorithm 1 lines 12-24); written to a finetune run's
    `finetune.json`, separate from `Config` so offline runs and their config.json are unchanged."""

    # pex = safe policy expansion; direct = finetune the offline actor; safedreamer = the
    # online Lagrangian actor-critic in imagination (PID multiplier), from the pretrained agent
    # default direct: ahead of pex in every measured comparison (3 pretrained runs, unseen-1/2/3,
    # after SR and CV; docs/algorithm.md "Which strategy is the default")
    strategy: str = _opt("direct", choices=STRATEGIES)
    # new actor psi' (Algorithm 1 line 12): copy = the offline weights (starts competent; PEX's
    # fresh policy executed ~half the steps at random: unseen-1 SR 50 -> 20 %), scratch = new init
    init: str = _opt("copy", choices=("copy", "scratch"))
    # the new actor's Adam state: reset = zero moments (a new policy); keep = the offline
    # actor's moments carry over with its weights (init = copy only)
    actor_moments: str = _opt("reset", choices=("reset", "keep"))
    # the learning actor's weight on replay actions: awr = eq. 19's positive weights (as
    # offline); linear = eq. 23's linear weight applied to replay actions (negative weights push
    # psi' away from the data: log pi(data) fell to -25, docs/algorithm.md "Finetuning")
    actor_weight: str = _opt("awr", choices=("awr", "linear"))
    # eq. 21's softmax. Table 4's "PEX temperature 10" is read as PEX's inverse temperature:
    # logits = 10 * Q~ (alpha = 0.1 in eq. 21's Q~/alpha); docs/algorithm.md "Finetuning"
    inv_temperature: float = _opt(10.0, check="positive")
    # step = eqs. 21-22 at every control step on Q of each proposal; chunk = every `chunk`
    # steps, each actor's imagined lambda-return (reward minus cost, each over its learned return
    # scale) from the current latent decides which actor acts for the next chunk
    selection: str = _opt("chunk", choices=("chunk", "step"))
    chunk: int = _opt(10, check="positive")  # control steps per selection (selection = chunk)
    rollouts: int = _opt(8, check="positive")  # imagined rollouts per actor at a chunk decision
    # max reward per step (SafeReach: 1 while touching the target)
    r_max: float = _opt(1.0, check="positive")
    c_max: float = _opt(1.0, check="positive")  # max cost per step
    # T of Q^* = sum_{t=0}^{T} gamma^t r_max; 0 = the length of the dataset's longest episode
    # (resolved when a finetuning run starts and written to its finetune.json)
    horizon: int = _opt(0, check="non_negative")
    linear_phi: bool = True  # eq. 23 with eq. 16's Phi inside the reward branch (as offline)
    # K gradient steps after each online episode
    updates_per_episode: int = _opt(40, check="positive")
    # share of every batch drawn from the online episodes
    online_share: float = _opt(0.5, check="unit")
    # behaviour steps after each episode's K updates on freshly computed features (world model
    # frozen): the next episode acts from the features the updated world model computes.
    # Measured (9 pairs): 200 keeps more SR during (93.3 vs 88.9 %) but the finetuned policy
    # violates more after (CV 7.2 vs 2.2 %): 40 stays (docs/algorithm.md "longer settling")
    settle_steps: int = _opt(40, check="non_negative")
    # behaviour steps per update while finetuning (0: the preset's): with the preset's 8 the
    # actor over-fit the first online episodes (unseen-1 during CV 30 %, after 35 %; 4: see docs)
    behaviour_repeats: int = _opt(4, check="non_negative")
    # weight of the imagined cost term on the learning actor while finetuning (as the
    # checkpoint's AgentConfig.imagined_cost: REINFORCE on the actor's own imagined actions, so
    # direct, or pex with imagine_with = new); 0 = the checkpoint's own (off). Measured: no
    # better than without (docs/algorithm.md "post-touch pressing, and the imagined cost term")
    imagined_cost: float = _opt(0.0, check="non_negative")
    # eq. 19's feasibility gate f while finetuning (AgentConfig.feasible_gate); checkpoint = the
    # pretraining's own (`episode` by default). Measured: in_sample ended unseen-3 at CV 3.75 %
    # after, the pretraining's episode gate 16 % (4 paired seeds; docs/algorithm.md "the episode
    # gate while finetuning")
    feasible_gate: str = _opt(
        "in_sample", choices=("checkpoint", "ref", "in_sample", "both", "episode")
    )
    # learn = the world model keeps learning online (Algorithm 1 line 17); frozen = it does
    # not, so the features every actor and critic reads keep their meaning (a frozen actor on a
    # learning world model is a different policy: docs/algorithm.md "representation drift");
    # heads = the representation is frozen, the reward, cost and continuation heads learn.
    # Measured (9 pairs): heads keeps SR during (95.0 vs 88.9 %) but, like no update, not
    # unseen-3's violations (CV during 16.7 vs 5.0 %): learn stays (docs/algorithm.md
    # "the representation fixed while the heads learn")
    world_model: str = _opt("learn", choices=("learn", "heads", "frozen"))
    # world_model = learn: the representation's (everything but the reward, cost and
    # continuation heads) share of the world model's learning rate while finetuning; the heads
    # keep the full rate. 1 = as pretraining; 0 = the representation fixed (like heads).
    # Measured (9 pairs): 0.25 vs 1, during 95.6 / 7.2 vs 88.9 / 10.0 %, after 95.0 / 2.2 vs
    # 92.8 / 2.2 % (docs/algorithm.md "a slower representation while finetuning")
    representation_lr: float = _opt(0.25, check="unit")
    # pex: the features the frozen offline actor reads. offline = a frozen copy of the
    # pretrained world model, filtered beside the learning one (one more posterior step per
    # control step), so the frozen actor stays the offline policy exactly; learning = the
    # learning world model's, whose meaning drifts (nine pairs, 20 episodes: the frozen actor
    # alone 54 % SR after, 97 % before). Both actors' chunk scores are imagined in the learning
    # model. Measured (paper protocol, unseen-1/2 seed 0): during 97.5 / 5.0 and 95.0 / 0.0 %
    # vs 82.5 / 7.5 and 90.0 / 10.0, after 100 / 0 twice vs 75 / 0 and 95 / 5; on unseen-3 the
    # offline policy's own violations come back with it (during CV 30 % vs direct's 12.5)
    # (docs/algorithm.md "what PEX's frozen actor reads")
    offline_features: str = _opt("offline", choices=("learning", "offline"))
    # pex, selection = chunk: weight w of each actor's observed cost on this task in its chunk
    # score. Actor k's labelled cost steps C_k over the steps it acted N_k (prior: T cost-free
    # steps, T = horizon, one episode) give the cost one episode at that rate incurs, T C_k /
    # (N_k + T), over the cost return scale, as the imagined cost term: the score falls by w
    # times that; the learning actor's record counts half after each episode's updates.
    # 0 = imagined scores alone. Measured (paper protocol, unseen-1/3 seed 0, w = 1 vs 0):
    # during CV 10.0 / 5.0 % vs 5.0 / 2.5, after 0 / 0 both: no better, 0 stays (a record that
    # shuts one actor out hands whole episodes to the other: P_off 1.00, and it violated)
    # (docs/algorithm.md "each actor's observed cost in the selection")
    cost_evidence: float = _opt(0.0, check="non_negative")
    # actor of the critics' imagined rollouts: offline | new
    imagine_with: str = _opt("offline", choices=("offline", "new"))
    # cap of the execution noise (the scripted operators: std 0.25)
    action_std: float = _opt(0.1, check="non_negative")
    # safedreamer: PID Lagrangian (Stooke et al. 2020) on the imagined cost return; defaults are
    # SafeDreamer's configs.yaml pid block (kp 0, ki 0.1, kd 0, d_delay 10, EMA 0.95, max 100)
    pid_kp: float = _opt(0.0, check="non_negative")  # safedreamer: proportional gain K_P
    pid_ki: float = _opt(0.1, check="non_negative")  # safedreamer: integral gain K_I
    pid_kd: float = _opt(0.0, check="non_negative")  # safedreamer: derivative gain K_D
    # safedreamer, marvel: updates between the derivative's two costs
    pid_delay: int = _opt(10, check="positive")
    pid_ema: float = _opt(0.95, check="unit")  # safedreamer, marvel: smoothing of P error, D cost
    pid_lambda_init: float = _opt(0.001, check="non_negative")  # safedreamer: lambda at start
    pid_lambda_max: float = _opt(100.0, check="positive")  # safedreamer: lambda's upper bound
    # d: bound on the imagined discounted cost return per start state (the bound FOSP's
    # feasibility gate puts on the cost to go, AgentConfig.cost_limit)
    pid_cost_limit: float = _opt(0.1, check="non_negative")
    # marvel (Chen et al.; defaults: their Table 6): VPA steps before the first online episode
    # (soft fitted-Q evaluation of the offline policy on the offline data), the entropy
    # coefficients of its reward and cost targets, SAC-Lagrangian's alpha in the actor loss
    vpa_steps: int = _opt(2000, check="non_negative")
    vpa_alpha_r: float = _opt(1e-3, check="non_negative")  # marvel: alpha_r of the Q target
    vpa_alpha_c: float = _opt(5e-4, check="non_negative")  # marvel: alpha_c of the Q_c target
    sac_alpha: float = _opt(5e-3, check="non_negative")  # marvel: the actor's entropy weight
    # marvel's aPID on the discounted episode cost (gains adapt within [0.1, 10] x these)
    apid_kp: float = _opt(1e-4, check="non_negative")  # marvel: initial K_P
    apid_ki: float = _opt(1e-5, check="non_negative")  # marvel: initial K_I
    apid_kd: float = _opt(1e-5, check="non_negative")  # marvel: initial K_D
    apid_eta_p: float = _opt(0.05, check="non_negative")  # marvel: adaptation rate of K_P
    apid_eta_i: float = _opt(0.05, check="non_negative")  # marvel: adaptation rate of K_I
    apid_eta_d: float = _opt(0.05, check="non_negative")  # marvel: adaptation rate of K_D
    # marvel: d on the discounted episode cost (1: about one cost step per episode)
    apid_cost_limit: float = _opt(1.0, check="non_negative")
    apid_lambda_max: float = _opt(100.0, check="positive")  # marvel: lambda's upper bound
    # ocr-cft (Luo et al.; its cost multiplier is marvel's aPID above, its alpha sac_alpha):
    # soft fitted-Q steps of policy re-evaluation, then value-alignment steps, before episode 0
    ocr_reeval_steps: int = _opt(2000, check="non_negative")
    ocr_align_steps: int = _opt(1000, check="non_negative")  # ocr-cft: value-alignment steps
    ocr_kl_init: float = _opt(2.0, check="non_negative")  # ocr-cft: beta at start (the paper's)
    ocr_kl_lr: float = _opt(0.01, check="non_negative")  # ocr-cft: beta's dual-ascent step
    # ocr-cft: epsilon on KL(pi_ref || pi) rises linearly over ocr_kl_ramp episodes (the
    # paper's range for expert data: the mean may move ~0.01 -> ~0.05 at std 0.1)
    ocr_kl_start: float = _opt(0.005, check="non_negative")
    ocr_kl_end: float = _opt(0.125, check="non_negative")  # ocr-cft: epsilon after the ramp
    ocr_kl_ramp: int = _opt(20, check="positive")  # ocr-cft: episodes of epsilon's ramp
    label_delay: int = _opt(2, check="non_negative")  # simulated operator's reaction delay (steps)
    # suggestions in the operator's labelling window on the arm: force = cost rows from the
    # arm's contact force; force+model adds the world model's reward and cost heads (measured:
    # more keys to correct than they save, docs/collecting.md "Suggested labels")
    label_suggestions: str = _opt("force", choices=("force", "force+model"))
    # who may take over during the online episodes (docs/algorithm.md "Takeover"): none;
    # scripted = the simulated operator, from the ground truth (--env sim); spacemouse = the
    # operator's SpaceMouse, any deflection takes over (--env ros)
    takeover: str = _opt("none", choices=("none", "scripted", "spacemouse"))
    # k > 0: the k actions before each takeover count as cost 1 in the replay (the operator
    # judged where they led dangerous; the stored episode keeps its labels); 0: off
    takeover_cost_steps: int = _opt(0, check="non_negative")
    sample_actions: bool = True  # proposals sampled from each actor while finetuning
    seed: int = _opt(0, check="seed")  # finetuning seed: online layouts, sampling, batches


@dataclass(frozen=True)
class EvalConfig:
    """`fosp eval`: test episodes of a trained policy in the simulator."""

    task: str = _opt("train", check="task")  # train | unseen-1 | unseen-2 | unseen-3
    episodes: int = _opt(20, check="positive")  # test episodes
    seed: int = _opt(TEST_LAYOUT_SEED, check="seed")  # the first test episode's layout seed
    sample: bool = False  # sample actions (default: the mean)
    # a finetune run (RUN2): acting = its policy as it acts (pex: both actors, eq. 21's
    # choice); learning = the learning actor alone; offline = pex's frozen offline actor alone
    # (on the features it reads). A pretrained run has one policy: acting
    policy: str = _opt("acting", choices=("acting", "learning", "offline"))


@dataclass(frozen=True)
class Table3Config:
    """FOSP Table 3's protocol in the simulator (policy/table3.py): SR / CV before, during and
    after finetuning, per unseen task, strategy and finetuning seed."""

    tasks: str = _opt("unseen-1,unseen-2,unseen-3", check="task_list")  # comma separated
    tests: int = _opt(20, check="positive")  # test episodes before and after finetuning
    finetune_episodes: int = _opt(40, check="positive")  # online episodes per task and seed
    seeds: int = _opt(3, check="positive")  # finetuning seeds first_seed .. first_seed+seeds-1
    # run a slice of the seeds, e.g. one process per seed: --seeds 1 --first-seed 2, then
    # benchmarks/table3_merge.py pools the slices' folders into one table
    first_seed: int = _opt(0, check="seed")
    strategies: str = _opt("direct", each_of=STRATEGIES)  # comma separated: direct,pex,...
    eval_seed: int = _opt(TEST_LAYOUT_SEED, check="seed")  # the first test episode's layout seed
    # how it runs, not what: N > 1 runs each (task, seed, strategy) in its own process, N at a
    # time, resumable, pooled into --out (policy/table3_jobs.py); the same table as one process
    jobs: int = _opt(1, check="positive")

    @property
    def task_names(self) -> list[str]:
        return [t for t in self.tasks.split(",") if t]

    @property
    def seed_ids(self) -> range:
        return range(self.first_seed, self.first_seed + self.seeds)

    @property
    def strategy_names(self) -> tuple[str, ...]:
        return tuple(s for s in self.strategies.split(",") if s)
