"""TD3 on a MuJoCo task through EnvPool (default HalfCheetah-v4), with CleanRL's settings.

Setup: Fujimoto et al. 2018, "Addressing function approximation error in actor-critic
methods" (twin critics, target policy smoothing, delayed actor), as the `td3` preset,
run with the settings of CleanRL's `td3_continuous_action_jax.py` (Huang et al. 2022,
"CleanRL: high-quality single-file implementations of deep reinforcement learning
algorithms"; its `Args`, listed below with CleanRL's names), which are passed as
`--set` over the preset's MuJoCo values (`DDPG_MUJOCO` in `jaxrl57/presets.py`, the
paper's Table 3). Where CleanRL differs from the paper:

    setting               CleanRL    paper (preset)
    hidden_sizes          256, 256   400, 300
    learning rates        3e-4       1e-3 (actor and critic)
    batch_size            256        100
    learning_starts       25,000     10,000
    random_steps          25,000     10,000 (HalfCheetah and Ant; 1,000 elsewhere)

The rest is the same in both: replay 10^6, discount 0.99, tau 0.005, exploration noise
N(0, 0.1), target noise 0.2 clipped to 0.5 (in action scales), actor and targets
updated every 2 critic updates, one env, one update per env step, 10^6 steps.

What no setting changes: CleanRL updates once `global_step > learning_starts`, this
agent once replay holds `learning_starts` transitions (one step earlier); CleanRL's
last layers have flax's default initialisation, this agent's start uniform in
+-3e-3 (Lillicrap et al. 2016); CleanRL steps gymnasium's MuJoCo v4 tasks, this
script EnvPool's C++ port of them (float64 observations cast to float32, as CleanRL
does). CleanRL reports its training episodes' returns; the rows here also evaluate
10 episodes of the deterministic policy (`eval_noise` 0).

Expected: a return in the thousands on HalfCheetah-v4 after 10^6 steps (the model card
of a CleanRL TD3 run with these settings, huggingface.co/sdpkjc/HalfCheetah-v4-
td3_continuous_action-seed2, reports 9,383 +- 87); not run here yet: it takes hours of
CPU time (one update of 256-unit networks per env step). `--smoke` runs 1,000
steps (uniform actions for 500, updates from 500) with a 10k replay, 2 rows and one
evaluation episode of 100 steps: it checks that the pipeline runs end to end on a CPU
(about 20 s on 2 cores), not a result.

    python experiments/td3_mujoco.py [--env Hopper-v4] [--smoke] [--steps N] [--out DIR]
        [--set NAME=VALUE ...]
"""

import sys

from jaxrl57.cli import main

AGENT, ENV, STEPS = "td3", "HalfCheetah-v4", 1_000_000  # total_timesteps=1000000
# CleanRL's `Args` (the value in the comment where the name differs).
CLEANRL = {
    "hidden_sizes": "256,256",  # QNetwork and Actor: Dense(256), Dense(256)
    "actor_learning_rate": "0.0003",  # learning_rate=3e-4, one Adam per network
    "critic_learning_rate": "0.0003",
    "replay_capacity": "1000000",  # buffer_size=1e6
    "discount": "0.99",  # gamma
    "tau": "0.005",
    "batch_size": "256",
    "target_noise": "0.2",  # policy_noise, times the action scale
    "target_noise_clip": "0.5",  # noise_clip
    "exploration_noise": "0.1",  # times max_action
    "learning_starts": "25000",
    "random_steps": "25000",  # uniform actions while global_step < learning_starts
    "policy_delay": "2",  # policy_frequency
    "num_envs": "1", "train_every": "1", "updates_per_train": "1",  # one env, one update a step
}
SMOKE = ["--steps", "1000", "--set", "learning_starts=500", "--set", "random_steps=500",
         "--set", "replay_capacity=10000", "--set", "num_rows=2", "--set", "eval_episodes=1",
         "--set", "eval_max_steps=100"]


def argv(extra: list[str]) -> list[str]:
    """The `jaxrl57` command line of this experiment; `extra` is appended, so it wins
    (`--smoke` is replaced by the smoke settings)."""
    smoke = "--smoke" in extra
    extra = [a for a in extra if a != "--smoke"]
    sets = [a for name, value in CLEANRL.items() for a in ("--set", f"{name}={value}")]
    return (["train", AGENT, "--env", ENV, "--steps", str(STEPS)] + sets
            + (SMOKE if smoke else []) + extra)


if __name__ == "__main__":
    sys.exit(main(argv(sys.argv[1:])))
