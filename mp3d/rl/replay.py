"""Experience replay and the exploration schedule of DQN."""

from __future__ import annotations

import torch

from mp3d.training import check_float, check_int


class LinearSchedule:
    """A value that moves linearly from `start` to `end` over the first `fraction` of a run
    of `total` steps, then stays at `end` (DQN's epsilon-greedy schedule)."""

    def __init__(self, start: float, end: float, fraction: float, total: int) -> None:
        self.start = check_float("start", start)
        self.end = check_float("end", end)
        self.fraction = check_float("fraction", fraction, 0.0, 1.0)
        self.total = check_int("total", total, 1)

    def __call__(self, step: int) -> float:
        """The value after `step` steps."""
        span = self.fraction * self.total
        if span <= 0:
            return self.end
        t = min(max(step, 0) / span, 1.0)
        return self.start + t * (self.end - self.start)


class ReplayBuffer:
    """A ring buffer of the last `capacity` transitions (s, a, r, s', terminated), stored as
    tensors: observations [capacity, obs_dim] float32, actions [capacity] int64 (or
    [capacity, action_dim] float32), rewards and terminated [capacity] float32. `terminated`
    is 1 only where the episode truly ended (not at a time limit), so targets bootstrap from
    s' everywhere else."""

    def __init__(self, capacity: int, obs_dim: int, action_shape: tuple[int, ...] = ()) -> None:
        check_int("capacity", capacity, 1)
        check_int("obs_dim", obs_dim, 1)
        self.capacity = capacity
        self.observations = torch.zeros(capacity, obs_dim)
        self.next_observations = torch.zeros(capacity, obs_dim)
        dtype = torch.int64 if action_shape == () else torch.float32
        self.actions = torch.zeros(capacity, *action_shape, dtype=dtype)
        self.rewards = torch.zeros(capacity)
        self.terminated = torch.zeros(capacity)
        self.position = 0  # the next slot to write
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, observations, actions, rewards, next_observations, terminated) -> None:
        """Appends a batch of n transitions (array-likes with leading dimension n), overwriting
        the oldest ones once full."""
        observations = torch.as_tensor(observations, dtype=torch.float32)
        n = observations.shape[0]
        if n > self.capacity:
            raise ValueError(f"a batch of {n} transitions does not fit capacity {self.capacity}")
        index = (self.position + torch.arange(n)) % self.capacity
        self.observations[index] = observations
        self.next_observations[index] = torch.as_tensor(next_observations, dtype=torch.float32)
        self.actions[index] = torch.as_tensor(actions).to(self.actions.dtype)
        self.rewards[index] = torch.as_tensor(rewards, dtype=torch.float32)
        self.terminated[index] = torch.as_tensor(terminated, dtype=torch.float32)
        self.position = (self.position + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> dict:
        """batch_size transitions drawn uniformly with replacement: a dict of observations,
        actions, rewards, next_observations, terminated (first dimension batch_size)."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        check_int("batch_size", batch_size, 1)
        index = torch.randint(self.size, (batch_size,), generator=generator)
        return {
            "observations": self.observations[index],
            "actions": self.actions[index],
            "rewards": self.rewards[index],
            "next_observations": self.next_observations[index],
            "terminated": self.terminated[index],
        }

    def state_dict(self) -> dict:
        """The filled part and the write position, as tensors and ints (for checkpoints)."""
        n = self.size
        return {
            "observations": self.observations[:n].clone(),
            "actions": self.actions[:n].clone(),
            "rewards": self.rewards[:n].clone(),
            "next_observations": self.next_observations[:n].clone(),
            "terminated": self.terminated[:n].clone(),
            "position": self.position,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restores state_dict() into a buffer of the same capacity and shapes."""
        n = state["observations"].shape[0]
        if n > self.capacity:
            raise ValueError(f"the stored buffer holds {n} > capacity {self.capacity}")
        for name in ("observations", "actions", "rewards", "next_observations", "terminated"):
            getattr(self, name)[:n] = state[name]
        self.size, self.position = n, int(state["position"])
