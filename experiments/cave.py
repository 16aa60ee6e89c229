"""DQN with a small CNN on CAVE 48x48, 4 stacked frames, written in JAX.

Setup: preset `dqn` on `jax:Cave` (the side-scrolling cave game of the Keras DQN
article) at its defaults, a 48x48 screen with the last 4 frames stacked (uint8, scaled
by 1/255), with the cave family defaults of `jaxrl57/presets.py`: `small_cnn` torso,
Adam 2.5e-4, batch 32, replay 50k, learning starts at 5k, target copy every 1000
updates, 8 envs, 2 updates per iteration, 200k env steps.

Expected: the greedy eval return (steps survived, capped at 1000) rises well above a
random policy's (a few tens of steps) towards the cap as the agent learns to follow the
passage; the run takes minutes on CPU.

    python experiments/cave.py [--steps N] [--seeds K] [--out DIR] [--set NAME=VALUE ...]
"""

import sys

from jaxrl57.cli import main

# size 48 and 4 frames are make_cave's defaults, which is what the CLI builds.
ARGS = ["train", "dqn", "--env", "jax:Cave", "--set", "torso=small_cnn"]

if __name__ == "__main__":
    sys.exit(main(ARGS + sys.argv[1:]))  # extra args are appended, so they win
