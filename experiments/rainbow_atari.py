"""Rainbow on an Atari game through EnvPool (default Breakout-v5).

Setup: Hessel et al. 2018, "Rainbow: Combining Improvements in Deep Reinforcement
Learning", Table 1, as the `rainbow` preset of `jaxrl57/agents/dqn.py` with the `atari`
family of `jaxrl57/configs.py`: Nature CNN torso; C51 head (51 atoms on [-10, 10])
with dueling streams and factorised-Gaussian noisy layers (sigma0 0.5), no
epsilon-greedy; double Q action selection; 3-step returns; proportional prioritized
replay (alpha 0.5, beta 0.4 -> 1 over the run, the KL loss as priority); Adam (lr 6.25e-5,
eps 1.5e-4); learning starts after 80k frames, target copy every 32k frames, one update
every 4 agent steps, replay 1M, discount 0.99; EnvPool's Atari preprocessing (84x84
gray, 4 frames, action repeat 4, episodic life and clipped rewards for training only).

Expected: the paper's median human-normalized score is 223 % after 200M frames (50M
agent steps); that takes GPU days. `--smoke` runs 2000 agent steps with a 10k replay,
learning from step 500, 2 rows and 1 evaluation episode: it only checks that the
pipeline runs end to end on CPU (score near random).

    python experiments/rainbow_atari.py [--env Pong-v5] [--smoke] [--steps N] [--out DIR]
"""

import sys

from _atari import run

if __name__ == "__main__":
    sys.exit(run("rainbow"))
