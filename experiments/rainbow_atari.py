"""Rainbow on an Atari game through EnvPool (default Breakout-v5).

Setup: Hessel et al. 2018, "Rainbow: Combining Improvements in Deep Reinforcement
Learning", Table 1, as the `rainbow` preset with the `atari` family of
`jaxrl57/presets.py` (its settings are listed below): Nature CNN torso; C51 head (51
atoms on [-10, 10]) with dueling streams and factorised-Gaussian noisy layers (sigma0
0.5), no epsilon-greedy; double Q action selection; 3-step returns; proportional
prioritized replay (alpha 0.5, beta 0.4 -> 1 over the run, the KL loss as priority);
Adam (lr 6.25e-5, eps 1.5e-4); learning starts after 80k frames, target copy every 32k
frames, one update every 4 agent steps, replay 1M, discount 0.99; EnvPool's Atari
preprocessing (84x84 gray, 4 frames, action repeat 4, episodic life and clipped rewards
for training only).

Expected: the paper's median human-normalized score is 223 % after 200M frames (50M
agent steps); that takes GPU days. `--smoke` runs 2000 agent steps with a 10k replay,
learning from step 500, 2 rows and 1 evaluation episode: it only checks that the
pipeline runs end to end on CPU (score near random).

    python experiments/rainbow_atari.py [--env Pong-v5] [--smoke] [--steps N] [--out DIR]
"""

import sys

from _atari import run

AGENT, ENV = "rainbow", "Breakout-v5"
# Hessel et al. 2018, Table 1 (frames are 4 per agent step) and sec. 3.
SETTINGS = {
    "torso": "nature_cnn",
    "distribution": "c51", "num_atoms": "51",  # "Distributional atoms 51"
    "v_min": "-10", "v_max": "10",  # "Distributional min/max values [-10, 10]"
    "dueling": "true", "double": "true",
    "noisy": "true", "noisy_sigma0": "0.5",  # "Noisy Nets sigma_0 0.5"
    "epsilon_start": "0", "epsilon_end": "0",  # "Exploration epsilon 0"
    "n_step": "3",  # "Multi-step returns n 3"
    "prioritized": "true",
    "priority_alpha": "0.5",  # "Prioritization exponent omega 0.5"
    "priority_beta_start": "0.4",  # "Prioritization importance sampling beta 0.4 -> 1"
    "optimizer": "adam",
    "learning_rate": "6.25e-05",  # "Adam learning rate 0.0000625"
    "optimizer_eps": "0.00015",  # "Adam epsilon 1.5 x 10^-4"
    "learning_starts": "20000",  # "Min history to start learning 80K frames"
    "target_period": "2000",  # "Target Network Period 32K frames" = 8,000 agent steps
    "replay_capacity": "1000000", "replay_storage": "frames",
    "batch_size": "32", "train_every": "4", "discount": "0.99",
}

if __name__ == "__main__":
    sys.exit(run(AGENT, ENV))
