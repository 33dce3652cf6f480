"""Sequence replay: episodes concatenated in flat tensors; B windows of length T sampled by index.

Windows never cross an episode boundary. `length` 0 samples whole episodes (windows as long as
the shortest episode; SafeReach's fixed-length episodes are then sampled whole), so the RSSM
state of every row carries the episode's full history, as it does when the policy acts. The
whole dataset lives on the training device when it fits (a 200-episode SafeReach dataset is
~200 MB, images as uint8), so a batch is one gather with no host transfer; otherwise it stays in
host memory and each batch is copied over. Online episodes are appended with `add` (finetuning).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from data_collection.dataset import Dataset
from data_collection.episode import STEP_FIELDS, Episode

# the episode format's step fields (one source: data_collection.episode) as torch dtypes
FIELDS: dict[str, tuple[torch.dtype, tuple[int, ...]]] = {
    name: (torch.from_numpy(np.zeros(0, dtype)).dtype, shape)
    for name, (dtype, shape) in STEP_FIELDS.items()
}


class ReplayError(ValueError):
    """Data the learner cannot use (empty dataset, wrong shapes, episodes too short)."""


class Replay:
    def __init__(self, length: int, device: str | torch.device = "cpu", seed: int = 0):
        self.requested_length = int(length)  # 0 = whole episodes
        self.length = int(length)  # rows per window (set from the first episodes when 0)
        self.device = torch.device(device)
        self.storage_device = self.device
        self.data: dict[str, Tensor] = {}
        self.starts = torch.zeros(0, dtype=torch.long)
        self.num_episodes = 0
        self.generator = torch.Generator(device="cpu").manual_seed(seed)

    def __len__(self) -> int:
        return 0 if not self.data else len(self.data["reward"])

    @classmethod
    def from_dataset(
        cls, root: str | Path, length: int, device: str | torch.device = "cpu", seed: int = 0
    ) -> Replay:
        root = Path(root)
        if not root.is_dir():
            raise ReplayError(f"dataset folder {root} does not exist")
        replay = cls(length, device, seed)
        episodes = [ep for _, ep in Dataset(root).episodes()]
        if not episodes:
            raise ReplayError(f"dataset {root} has no episodes")
        replay.add_many(episodes, names=[str(p) for p in Dataset(root).episode_paths()])
        return replay

    def add(self, episode: Episode, name: str = "<episode>") -> None:
        self.add_many([episode], [name])

    def add_many(self, episodes: list[Episode], names: list[str] | None = None) -> None:
        names = names or [f"<episode {i}>" for i in range(len(episodes))]
        chunks: dict[str, list[np.ndarray]] = {k: [] for k in FIELDS}
        offset = len(self)
        new_starts = []
        if self.length <= 0:  # whole episodes: the shortest first episode sets the window
            pairs = zip(episodes, names, strict=True)
            self.length = min(self._check(ep, name) for ep, name in pairs)
        for ep, name in zip(episodes, names, strict=True):
            n = self._check(ep, name)
            for k, (_, shape) in FIELDS.items():
                chunks[k].append(np.asarray(ep.steps[k]).reshape(n, *shape))
            if n >= self.length:
                new_starts.append(torch.arange(offset, offset + n - self.length + 1))
            offset += n
        if not new_starts and len(self.starts) == 0:
            raise ReplayError(
                f"no episode has >= {self.length} rows: cannot sample sequences of that length"
            )
        new = {k: torch.from_numpy(np.concatenate(v)) for k, v in chunks.items()}
        if not self.data:
            self.storage_device = self._pick_storage(sum(t.nbytes for t in new.values()))
        for k, v in new.items():
            v = v.to(self.storage_device)
            self.data[k] = v if k not in self.data else torch.cat([self.data[k], v])
        self.starts = torch.cat([self.starts, *new_starts])
        self.num_episodes += len(episodes)

    def _pick_storage(self, nbytes: int) -> torch.device:
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            if nbytes > free // 3:  # leave room for the model and activations
                return torch.device("cpu")
        return self.device

    @staticmethod
    def _check(ep: Episode, name: str) -> int:
        n = len(ep.steps.get("reward", ()))
        if n < 2:
            raise ReplayError(f"{name}: episode has {n} rows, need at least 2")
        for k, (_, shape) in FIELDS.items():
            if k not in ep.steps:
                raise ReplayError(f"{name}: missing field '{k}'")
            got = tuple(np.shape(ep.steps[k]))
            if got != (n, *shape):
                raise ReplayError(f"{name}: field '{k}' has shape {got}, expected {(n, *shape)}")
        return n

    def sample(
        self, batch: int, online_from: int = -1, online_share: float = 0.0
    ) -> dict[str, Tensor]:
        """B windows of `length` consecutive rows of one episode each. Row 0 of every window is
        marked is_first, so the RSSM starts each window from its initial state. With
        `online_from` >= 0, a share `online_share` of the windows starts at or after that row
        (finetuning's online episodes)."""
        starts = self.starts
        online = starts[starts >= online_from] if online_from >= 0 else starts[:0]
        n_on = int(round(batch * online_share)) if len(online) else 0
        if n_on:
            offline = starts[starts < online_from]
            a = online[torch.randint(len(online), (n_on,), generator=self.generator)]
            b = offline[torch.randint(len(offline), (batch - n_on,), generator=self.generator)]
            first = torch.cat([a, b])
        else:
            first = starts[torch.randint(len(starts), (batch,), generator=self.generator)]
        idx = first[:, None] + torch.arange(self.length)
        idx = idx.to(self.storage_device)
        out = {k: v[idx] for k, v in self.data.items()}
        out["is_first"] = out["is_first"].clone()
        out["is_first"][:, 0] = True
        if self.storage_device != self.device:
            out = {k: v.to(self.device, non_blocking=True) for k, v in out.items()}
        return out

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}  # the episodes come back from the files

    def episode_rows(self) -> list[Tensor]:
        """The row indices of each stored episode, in order."""
        first = torch.nonzero(self.data["is_first"].cpu()).squeeze(-1)
        ends = torch.cat([first[1:], torch.tensor([len(self)])])
        return [torch.arange(int(a), int(b)) for a, b in zip(first, ends, strict=True)]

    def episode_windows(self) -> Tensor:
        """Row indices [E, length] of the window that starts at each episode's first row (every
        episode with at least `length` rows)."""
        rows = [r[: self.length] for r in self.episode_rows() if len(r) >= self.length]
        return torch.stack(rows)

    def gather(self, idx: Tensor) -> dict[str, Tensor]:
        """The fields at row indices `idx` (any shape), on the training device."""
        out = {k: v[idx.to(self.storage_device)] for k, v in self.data.items()}
        return {k: v.to(self.device, non_blocking=True) for k, v in out.items()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
