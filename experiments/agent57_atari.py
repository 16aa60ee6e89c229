"""Agent57 on an Atari game through EnvPool (default MontezumaRevenge-v5).

Setup: Badia et al. 2020b, "Agent57: Outperforming the Atari Human Benchmark",
as the `agent57` preset with its `atari` defaults in `jaxrl57/presets.py` (the
settings are listed below): NGU's agent (`experiments/ngu_atari.py`) with
separate extrinsic and intrinsic value networks, each trained by transformed
Retrace on its own reward and combined as h(h^-1(Q_e) + beta_j h^-1(Q_i)); the
discount family gamma_0 0.9999, gamma_1 0.997, gamma_2 0.99 over N = 32
policies; each env's sliding-window UCB bandit (window 90, bonus weight 1,
epsilon 0.5) choosing the policy of each episode from the undiscounted
extrinsic returns, and the evaluator greedy in the arms over the last 3,600
episodes of all envs.

`--smoke` shrinks everything as `experiments/ngu_atari.py --smoke` does.

    python experiments/agent57_atari.py [--smoke] [--env GAME-v5] [--out DIR] [...]
"""

import sys

from _atari import run
from ngu_atari import SMOKE

AGENT, ENV = "agent57", "MontezumaRevenge-v5"
# Badia et al. 2020b, sec. 4, Table 3 and the appendix's hyperparameters.
SETTINGS = {
    "split_values": "true",  # separate extrinsic and intrinsic networks
    "meta_controller": "bandit",  # sliding-window UCB per actor
    "bandit_window": "90", "bandit_beta": "1", "bandit_epsilon": "0.5",  # Table 3
    "evaluator_window": "3600",  # sec. 4: the evaluator's window
    "discount_family": "agent57",
    "discount": "0.9999", "discount_mid": "0.997", "discount_min": "0.99",  # gamma_0..2
    "num_policies": "32", "intrinsic_beta": "0.3", "retrace_lambda": "0.95",
    "memory_capacity": "30000", "num_neighbors": "10", "embedding_size": "32",
    "learning_rate": "0.0001", "target_period": "2500", "batch_size": "64",
    "obs_norm_steps": "51200",  # RND's normaliser warm-up, as ngu_atari.py
}

if __name__ == "__main__":
    sys.exit(run(AGENT, ENV, smoke_args=SMOKE))
