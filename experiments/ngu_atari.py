"""NGU on an Atari game through EnvPool (default MontezumaRevenge-v5).

Setup: Badia et al. 2020a, "Never Give Up: Learning Directed Exploration
Strategies", on R2D2's (Kapturowski et al. 2019) as the `ngu` preset with its
`atari` defaults in `jaxrl57/presets.py` (the settings are listed below): R2D2's
network and sequences (Nature-CNN convolutions, LSTM 512, dueling head 512, 40
burn-in and 80 trained steps every 40, value rescaling h), fed also with the
previous intrinsic reward and the policy index one-hot; N = 32 policies (beta_j
up to 0.3, gamma_j from 0.997 to 0.99), each env drawing one per episode;
transformed Retrace (lambda 0.95); the episodic memory of 30,000 embeddings of
size 32 per env (k = 10 neighbours, kernel epsilon 1e-4, cluster distance
0.008, c 1e-3, maximum similarity 8) and RND's lifelong modulator clipped to
[1, 5]; the embedding (inverse dynamics) and RND's predictor trained with Adam
at 5e-4. Whole games, unclipped rewards, no lost-life episode ends, as R2D2.

`--smoke` shrinks everything (4 envs, sequences of 20 with burn-in 5, batch 4,
replay of 64 sequences, memories of 1,000, a warm-up of 200 random steps,
1,200 env steps, one evaluation episode of at most 300 steps) to check that the
pipeline runs end to end on a CPU; the score is that of a random policy.

    python experiments/ngu_atari.py [--smoke] [--env GAME-v5] [--out DIR] [...]
"""

import sys

from _atari import run

SMOKE = ["--steps", "1200", "--set", "num_envs=4", "--set", "trace_length=14", "--set", "burn_in=5",
         "--set", "period=10", "--set", "batch_size=4", "--set", "replay_capacity=64",
         "--set", "memory_capacity=1000", "--set", "learning_starts=8",
         "--set", "obs_norm_steps=200", "--set", "num_rows=2",
         "--set", "eval_episodes=1", "--set", "eval_max_steps=300"]

AGENT, ENV = "ngu", "MontezumaRevenge-v5"
# Badia et al. 2020a, Table 6, on Kapturowski et al. 2019, Table 2.
SETTINGS = {
    "torso": "nature_cnn", "core_size": "512", "dueling": "true", "head_hidden": "512",
    "burn_in": "40", "trace_length": "80", "period": "40",  # R2D2's sequences
    "num_policies": "32",  # N, the size of the policy family
    "intrinsic_beta": "0.3",  # the largest beta_j
    "discount": "0.997", "discount_min": "0.99",  # gamma_max, gamma_min of the family
    "retrace_lambda": "0.95",
    "memory_capacity": "30000", "num_neighbors": "10",  # episodic memory, k
    "embedding_size": "32", "rnd_output_size": "128",
    "kernel_epsilon": "0.0001", "cluster_distance": "0.008", "pseudo_count": "0.001",
    "max_similarity": "8", "max_modulator": "5",  # Algorithm 1's constants and L
    "intrinsic_learning_rate": "0.0005",  # embedding and RND Adam step size
    # RND's normaliser warm-up (Burda et al. 2019, sec. 2.4; its code's 128 x 50
    # random steps in each env), 8 envs:
    "obs_norm_steps": "51200",
    "learning_rate": "0.0001", "optimizer_eps": "0.001", "target_period": "2500",
    "batch_size": "64", "replay_capacity": "2500",  # sequences (R2D2's replay, scaled)
}

if __name__ == "__main__":
    sys.exit(run(AGENT, ENV, smoke_args=SMOKE))
