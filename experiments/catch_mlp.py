"""DQN with an MLP on Catch 8x8 written in JAX.

Setup: preset `dqn` on `jax:Catch` (the ball-catching game of the Keras DQN article and
of bsuite, Osband et al. 2020) at its default size 8, with the catch family defaults of
`jaxrl57/presets.py`: MLP 64x64 on the flattened 8x8x1 grid, Adam 1e-3, batch 32,
replay 10k, learning starts at 500, target copy every 100 updates, 8 envs, 40k env steps,
100 evaluation episodes per row.

Expected: final greedy eval return near +1 (optimal: every ball caught); a random
policy scores 2/8 - 1 = -0.75.

    python experiments/catch_mlp.py [--steps N] [--seeds K] [--out DIR] [--set NAME=VALUE ...]
"""

import sys

from jaxrl57.cli import main

ARGS = ["train", "dqn", "--env", "jax:Catch", "--set", "torso=mlp"]

if __name__ == "__main__":
    sys.exit(main(ARGS + sys.argv[1:]))  # extra args are appended, so they win
