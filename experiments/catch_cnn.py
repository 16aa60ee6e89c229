"""DQN with a small CNN on Catch 16x16 written in JAX.

Setup: preset `dqn` on `jax:Catch` at size 16 (the ball-catching game of the Keras DQN
article and of bsuite, Osband et al. 2020), with the catch family defaults of
`jaxrl57/presets.py` (Adam 1e-3 annealed to 5 %, batch 32, replay 10k, learning starts
at 500, target copy every 100 updates, 8 envs, 100 eval episodes) and `torso=small_cnn`
(3x3 convolutions, 16 and 32 channels, dense 256).

Expected: final greedy eval return near +1 (optimal); a random policy scores
2/16 - 1 = -0.875. Not yet measured to the end on the 2-core CPU (XLA's CPU
convolutions make it a few minutes per 10k steps there).

    python experiments/catch_cnn.py [--steps N] [--seeds K] [--out DIR] [--set NAME=VALUE ...]
"""

import sys

from jaxrl57.cli import main

ARGS = ["train", "dqn", "--env", "jax:Catch", "--env-arg", "size=16", "--set", "torso=small_cnn"]

if __name__ == "__main__":
    sys.exit(main(ARGS + sys.argv[1:]))  # extra args are appended, so they win
