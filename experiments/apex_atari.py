"""Ape-X on an Atari game through EnvPool (default Breakout-v5).

Setup: Horgan et al. 2018, "Distributed Prioritized Experience Replay", sec. 4.1 and
appendix, as the `apex` preset with the `atari` family of `jaxrl57/presets.py` (the
settings are listed below): dueling double DQN on the Nature CNN, 3-step returns,
proportional prioritized replay (alpha 0.6, fixed beta 0.4; new transitions at the
largest priority, |TD| written back by the learner), centered RMSProp (lr 0.00025 / 4,
eps 1.5e-7), gradient norm clipped to 40, target copied every 2500 updates, batch 512,
replay 2M (about 14 GB), discount 0.99. The paper's 360 actors become the 64 envs of one EnvPool
batch, each with its own fixed epsilon 0.4 ** (1 + 7 i / 63); one update of 512 every
10 batch steps (640 transitions) keeps the paper's ~0.8 sampled transitions per
generated one.

Expected: the paper's median human-normalized score is 434 % after 22.8B frames on
360 actors; a single machine sees a small fraction of that. `--smoke` runs 2000 agent
steps with a 10k replay, learning from step 500, 2 rows and one evaluation episode: it
only checks that the pipeline runs end to end on CPU (score near random).

    python experiments/apex_atari.py [--env Pong-v5] [--smoke] [--steps N] [--out DIR]
"""

import sys

from _atari import run

AGENT, ENV = "apex", "Breakout-v5"
# Horgan et al. 2018, sec. 4.1 and appendix.
SETTINGS = {
    "torso": "nature_cnn", "dueling": "true", "double": "true",
    "n_step": "3",  # "multi-step bootstrap targets (n = 3)"
    "prioritized": "true", "priority_alpha": "0.6",
    "priority_beta_start": "0.4", "priority_beta_steps": "inf",  # beta fixed at 0.4
    "optimizer": "rmsprop",  # centered RMSProp
    "learning_rate": "6.25e-05",  # "learning rate 0.00025 / 4"
    "optimizer_eps": "1.5e-07",
    "max_grad_norm": "40",  # "gradient norms clipped to 40"
    "target_period": "2500",  # "target network ... updated every 2500 training batches"
    "batch_size": "512",
    "replay_capacity": "2000000", "replay_storage": "frames",  # "2 million transitions"
    "epsilon_ladder": "true", "apex_epsilon": "0.4", "apex_alpha": "7",
    "num_envs": "64",  # the 360 actors become one EnvPool batch of 64 envs
    "train_every": "10",  # 512 sampled per 640 generated: about the paper's ratio
    "discount": "0.99",
}

if __name__ == "__main__":
    sys.exit(run(AGENT, ENV))
