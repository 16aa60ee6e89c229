"""DQN on CartPole-v1 written in JAX: the toolkit's default run.

Setup: preset `dqn` (Mnih et al. 2015: Q-learning, target network, Huber loss) on
`jax:CartPole-v1` (Barto, Sutton & Anderson 1983; the Gymnasium CartPole-v1 dynamics,
500-step cap) with the cartpole family defaults of `jaxrl57/configs.py`: MLP 64x64,
Adam 2.3e-3 annealed to 5 %, squared TD loss, batch 64, replay 50k, 8 envs, 4 updates
per iteration, target copy every 128 updates, 70k env steps. The whole run is one
compiled `lax.scan`.

Expected: final greedy eval return close to the cap of 500 (solved), in well under a
minute on a 2-core CPU.

    python experiments/cartpole_dqn.py [--steps N] [--seeds K] [--out DIR] [--set NAME=VALUE ...]
"""

import sys

from jaxrl57.cli import main

ARGS = ["train", "dqn", "--env", "jax:CartPole-v1"]

if __name__ == "__main__":
    sys.exit(main(ARGS + sys.argv[1:]))  # extra args are appended, so they win
