"""Exact planning in a finite MDP from its model (mp3d.rl.envs.TabularModel): value
iteration, policy iteration with exact (linear-solve) policy evaluation, and the Bellman
optimality residual that certifies a solution. All arithmetic is float64.

With discount gamma, V*(s) = max_a [R(s,a) + gamma * sum_s' P(s'|s,a) V*(s')]; a policy is
an int64 tensor [S] of actions (greedy ties go to the lowest action index).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mp3d.rl.envs import TabularModel
from mp3d.training import check_float, check_int

# Action values closer than this count as tied (the lowest action wins), so that value
# iteration's last-digit error and policy iteration's solve pick the same policy, and policy
# iteration never cycles between actions of equal value.
TIE_TOLERANCE = 1e-9


@dataclass
class PlanningResult:
    """values [S] and q [S, A] (float64), policy [S] int64, iterations run (sweeps for value
    iteration, improvement rounds for policy iteration), residual: the final
    max-norm Bellman optimality residual ||T V - V||_inf, converged: whether it stopped on
    its criterion rather than its iteration limit."""

    values: torch.Tensor
    q: torch.Tensor
    policy: torch.Tensor
    iterations: int
    residual: float
    converged: bool


def _check_gamma(gamma: float) -> float:
    return check_float("gamma", gamma, 0.0, 1.0)


def q_values(model: TabularModel, values: torch.Tensor, gamma: float) -> torch.Tensor:
    """Q [S, A] = R + gamma * P V for state values [S]."""
    return model.rewards + gamma * torch.einsum("sat,t->sa", model.transitions, values)


def bellman_optimality(model: TabularModel, values: torch.Tensor, gamma: float) -> torch.Tensor:
    """(T V)[S] = max_a Q(s, a): one Bellman optimality backup of state values [S]."""
    return q_values(model, values, gamma).max(dim=1).values


def bellman_residual(model: TabularModel, values: torch.Tensor, gamma: float) -> float:
    """||T V - V||_inf: zero exactly at the optimal values."""
    values = values.to(torch.float64)
    return float((bellman_optimality(model, values, gamma) - values).abs().max())


def greedy_policy(q: torch.Tensor) -> torch.Tensor:
    """argmax_a Q(s, a) [S] int64 (the lowest index among ties within TIE_TOLERANCE)."""
    best = q.max(dim=1, keepdim=True).values
    return (q >= best - TIE_TOLERANCE).to(torch.int8).argmax(dim=1)


def policy_evaluation(model: TabularModel, policy: torch.Tensor, gamma: float) -> torch.Tensor:
    """The exact values V^pi [S] of a policy: actions [S] (deterministic) or probabilities
    [S, A], by solving (I - gamma P_pi) V = R_pi. ValueError if the system is singular (with
    gamma = 1, a policy that never ends some episodes)."""
    _check_gamma(gamma)
    n_states, n_actions = model.n_states, model.n_actions
    if policy.dim() == 1:
        if policy.shape != (n_states,):
            raise ValueError(f"policy must have shape [{n_states}], got {list(policy.shape)}")
        if policy.numel() and (policy.min() < 0 or policy.max() >= n_actions):
            raise ValueError(f"policy actions must be in [0, {n_actions - 1}]")
        probabilities = torch.nn.functional.one_hot(policy.long(), n_actions).to(torch.float64)
    else:
        if policy.shape != (n_states, n_actions):
            raise ValueError(
                f"policy must have shape [{n_states}] or [{n_states}, {n_actions}], "
                f"got {list(policy.shape)}"
            )
        probabilities = policy.to(torch.float64)
    p_pi = torch.einsum("sa,sat->st", probabilities, model.transitions)
    r_pi = (probabilities * model.rewards).sum(dim=1)
    system = torch.eye(n_states, dtype=torch.float64) - gamma * p_pi
    values, info = torch.linalg.solve_ex(system, r_pi)
    if int(info) != 0 or not torch.isfinite(values).all():
        raise ValueError(
            f"policy evaluation with gamma={gamma:g} is singular: the policy never ends some "
            f"episodes; use gamma < 1"
        )
    return values


def policy_improvement(
    model: TabularModel, policy: torch.Tensor, gamma: float
) -> tuple[torch.Tensor, bool]:
    """One round of policy iteration: evaluates `policy` [S] exactly, then switches each
    state whose greedy action is better by more than TIE_TOLERANCE; returns (the new policy,
    whether none switched, i.e. the policy was already optimal)."""
    q = q_values(model, policy_evaluation(model, policy, gamma), gamma)
    current = q.gather(1, policy.long()[:, None])[:, 0]
    better = q.max(dim=1).values > current + TIE_TOLERANCE
    return torch.where(better, greedy_policy(q), policy.long()), not bool(better.any())


def value_iteration(
    model: TabularModel, gamma: float = 0.99, tol: float = 1e-12, max_iterations: int = 100_000
) -> PlanningResult:
    """Value iteration from V = 0 until successive values differ by at most `tol` (max
    norm) or `max_iterations` sweeps; the greedy policy of the final values."""
    _check_gamma(gamma)
    check_float("tol", tol, 0.0, exclusive_minimum=True)
    check_int("max_iterations", max_iterations, 1)
    values = torch.zeros(model.n_states, dtype=torch.float64)
    converged = False
    iterations = 0
    while iterations < max_iterations:
        iterations += 1
        new = bellman_optimality(model, values, gamma)
        change = float((new - values).abs().max())
        values = new
        if change <= tol:
            converged = True
            break
    q = q_values(model, values, gamma)
    return PlanningResult(
        values, q, greedy_policy(q), iterations, bellman_residual(model, values, gamma), converged
    )


def policy_iteration(
    model: TabularModel,
    gamma: float = 0.99,
    max_iterations: int = 1000,
    policy: torch.Tensor | None = None,
) -> PlanningResult:
    """Policy iteration from `policy` (default: action 0 everywhere): exact evaluation, then
    greedy improvement, until the policy is stable (or `max_iterations` rounds)."""
    _check_gamma(gamma)
    check_int("max_iterations", max_iterations, 1)
    if policy is None:
        policy = torch.zeros(model.n_states, dtype=torch.int64)
    policy = policy.clone().long()
    converged = False
    iterations = 0
    while iterations < max_iterations:
        iterations += 1
        policy, stable = policy_improvement(model, policy, gamma)
        if stable:
            converged = True
            break
    values = policy_evaluation(model, policy, gamma)
    q = q_values(model, values, gamma)
    return PlanningResult(
        values, q, greedy_policy(q), iterations, bellman_residual(model, values, gamma), converged
    )
