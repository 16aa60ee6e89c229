"""Nature DQN on an Atari game through EnvPool (default Breakout-v5).

Setup: Mnih et al. 2015, "Human-level control through deep reinforcement learning",
Extended Data Table 1, as the `dqn` preset and the `atari` family of `jaxrl57/presets.py`
(its settings are listed below): Nature CNN,
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

AGENT, ENV = "dqn", "Breakout-v5"
# Mnih et al. 2015, Extended Data Table 1 and Methods; periods in agent steps (4
# frames each), one update every 4 agent steps.
SETTINGS = {
    "torso": "nature_cnn",  # Methods: 32 8x8/4, 64 4x4/2, 64 3x3/1 convolutions, dense 512
    "replay_capacity": "1000000",  # "replay memory size 1,000,000"
    "replay_storage": "frames",  # each 84x84 frame stored once: about 7 GB
    "batch_size": "32",  # "minibatch size 32"
    "optimizer": "rmsprop",  # centered RMSProp (Graves 2013)
    "learning_rate": "0.00025",  # "learning rate 0.00025"
    "rmsprop_decay": "0.95",  # "gradient momentum 0.95", "squared gradient momentum 0.95"
    "optimizer_eps": "9.765625e-06",  # "min squared gradient 0.01", summed loss: 0.01 / 32**2
    "huber_delta": "1",  # Methods: the error term clipped to [-1, 1]
    "max_grad_norm": "inf",  # no gradient clipping
    "discount": "0.99",  # "discount factor 0.99"
    "train_every": "4",  # "update frequency 4"
    "learning_starts": "50000",  # "replay start size 50,000"
    "target_period": "2500",  # "target network update frequency 10,000" agent steps
    "epsilon_start": "1",  # "initial exploration 1"
    "epsilon_end": "0.1",  # "final exploration 0.1"
    "epsilon_decay_steps": "1000000",  # "final exploration frame 1,000,000" (agent steps)
    "eval_epsilon": "0.05",  # Methods: evaluation with epsilon 0.05
}

if __name__ == "__main__":
    sys.exit(run(AGENT, ENV))
