"""R2D2 on an Atari game through EnvPool (default MsPacman-v5); `--drqn` for the
ConvLSTM network on SpaceInvaders-v5.

Setup: Kapturowski et al. 2019, "Recurrent Experience Replay in Distributed
Reinforcement Learning", Table 2, as the `r2d2` preset with its `atari` defaults in
`jaxrl57/presets.py` (the settings are listed below): Nature-CNN convolutions, LSTM 512
fed with the previous action (one-hot) and reward, dueling head 512; 80 trained steps
after a 40-step burn-in (121 stored steps with the bootstrap step), a new sequence every
40 steps, stored recurrent state; 5-step double Q-learning with value rescaling h (eps
1e-3), discount 0.997; priorities eta 0.9, exponent 0.9, importance sampling 0.6; Adam
lr 1e-4, eps 1e-3; target copy every 2,500 updates; batch 64 sequences; Ape-X epsilons
0.4 ** (1 + 7 i / (E - 1)) over the E envs; EnvPool's Atari preprocessing (84x84 gray, 4
frames, action repeat 4); whole games with unclipped rewards in training as in
evaluation (sec. 2.3: no lost-life episode ends; value rescaling instead of clipping).
The paper trains 256 actors for days on a GPU; the replay here holds 2,500 sequences
(8.5 GB; the paper's 10^5 sequences of full frame stacks would take 342 GB).

`--smoke` shrinks everything (4 envs, sequences of 20 with burn-in 5, batch 4, replay of
64 sequences, 1,200 env steps, one evaluation episode of at most 300 steps) to check
that the pipeline runs end to end on a CPU; the score is that of a random policy.

    python experiments/r2d2_atari.py [--smoke] [--drqn] [--env GAME-v5] [--out DIR] [...]
"""

import sys

from _atari import run

SMOKE = ["--steps", "1200", "--set", "num_envs=4", "--set", "trace_length=14", "--set", "burn_in=5",
         "--set", "period=10", "--set", "batch_size=4", "--set", "replay_capacity=64",
         "--set", "learning_starts=8", "--set", "num_rows=2", "--set", "eval_episodes=1",
         "--set", "eval_max_steps=300"]

AGENT, ENV = "r2d2", "MsPacman-v5"
# Kapturowski et al. 2019, Table 2 and sec. 2.3 (acme's sequence layout).
SETTINGS = {
    "torso": "nature_cnn", "core_size": "512",  # "LSTM 512" after the convolutions
    "dueling": "true", "head_hidden": "512",
    "burn_in": "40", "trace_length": "80",  # "Sequence length m: 80 (+ prefix l = 40)"
    "period": "40",  # adjacent sequences overlap by 40 steps
    "n_step": "5",  # "N-step return: 5"
    "discount": "0.997",  # "Discount gamma: 0.997"
    "rescale_eps": "0.001",  # "Value function rescaling: h(x) = ... + eps x, eps = 10^-3"
    "priority_eta": "0.9",  # eta, the mix of max and mean |TD| in a sequence's priority
    "priority_alpha": "0.9",  # "Priority exponent: 0.9"
    "priority_beta": "0.6",  # "Importance sampling exponent: 0.6"
    "learning_rate": "0.0001", "optimizer_eps": "0.001",  # "Adam ... 10^-4, eps 10^-3"
    "target_period": "2500",  # "Target network update period: 2500 updates"
    "batch_size": "64",  # "Minibatch size: 64"
    "epsilon": "0.4", "epsilon_alpha": "7",  # Ape-X epsilons over the envs
    "replay_capacity": "2500",  # sequences (the paper's 10^5 would take 342 GB)
}

if __name__ == "__main__":
    drqn = "--drqn" in sys.argv
    sys.argv = [a for a in sys.argv if a != "--drqn"]
    if drqn:  # the same settings with the ConvLSTM network (conv_lstm_features 64)
        sys.exit(run("drqn", "SpaceInvaders-v5", smoke_args=SMOKE))
    sys.exit(run(AGENT, ENV, smoke_args=SMOKE))
