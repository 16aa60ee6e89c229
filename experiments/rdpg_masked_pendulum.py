"""RDPG on MaskedPendulum-v1 written in JAX: a swing-up whose angular velocity is hidden.

Setup: preset `rdpg` (Heess et al. 2015, "Memory-based control with recurrent neural
networks", Algorithm 1: DDPG whose actor mu(h_t) and critic Q(h_t, a_t) are LSTMs over
the history of observations and actions) on `jax:MaskedPendulum-v1` (gymnasium's
Pendulum-v1 dynamics and reward, 200-step episodes, observation (cos theta, sin theta)
only), with the pendulum family defaults of `jaxrl57/presets.py`, listed below. Heess et
al. unroll whole stored episodes; here replay holds sequences of 4 burn-in + 8 trained +
1 bootstrap steps with the recurrent states stored at their start (R2D2's layout). The
budget, step sizes, tau and exploration are those of `ddpg` on the same family; the
sizes and the sequence layout were chosen for this task on a 2-core CPU. The whole run
is one compiled `lax.scan`.

Expected: on every one of 4 seeds a final greedy eval return far above what `ddpg`
reaches on MaskedPendulum with the same budget (a memoryless policy cannot know the
velocity), and near what `ddpg` reaches on the full Pendulum-v1 (about -150);
`benchmarks/rdpg_masked_pendulum.py` runs the three side by side. `--smoke` runs 600
env steps of 2 envs with a tiny network and 2 evaluation episodes of 50 steps: a check
that the pipeline runs, not a result.

    python experiments/rdpg_masked_pendulum.py [--smoke] [--steps N] [--seeds K] [--out DIR]
                                               [--set NAME=VALUE ...]
"""

import sys

from jaxrl57.cli import main

AGENT, ENV = "rdpg", "jax:MaskedPendulum-v1"
SETTINGS = {
    "hidden_sizes": "64",  # a ReLU layer on each observation before the LSTM
    "core_size": "32",  # LSTM units, actor and critic each their own
    "head_hidden": "64,64",  # after the LSTM (the critic's head takes the action too)
    "burn_in": "4", "trace_length": "8",  # 4 steps warm the stored state, 8 carry the loss
    "period": "4",  # a new sequence every 4 steps of each env
    "batch_size": "16", "replay_capacity": "4000",  # sequences
    "num_critics": "1", "exploration": "ou",  # DDPG's: one critic, OU noise
    "exploration_noise": "0.2", "ou_theta": "0.15",  # Lillicrap et al. 2016, sec. 7
    "actor_learning_rate": "0.001", "critic_learning_rate": "0.001", "tau": "0.005",
    "discount": "0.99", "learning_starts": "32", "random_steps": "1000",
    "total_steps": "15000", "num_envs": "4", "updates_per_train": "4",
    "eval_episodes": "100",
}
# The defaults hold these (tests/test_rdpg_agent.py); listed here to be read.
ARGS = ["train", AGENT, "--env", ENV]
SMOKE = ["--steps", "600", "--set", "num_envs=2", "--set", "core_size=8",
         "--set", "head_hidden=8", "--set", "hidden_sizes=8", "--set", "learning_starts=4",
         "--set", "random_steps=100", "--set", "num_rows=2", "--set", "eval_episodes=2",
         "--set", "eval_max_steps=50"]

if __name__ == "__main__":
    extra = [a for a in sys.argv[1:] if a != "--smoke"]
    smoke = SMOKE if "--smoke" in sys.argv[1:] else []
    sys.exit(main(ARGS + smoke + extra))  # extra args are appended, so they win
