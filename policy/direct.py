"""`direct` finetuning (FOSP's ablation ii, "without policy expansion"): the pretrained actor
itself keeps learning, with the same weights on replay actions as PEX's learning actor (eq. 19,
or eq. 23's linear weight), and acts alone. Everything it needs is the shared part
(policy/strategy.py); the critics' imagined rollouts follow this learning actor."""

from __future__ import annotations

from policy.strategy import FinetuneStrategy


class DirectFinetune(FinetuneStrategy):
    name = "direct"
