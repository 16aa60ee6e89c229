"""Nature DQN on an Atari game through EnvPool (default Breakout-v5).

Setup: Mnih et al. 2015, "Human-level control through deep reinforcement learning",
Extended Data Table 1, as the `atari` family of `jaxrl57/configs.py`: Nature CNN,
centered RMSProp (lr 2.5e-4, decay 0.95, eps 0.01 for the summed loss: 0.01 / 32**2
for the batch-mean one), batch 32, replay 1M, replay start 50k, one update every 4
agent steps, target copy every 10k agent steps (2,500 updates), epsilon 1 -> 0.1 over
1M steps from the replay start on, eval epsilon 0.05, discount 0.99, Huber loss; EnvPool's Atari
preprocessing (84x84 gray, 4 frames, action repeat 4, episodic life and clipped
rewards for training only). 10M agent steps (40M frames), synchronous EnvPool loop.

Expected: with the full 10M steps Breakout reaches a score in the hundreds (the paper
reports 401 +- 27 after 50M steps); that takes many GPU hours. `--smoke` runs 2000 steps
with a 10k replay, learning from step 500, 2 rows and 1 eval episode: it only checks
that the pipeline runs end to end (a couple of minutes on CPU, score near random).

    python experiments/dqn_atari.py [--env Pong-v5] [--smoke] [--steps N] [--out DIR] [--set ...]
"""

import sys

from _atari import run

if __name__ == "__main__":
    sys.exit(run("dqn"))
