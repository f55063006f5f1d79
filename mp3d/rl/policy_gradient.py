"""Policy-gradient agents on Box observations, with Discrete (categorical policy) or Box
(Gaussian policy, e.g. Pendulum) actions, each with a learned state-value baseline:

- REINFORCE (Williams 1992): a step plays `batch_episodes` whole episodes and updates with
  their discounted returns G_t (bootstrapped from V where a time limit cut an episode);
- A2C (Mnih et al. 2016, synchronous): a step is a rollout of `n_steps` in `n_envs`
  environments and one update with n-step returns.

Both minimise policy + value_coef * value - entropy_coef * entropy
(mp3d.rl.losses.policy_gradient_losses) with Adam. Gaussian samples are clipped to the
action bounds only when sent to the environment.
"""

from __future__ import annotations

import numpy as np
import torch

from mp3d.rl.agents import PolicyAgent
from mp3d.rl.config import A2CConfig, PolicyGradientConfig, ReinforceConfig
from mp3d.rl.envs import EnvVector, is_discrete, require_spaces
from mp3d.rl.losses import discounted_returns, n_step_returns, policy_gradient_losses
from mp3d.rl.networks import ValueNetwork, make_policy
from mp3d.rl.trainer import Trainer


class PolicyGradientTrainer(Trainer):
    """What REINFORCE and A2C share: envs, policy, value baseline, optimizer, generator."""

    n_envs = 1

    def __init__(self, config: PolicyGradientConfig, env_id: str, device: torch.device):
        super().__init__(config, env_id)
        self.envs = EnvVector(env_id, self.n_envs, config.seed)
        require_spaces(self.envs.envs[0], config.algorithm, observation="box", action="any")
        action_space = self.envs.action_space
        if not (is_discrete(action_space) or len(action_space.shape) == 1):
            raise ValueError(
                f"{config.algorithm} needs Discrete or 1-D Box actions; env {env_id} has "
                f"{action_space}"
            )
        self.discrete = is_discrete(action_space)
        self.low = None if self.discrete else action_space.low
        self.high = None if self.discrete else action_space.high
        self.device = device
        env = self.envs.envs[0]
        self.policy = make_policy(env, config.hidden, config.log_std_init).to(device)
        self.value_net = ValueNetwork(int(env.observation_space.shape[0]), config.hidden)
        self.value_net.to(device)
        parameters = [*self.policy.parameters(), *self.value_net.parameters()]
        self.optimizer = torch.optim.Adam(parameters, lr=config.lr)
        self.generator = torch.Generator(device=device).manual_seed(config.seed)
        self.updates = 0

    def _sample(self, observations: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        """Actions as sampled (tensor, for log-probabilities) and as sent to the envs."""
        x = torch.as_tensor(observations, device=self.device)
        with torch.no_grad():
            actions = self.policy.sample(x, self.generator)
        sent = actions.cpu().numpy()
        if not self.discrete:
            sent = np.clip(sent, self.low, self.high)
        return actions, sent

    def _values(self, observations: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            return self.value_net(torch.as_tensor(observations, device=self.device))

    def update(self, observations, actions, returns) -> dict[str, float]:
        """One Adam step on a batch: observations [B, obs_dim], actions [B] or [B, dim],
        return targets [B]; the loss terms as floats."""
        config = self.config
        terms = policy_gradient_losses(
            self.policy,
            self.value_net,
            observations,
            actions,
            returns,
            config.normalize_advantages,
        )
        loss = (
            terms["policy"]
            + config.value_coef * terms["value"]
            - config.entropy_coef * terms["entropy"]
        )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.max_grad_norm > 0:
            parameters = [*self.policy.parameters(), *self.value_net.parameters()]
            torch.nn.utils.clip_grad_norm_(parameters, config.max_grad_norm)
        self.optimizer.step()
        self.updates += 1
        scalars = {name: float(value.detach()) for name, value in terms.items()}
        return {"loss": float(loss.detach()), **scalars}

    def agent(self):
        return PolicyAgent(self.config.algorithm, self.env_id, self.policy, self.low, self.high)

    def state_dict(self):
        return {
            **super().state_dict(),
            "policy": self.policy.state_dict(),
            "value_net": self.value_net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "updates": self.updates,
            "env_resets": self.envs.episodes,
        }

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.policy.load_state_dict(state["policy"])
        self.value_net.load_state_dict(state["value_net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.updates = int(state["updates"])
        # Interrupted episodes cannot be restored: the envs start their next ones.
        self.envs.close()
        self.envs = EnvVector(self.env_id, self.n_envs, self.config.seed, int(state["env_resets"]))

    def close(self):
        self.envs.close()


class ReinforceTrainer(PolicyGradientTrainer):
    """REINFORCE with a learned baseline (see the module docstring)."""

    def __init__(self, config: ReinforceConfig, env_id: str, device: torch.device):
        super().__init__(config, env_id, device)

    def step(self, progress):
        config = self.config
        observations, actions, returns, finished = [], [], [], []
        while len(finished) < config.batch_episodes:
            episode_obs, episode_actions, rewards = [], [], []
            while True:
                obs = self.envs.observations.copy()
                sampled, sent = self._sample(obs)
                _, reward, terminated, truncated, finals = self.envs.step(sent)
                episode_obs.append(obs[0])
                episode_actions.append(sampled[0])
                rewards.append(float(reward[0]))
                self.env_steps += 1
                if terminated[0] or truncated[0]:
                    break
            g = discounted_returns(torch.tensor(rewards), config.gamma)
            if truncated[0] and not terminated[0]:  # cut by a time limit: bootstrap from V
                powers = config.gamma ** torch.arange(len(rewards), 0, -1, dtype=torch.float32)
                g = g + powers * self._values(finals).cpu()[0]
            observations.append(torch.as_tensor(np.stack(episode_obs)))
            actions.append(torch.stack(episode_actions))
            returns.append(g)
            finished.extend(self.envs.pop_finished())
        self.episodes += len(finished)
        scalars = self.update(
            torch.cat(observations).to(self.device),
            torch.cat(actions).to(self.device),
            torch.cat(returns).float().to(self.device),
        )
        return {**self.record(finished), **scalars}


class A2CTrainer(PolicyGradientTrainer):
    """Synchronous advantage actor-critic with n-step returns (see the module docstring)."""

    def __init__(self, config: A2CConfig, env_id: str, device: torch.device):
        self.n_envs = config.n_envs
        super().__init__(config, env_id, device)

    def step(self, progress):
        config = self.config
        n, t_max = self.n_envs, config.n_steps
        observations, actions = [], []
        rewards = torch.zeros(t_max, n)
        dones = torch.zeros(t_max, n)
        truncation_values = torch.zeros(t_max, n)
        for t in range(t_max):
            obs = self.envs.observations.copy()
            sampled, sent = self._sample(obs)
            _, reward, terminated, truncated, finals = self.envs.step(sent)
            observations.append(torch.as_tensor(obs))
            actions.append(sampled)
            rewards[t] = torch.as_tensor(reward, dtype=torch.float32)
            dones[t] = torch.as_tensor(terminated | truncated, dtype=torch.float32)
            cut = truncated & ~terminated
            if cut.any():  # bootstrap through the time limit from V(last observation)
                truncation_values[t] = self._values(finals).cpu() * torch.as_tensor(cut)
        self.env_steps += n * t_max
        last_values = self._values(self.envs.observations).cpu()
        returns = n_step_returns(rewards, dones, truncation_values, last_values, config.gamma)
        finished = self.envs.pop_finished()
        self.episodes += len(finished)
        scalars = self.update(
            torch.cat(observations).to(self.device),
            torch.cat(actions).to(self.device),
            returns.reshape(-1).to(self.device),
        )
        return {**self.record(finished), **scalars}
