"""Deep Q-learning (Mnih et al. 2015) for Box observations and Discrete actions: epsilon-
greedy acting on a linear schedule, a replay buffer, a target network copied every
`target_update` gradient steps, the Huber loss (mp3d.rl.losses.dqn_loss) and Adam.
A training step is one environment step (DQNConfig)."""

from __future__ import annotations

import copy

import torch

from mp3d.rl.agents import QAgent
from mp3d.rl.config import DQNConfig
from mp3d.rl.envs import EnvVector, require_spaces
from mp3d.rl.losses import dqn_loss
from mp3d.rl.networks import QNetwork
from mp3d.rl.replay import LinearSchedule, ReplayBuffer
from mp3d.rl.trainer import Trainer


class DQNTrainer(Trainer):
    """The state of a DQN run: Q and target networks, optimizer, replay buffer, generator."""

    def __init__(self, config: DQNConfig, env_id: str, device: torch.device) -> None:
        super().__init__(config, env_id)
        self.envs = EnvVector(env_id, 1, config.seed)
        require_spaces(self.envs.envs[0], "dqn", observation="box", action="discrete")
        self.device = device
        obs_dim = int(self.envs.observation_space.shape[0])
        self.n_actions = int(self.envs.action_space.n)
        self.q_net = QNetwork(obs_dim, self.n_actions, config.hidden).to(device)
        self.target_net = copy.deepcopy(self.q_net).requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.q_net.parameters(), lr=config.lr)
        self.buffer = ReplayBuffer(config.buffer_size, obs_dim)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.epsilon = LinearSchedule(
            config.epsilon_start,
            config.epsilon_end,
            config.exploration_fraction,
            config.steps or 100_000,
        )
        self.gradient_updates = 0
        self.last_loss = float("nan")

    def _act(self, observations: torch.Tensor, epsilon: float) -> int:
        explore = self.env_steps < self.config.learning_starts
        if explore or float(torch.rand((), generator=self.generator)) < epsilon:
            return int(torch.randint(self.n_actions, (), generator=self.generator))
        with torch.no_grad():
            return int(self.q_net(observations.to(self.device)).argmax(dim=1))

    def step(self, progress):
        config = self.config
        at = self.env_steps if config.steps else round(progress * self.epsilon.total)
        epsilon = self.epsilon(at)
        observations = torch.as_tensor(self.envs.observations)
        action = self._act(observations, epsilon)
        _, reward, terminated, _, finals = self.envs.step([action])
        self.buffer.add(observations, [action], reward, finals, terminated)
        self.env_steps += 1
        finished = self.envs.pop_finished()
        self.episodes += len(finished)
        scalars = self.record(finished)
        if self.env_steps >= config.learning_starts and self.env_steps % config.train_freq == 0:
            for _ in range(config.gradient_steps):
                self.last_loss = self.update()
        return {**scalars, "epsilon": epsilon, "loss": self.last_loss}

    def update(self) -> float:
        """One gradient step on a replay batch (and the target copy when due); the loss."""
        batch = self.buffer.sample(self.config.batch_size, self.generator)
        batch = {name: value.to(self.device) for name, value in batch.items()}
        loss = dqn_loss(self.q_net, self.target_net, batch, self.config.gamma)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.q_net.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        self.gradient_updates += 1
        if self.gradient_updates % self.config.target_update == 0:
            self.target_net.load_state_dict(self.q_net.state_dict())
        return float(loss.detach())

    def agent(self):
        return QAgent("dqn", self.env_id, self.q_net)

    def state_dict(self):
        return {
            **super().state_dict(),
            "q_net": self.q_net.state_dict(),
            "target_net": self.target_net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "buffer": self.buffer.state_dict(),
            "generator": self.generator.get_state(),
            "gradient_updates": self.gradient_updates,
            "env_resets": self.envs.episodes,
        }

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.q_net.load_state_dict(state["q_net"])
        self.target_net.load_state_dict(state["target_net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.buffer.load_state_dict(state["buffer"])
        self.generator.set_state(state["generator"])
        self.gradient_updates = int(state["gradient_updates"])
        # The interrupted episode cannot be restored: start the next one.
        self.envs.close()
        self.envs = EnvVector(self.env_id, 1, self.config.seed, int(state["env_resets"]))

    def close(self):
        self.envs.close()
