"""DDPG on Pendulum-v1 written in JAX, with a choice of how actions stay in bounds.

Setup: preset `ddpg` (Lillicrap et al. 2016, Algorithm 1: deterministic actor,
critic on (obs, action), Polyak-averaged targets, Ornstein-Uhlenbeck exploration
with theta 0.15 and sigma 0.2 from sec. 7) on `jax:Pendulum-v1` (Gymnasium's
Pendulum-v1 dynamics: torque in [-2, 2], 200-step episodes) with the pendulum
family defaults of `jaxrl57/presets.py`, listed below. Sizes and step sizes are
the small-task choice, not the paper's MuJoCo ones (400-300 units, actor 1e-4):
one update per env step, learning from the 1,000th step, so that a run ends
within a minute on a 2-core CPU. The whole run is one compiled `lax.scan`.

    python experiments/ddpg_pendulum.py [--seeds K] [--set action_bounding=inverting_gradients]
    jaxrl57 train td3 --env jax:Pendulum-v1   # TD3 with the same family settings

`--set action_bounding=...` picks tanh squashing (the default), inverting
gradients (Hausknecht & Stone 2016: an unsquashed actor whose action gradient
is scaled down towards a bound and reversed past it), clip, or none.

Expected: a mean greedy evaluation return of about -150 over 100 episodes on
every seed (the task counts as learned at -200); the figures per seed and
bounding are in docs/results.md and benchmarks/continuous_control.py.
"""

import sys

from jaxrl57.cli import main

AGENT, ENV = "ddpg", "jax:Pendulum-v1"
SETTINGS = {
    "hidden_sizes": "128,128",  # actor and critic MLPs
    "num_critics": "1", "exploration": "ou", "action_bounding": "tanh",
    "exploration_noise": "0.2", "ou_theta": "0.15",  # sec. 7, in action scales
    "actor_learning_rate": "0.001", "critic_learning_rate": "0.001",
    "critic_weight_decay": "0",
    "tau": "0.005", "discount": "0.99",
    "batch_size": "128", "replay_capacity": "50000",
    "learning_starts": "1000", "random_steps": "1000",  # uniform actions first
    "total_steps": "15000", "num_envs": "4", "updates_per_train": "4",  # 1 update/step
    "eval_episodes": "100",
}
# The defaults hold these (tests/test_experiments.py); listed here to be read.

ARGS = ["train", AGENT, "--env", ENV]

if __name__ == "__main__":
    sys.exit(main(ARGS + sys.argv[1:]))  # extra args are appended, so they win
