"""Presets as data, in one place: every named agent and every env family's defaults,
each value next to the paper table or section it comes from.

Layers, later ones win (`jaxrl57.configs.resolve` merges them, then the
user's `--set`): the defaults of the environment family (small JAX games,
classic control, Atari with the papers' values), the preset's flags and
hyperparameters, then on Atari the preset's own paper values. Each setting is a
field of the agent family's static config, traced hyperparameters or loop
config, documented there (`jaxrl57 train AGENT --env ENV --list-settings`
prints the merged result). Nothing here runs code: plain dicts.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from jaxrl57.agents.r2d2 import DEFAULT_HPARAMS as R2D2_DEFAULT_HPARAMS

# --- The DQN family ------------------------------------------------------------

# One gradient update every 4 agent steps (Mnih et al. 2015, Extended Data
# Table 1, "update frequency 4"; an agent step is 4 frames): the papers'
# periods, counted in agent steps or frames, become `target_period` updates.
AGENT_STEPS_PER_UPDATE = 4
FRAMES_PER_AGENT_STEP = 4

# Mnih et al. 2015, Extended Data Table 1, and the released Lua code
# (`run_gpu`, `NeuralQLearner.lua`), which dqn_zoo's `dqn/run_atari.py` follows.
NATURE_ATARI_HPARAMS = dict(
    learning_rate=2.5e-4,  # "learning rate 0.00025"
    discount=0.99,  # "discount factor 0.99"
    epsilon_start=1.0,  # "initial exploration 1"
    epsilon_end=0.1,  # "final exploration 0.1"
    # "final exploration frame 1,000,000": agent steps in the code (`ep_endt`;
    # dqn_zoo: 4M frames), annealed from the end of the replay warm-up on
    # (`eGreedy` counts from `learn_start`; dqn_zoo's schedule `begin_t`).
    epsilon_decay_steps=1_000_000,
    epsilon_decay_start=50_000,
    eval_epsilon=0.05,  # Methods, evaluation: epsilon-greedy with epsilon 0.05
    learning_starts=50_000,  # "replay start size 50,000"
    # "target network update frequency 10,000": the table's gloss says parameter
    # updates, but the code copies when `numSteps % target_q == 1`, numSteps
    # counting agent steps, and dqn_zoo copies every 4e4 frames: 10,000 agent
    # steps, 2,500 updates.
    target_period=10_000 / AGENT_STEPS_PER_UPDATE,
    target_tau=1.0,
    huber_delta=1.0,  # Methods: the error term clipped to [-1, 1]
    max_grad_norm=float("inf"),  # no gradient clipping in the paper or the code
    # "min squared gradient 0.01", for gradients of the loss summed over the
    # batch of 32; the loss here is the batch mean (`make_optimizer`, dqn_zoo).
    optimizer_eps=0.01 / 32**2,
    rmsprop_decay=0.95,  # "gradient momentum 0.95", "squared gradient momentum 0.95"
)

DQN_PRESETS: dict[str, tuple[dict[str, Any], dict[str, float]]] = {
    # Mnih et al. 2015, Extended Data Table 1.
    "dqn": (dict(), dict()),
    # van Hasselt et al. 2016, sec. 4 (eq. 4: the online net selects, the target evaluates).
    "double_dqn": (dict(double=True), dict()),
    # Wang et al. 2016, sec. 3 and 4.2: dueling + double.
    "dueling": (dict(double=True, dueling=True), dict()),
    # Schaul et al. 2016, sec. 3.3-3.4 and 4 (proportional): alpha 0.6,
    # beta 0.4 annealed to 1 at the end of learning (`priority_beta_steps` is
    # derived from the run by `jaxrl57.configs.resolve`), double DQN.
    "prioritized": (dict(double=True, prioritized=True), dict(priority_alpha=0.6,
                                                             priority_beta_start=0.4)),
    # Bellemare et al. 2017: 51 atoms on [-10, 10], Adam.
    "c51": (dict(distribution="c51", num_atoms=51, optimizer="adam"), dict()),
    # Dabney et al. 2018a: 200 quantiles, quantile Huber loss with kappa 1, Adam.
    "qr_dqn": (dict(distribution="qr", num_atoms=200, optimizer="adam"), dict()),
    # Dabney et al. 2018b: N = N' = 64 sampled fractions, K = 32 to act, kappa 1.
    "iqn": (dict(distribution="iqn", num_atoms=64, num_act_taus=32, optimizer="adam"), dict()),
    # Hessel et al. 2018, Table 1: C51 + double + dueling + noisy (sigma0 0.5) +
    # 3-step + proportional prioritized replay (alpha 0.5, beta 0.4 -> 1 over the
    # run, the KL loss as priority, sec. 3); no epsilon-greedy ("exploration 0").
    "rainbow": (dict(distribution="c51", num_atoms=51, double=True, dueling=True, noisy=True,
                     noisy_sigma0=0.5, n_step=3, prioritized=True, optimizer="adam"),
                dict(priority_alpha=0.5, priority_beta_start=0.4, epsilon_start=0.0,
                     epsilon_end=0.0)),
    # Horgan et al. 2018, sec. 4.1 and appendix: double + dueling, 3-step,
    # proportional prioritized replay with alpha 0.6 and a FIXED beta 0.4 (no
    # annealing: infinite beta_steps), the epsilon ladder 0.4 ** (1 + 7 i / (N - 1))
    # over the envs.
    "apex": (dict(double=True, dueling=True, n_step=3, prioritized=True, epsilon_ladder=True),
             dict(priority_alpha=0.6, priority_beta_start=0.4,
                  priority_beta_steps=float("inf"), apex_epsilon=0.4, apex_alpha=7.0)),
}

# van Hasselt et al. 2016, "Double DQN (tuned)" (the human-starts evaluation):
# exploration 0.01 during learning and 0.001 in evaluation, target copied every
# 30,000 instead of 10,000 (in Nature's units, agent steps: dqn_zoo's `double_q`
# copies every 1.2e5 frames), so 7,500 updates; the rest as Nature (RMSProp,
# 0.00025, eps 0.01 / 32**2). Its single shared output bias is not modelled.
_TUNED_DOUBLE_DQN = dict(epsilon_end=0.01, eval_epsilon=0.001,
                         target_period=30_000 / AGENT_STEPS_PER_UPDATE)

DQN_ATARI_HPARAMS: dict[str, dict[str, float]] = {
    "dqn": dict(),
    "double_dqn": dict(_TUNED_DOUBLE_DQN),
    # Wang et al. 2016, sec. 4.2: the tuned Double DQN's settings, a "slightly
    # lower" learning rate and gradients clipped to norm 10; the 1/sqrt(2)
    # gradient rescale is in the network (`networks.DuelingHead`). The text
    # gives no figure for the learning rate: 6.25e-5 is the value in use for
    # dueling agents elsewhere (Rainbow's Table 1), not one quoted from Wang et al.
    "dueling": dict(_TUNED_DOUBLE_DQN, learning_rate=6.25e-5, max_grad_norm=10.0),
    # Schaul et al. 2016, sec. 4: the tuned Double DQN's settings with "only a
    # single hyperparameter adjustment", the step size divided by 4. (dqn_zoo's
    # `prioritized` also divides the RMSProp eps by 4**2; the paper does not.)
    "prioritized": dict(_TUNED_DOUBLE_DQN, learning_rate=2.5e-4 / 4),
    # Bellemare et al. 2017, sec. 5: Adam, learning rate 0.00025, eps 0.01 / L
    # with L = 32 the batch (Adam's eps is outside the square root: 0.01 for a
    # summed loss is 0.01 / 32 for this batch-mean one; dqn_zoo's `c51` too);
    # exploration 0.01 and evaluation 0.001 as the tuned Double DQN; target and
    # replay warm-up as Nature (dqn_zoo: 4e4 frames, 5 % of 1M).
    "c51": dict(learning_rate=2.5e-4, optimizer_eps=0.01 / 32, epsilon_end=0.01,
                eval_epsilon=0.001, v_min=-10.0, v_max=10.0),
    # Dabney et al. 2018a, sec. 5: Adam 0.00005 with eps 0.01 / 32, the rest as C51.
    "qr_dqn": dict(learning_rate=5e-5, optimizer_eps=0.01 / 32, epsilon_end=0.01,
                   eval_epsilon=0.001),
    # Dabney et al. 2018b, sec. 5: the optimizer and schedule of QR-DQN.
    "iqn": dict(learning_rate=5e-5, optimizer_eps=0.01 / 32, epsilon_end=0.01,
                eval_epsilon=0.001),
    # Hessel et al. 2018, Table 1: learning starts after 80K frames (20k agent
    # steps), target every 32K frames (8k agent steps: 2,000 updates), Adam
    # 0.0000625 with eps 1.5e-4, exploration 0 (noisy nets); gradients clipped
    # to norm 10 as dqn_zoo's `rainbow`. Beta reaches 1 at the run's end.
    "rainbow": dict(learning_rate=6.25e-5, optimizer_eps=1.5e-4,
                    learning_starts=80_000 / FRAMES_PER_AGENT_STEP,
                    target_period=32_000 / FRAMES_PER_AGENT_STEP / AGENT_STEPS_PER_UPDATE,
                    max_grad_norm=10.0, epsilon_start=0.0, epsilon_end=0.0,
                    eval_epsilon=0.001, v_min=-10.0, v_max=10.0),
    # Horgan et al. 2018, appendix: centered RMSProp (lr 0.00025 / 4, decay
    # 0.95, eps 1.5e-7), gradients clipped to norm 40, target copied every
    # 2500 updates ("training batches"), learning from 50k transitions;
    # evaluation epsilon 0.001 (the other presets' protocol; the paper's
    # evaluation used its actors). The eps is the paper's number as it stands: its
    # TensorFlow learner's loss reduction is not stated, and 1.5e-7 is not a
    # batch-size conversion of Nature's 0.01 (0.01 / 512**2 = 3.8e-8).
    "apex": dict(learning_rate=2.5e-4 / 4, optimizer_eps=1.5e-7, rmsprop_decay=0.95,
                 max_grad_norm=40.0, target_period=2_500, learning_starts=50_000,
                 eval_epsilon=0.001),
}

# Atari settings that fix shapes or the loop, per preset (the rest are
# `DQN_FAMILY_DEFAULTS["atari"]`). Ape-X learns on batches of 512 and its
# learner consumed about 0.8 sampled transitions per transition generated
# (19 batches/s against ~12.5k agent steps/s, Horgan et al. 2018, sec. 4.1):
# 64 envs with one update every 10 batch steps give 512 / 640 = 0.8.
DQN_ATARI_STATIC: dict[str, dict[str, Any]] = {
    # Horgan et al. 2018, appendix: the replay is soft-limited to 2 million
    # transitions (2M 84x84 frames with the frame replay).
    "apex": dict(batch_size=512, replay_capacity=2_000_000, optimizer="rmsprop"),
}
DQN_ATARI_RUN: dict[str, dict[str, Any]] = {
    "apex": dict(num_envs=64, train_every=10, updates_per_train=1),
}


# --- The R2D2 family -----------------------------------------------------------
R2D2_PRESETS: dict[str, tuple[dict[str, Any], dict[str, float]]] = {
    # Kapturowski et al. 2019: LSTM 512 after the convolutions, dueling head 512.
    "r2d2": (dict(), dict()),
    # The network of the Space-Invaders question: convolutions per frame, then a
    # ConvLSTM (64 channels, 3x3), then a dense layer, trained as R2D2.
    "drqn": (dict(conv_lstm_features=64), dict()),
}

# Atari: the paper's values (Kapturowski et al. 2019, Table 2), in acme's layout
# (acme/agents/jax/r2d2: burn_in_length 40, trace_length 80, sequence_period 40,
# stored sequences of burn_in + trace_length + 1 = 121 steps):
#   "Sequence length m: 80 (+ prefix of l = 40 in burn-in experiments)" -> 40 burn-in
#     steps, then 80 steps that carry the loss;
#   sec. 2.3: "fixed-length (m = 80) sequences ... with adjacent sequences
#     overlapping each other by 40 time steps" -> a new sequence every 40 steps;
#   "Replay buffer size: 4 x 10^6 observations (10^5 part-overlapping sequences)".
# replay_capacity counts sequences. Each holds its 121 observations in full
# (3.4 MB of uint8 frame stacks), so the paper's 10^5 would take 342 GB: the
# default keeps 2,500 sequences (8.5 GB): with a new one every 40 steps they
# span the last 100k agent steps of the E actors, 1/40 of the paper's replay.
R2D2_ATARI_STATIC = dict(torso="nature_cnn", core_size=512, head_hidden=(512,), burn_in=40,
                    trace_length=80, period=40, n_step=5, batch_size=64,
                    replay_capacity=2_500)
R2D2_ATARI_HPARAMS: dict[str, float] = dict(R2D2_DEFAULT_HPARAMS, learning_starts=1_000)
# Atari training episodes (sec. 2.3): "we ... disabled the loss-of-life-as-episode-end
# heuristic that has been used in Atari agents in some of the work since (Mnih et
# al., 2015)", and the rewards are not clipped: the value rescaling h of Pohlen et
# al. 2018 (sec. 2.3) takes their place, as in acme's R2D2 (`clip_rewards=False`).
R2D2_ATARI_TRAIN_ENV: dict[str, Any] = dict(episodic_life=False, reward_clip=False)


# --- Env families ---------------------------------------------------------------

# Per-family defaults: (static agent config, traced hparams, loop config).
DQN_FAMILY_DEFAULTS: dict[str, tuple[dict, dict, dict]] = {
    # CartPole-v1 within a 20 s budget on a 2-core CPU, with `--sweep` and
    # `--seeds`. The learning rate anneals to 5 % over the run so late updates
    # move the greedy policy less; the squared loss (huber_delta 100, as CleanRL
    # and PureJaxRL use here) learned more reliably than Huber-1 with frequent
    # target copies. 10-step returns (Sutton & Barto 2018, sec. 7.1; n-step DQN as
    # in Hessel et al. 2018, sec. 3) with discount 0.995: with one-step returns
    # the values only reach as many steps as the target has moved (about 270
    # copies here), and with discount 0.99 a drift of the cart that ends the
    # episode 300 steps later costs 5 % of a value, which the greedy policy does
    # not see. Ten steps per backup let the values reach the discounted fixed
    # point within the run, and 0.995 weighs a failure 300 steps ahead at 22 %.
    # What still fails, and everything tried, is in docs/results.md.
    "cartpole": (
        dict(hidden_sizes=(64, 64), replay_capacity=50_000, batch_size=64, n_step=10),
        dict(learning_rate=2.3e-3, lr_final_fraction=0.05, epsilon_decay_steps=8_000,
             huber_delta=100.0, epsilon_end=0.04, learning_starts=1_000, target_period=128,
             discount=0.995,
             v_min=0.0, v_max=200.0),  # C51 support: returns of 1 per step, at most 1/(1-0.995)
        dict(total_steps=70_000, num_envs=8, train_every=1, updates_per_train=4, num_rows=10,
             eval_episodes=10),
    ),
    "classic": (
        dict(hidden_sizes=(128, 128), replay_capacity=50_000, batch_size=64),
        dict(learning_rate=1e-3, epsilon_decay_steps=20_000, learning_starts=1_000,
             target_period=200),
        dict(total_steps=100_000, num_envs=8, updates_per_train=2, num_rows=20),
    ),
    "catch": (
        dict(hidden_sizes=(64, 64), replay_capacity=10_000, batch_size=32),
        dict(learning_rate=1e-3, lr_final_fraction=0.05, epsilon_decay_steps=5_000,
             learning_starts=500, target_period=100, discount=0.99, v_min=-1.0, v_max=1.0),
        # Two updates per 8 env steps (10k over the run): with one, some seeds
        # stalled with a few ball columns never learned.
        dict(total_steps=40_000, num_envs=8, updates_per_train=2, num_rows=10,
             eval_episodes=100),
    ),
    "cave": (
        dict(torso="small_cnn", replay_capacity=50_000, batch_size=32),
        dict(learning_rate=2.5e-4, epsilon_decay_steps=50_000, learning_starts=5_000,
             target_period=1_000),
        dict(total_steps=200_000, num_envs=8, updates_per_train=2, num_rows=20,
             eval_episodes=8),
    ),
    # Mnih et al. 2015: batch 32, replay 1M, one update every 4 agent steps,
    # centered RMSProp; epsilon and replay start counted in agent steps. The
    # replay keeps each frame once (about 7 GB for 1M steps; whole transitions
    # would take 56 GB).
    "atari": (
        dict(torso="nature_cnn", replay_capacity=1_000_000, batch_size=32, optimizer="rmsprop",
             replay_storage="frames"),
        dict(NATURE_ATARI_HPARAMS),
        dict(total_steps=10_000_000, num_envs=1, train_every=4, updates_per_train=1,
             num_rows=200, eval_episodes=10),
    ),
}

DQN_FAMILY_DEFAULTS["memory"] = DQN_FAMILY_DEFAULTS["catch"]

# R2D2 on the small tasks: short sequences, small LSTM (the Atari values are the
# paper's, `R2D2_ATARI_*`).
_R2D2_SMALL = (
    dict(torso="mlp", hidden_sizes=(64,), core_size=64, head_hidden=(64,), burn_in=5,
         trace_length=14, period=10, n_step=3, batch_size=32, replay_capacity=2_000),
    dict(learning_rate=1e-3, discount=0.99, target_period=100, learning_starts=64,
         max_grad_norm=10.0),
    dict(num_envs=8, train_every=4, updates_per_train=1, num_rows=10, eval_episodes=10),
)
R2D2_FAMILY_DEFAULTS: dict[str, tuple[dict, dict, dict]] = {
    "cartpole": (_R2D2_SMALL[0], _R2D2_SMALL[1], dict(_R2D2_SMALL[2], total_steps=100_000)),
    "memory": (_R2D2_SMALL[0], _R2D2_SMALL[1], dict(_R2D2_SMALL[2], total_steps=40_000,
                                                     eval_episodes=100)),
    "catch": (_R2D2_SMALL[0], _R2D2_SMALL[1], dict(_R2D2_SMALL[2], total_steps=40_000,
                                                    eval_episodes=100)),
    "classic": _R2D2_SMALL,
    "cave": (dict(_R2D2_SMALL[0], torso="small_cnn"), _R2D2_SMALL[1], _R2D2_SMALL[2]),
    "atari": (R2D2_ATARI_STATIC, R2D2_ATARI_HPARAMS,
              dict(total_steps=10_000_000, num_envs=8, train_every=4, updates_per_train=1,
                   num_rows=200, eval_episodes=10)),
    # NGU's KeyDoor rate (one update per env batch), so that an ablation of NGU's
    # rewards against R2D2 differs in the reward alone.
    "keydoor": (_R2D2_SMALL[0], _R2D2_SMALL[1], dict(_R2D2_SMALL[2], total_steps=200_000,
                                                      train_every=1)),
}

# --- NGU ---------------------------------------------------------------------------
NGU_PRESETS: dict[str, tuple[dict[str, Any], dict[str, float]]] = {
    # Badia et al. 2020a: the values of Table 6 are `agents.ngu`'s defaults.
    "ngu": (dict(), dict()),
    # Badia et al. 2020b, sec. 4: separate extrinsic and intrinsic values, a
    # sliding-window UCB per actor choosing the policy of each episode (window
    # 90, beta 1, epsilon 0.5 in its Table 3; the evaluator greedy in the arms
    # over 3,600 episodes), and its discount family gamma_0 0.9999, gamma_1 0.997,
    # gamma_2 0.99 (appendix).
    "agent57": (dict(split_values=True, meta_controller="bandit", discount_family="agent57"),
                dict(discount=0.9999, discount_mid=0.997, discount_min=0.99)),
}
# The small tasks: R2D2's small network and sequences, 16 policies (Agent57's
# discount family needs 10 or more), an episodic memory as long as the longest
# small episode, smaller embedding and RND outputs, and a warm-up of RND's
# normaliser as short as R2D2's replay start (64 sequences of 10 new steps).
_NGU_SMALL = (
    dict(_R2D2_SMALL[0], num_policies=16, memory_capacity=1_000, intrinsic_hidden=(64,),
         rnd_output_size=64),
    dict({k: v for k, v in _R2D2_SMALL[1].items() if k != "discount"},
         intrinsic_learning_rate=1e-3, novelty_window=5_000, obs_norm_steps=640),
    _R2D2_SMALL[2],
)
_NGU_SMALL[0].pop("n_step")
# Atari: R2D2's network and sequence layout (`R2D2_ATARI_*`, which NGU builds on),
# with NGU's Table 6 for the rest (`agents.ngu` defaults): the embedding and RND
# networks on the Nature-CNN convolutions and dense layer.
_NGU_ATARI_STATIC = {k: v for k, v in R2D2_ATARI_STATIC.items() if k != "n_step"}
NGU_FAMILY_DEFAULTS: dict[str, tuple[dict, dict, dict]] = {
    "atari": (dict(_NGU_ATARI_STATIC, intrinsic_torso="nature_cnn"),
              {k: v for k, v in R2D2_ATARI_HPARAMS.items() if k != "discount"},
              R2D2_FAMILY_DEFAULTS["atari"][2]),
    "classic": _NGU_SMALL,
    # One update per env batch, 4 times R2D2's small rate: the intrinsic reward
    # moves as RND learns, and the values have to keep up with it. DeepSea's
    # observations are one-hot cells: at the small tasks' 1e-3 RND's predictor
    # learns a cell from one or two visits, so its modulator only tells a cell
    # never seen from one seen; a slower predictor keeps a count-like decay
    # (below Table 6's 5e-4, which the embedding shares).
    "deepsea": (_NGU_SMALL[0], dict(_NGU_SMALL[1], intrinsic_learning_rate=2e-4),
                dict(_NGU_SMALL[2], total_steps=100_000, train_every=1)),
    # DeepSea's update rate; the small memory (1,000 embeddings) holds a whole
    # episode (2 size^2 steps) up to size 22.
    "keydoor": (_NGU_SMALL[0], _NGU_SMALL[1], dict(_NGU_SMALL[2], total_steps=200_000,
                                                    train_every=1)),
}


# EnvPool settings of an agent family's Atari TRAINING envs (evaluation always
# plays the whole game with unclipped rewards, `envs.envpool_env`); --env-arg
# overrides them.
ATARI_TRAIN_ENV: dict[str, dict[str, Any]] = {
    # Mnih et al. 2015, Methods: "we clipped all positive rewards at 1 and all
    # negative rewards at -1", and "the number of lives left in the game ... is
    # then used to mark the end of an episode during training".
    "dqn": dict(episodic_life=True, reward_clip=True),
    "r2d2": R2D2_ATARI_TRAIN_ENV,
    # NGU and Agent57 train as R2D2 does (Badia et al. 2020a, b build on its setup).
    "ngu": R2D2_ATARI_TRAIN_ENV,
}


# The quantile presets' Atari sizes (200 quantiles; 64 x 64 IQN samples) make
# the pairwise quantile loss the whole cost of a small task's update (the
# default CartPole run took minutes; docs/results.md); these keep the method,
# not the size.
SMALL_TASK_PRESET_STATIC: dict[str, dict[str, Any]] = {
    "qr_dqn": dict(num_atoms=32),
    "iqn": dict(num_atoms=16, num_act_taus=8),
}


# --- DDPG and TD3 --------------------------------------------------------------

# The methods: what makes TD3 TD3 (Fujimoto et al. 2018, Algorithm 1) against
# DDPG (Lillicrap et al. 2016, Algorithm 1). Sizes and step sizes come from the
# env family below (small tasks) or from each paper (MuJoCo).
DDPG_PRESETS: dict[str, tuple[dict[str, Any], dict[str, float]]] = {
    # Sec. 7: "an Ornstein-Uhlenbeck process ... with theta = 0.15 and sigma = 0.2".
    "ddpg": (dict(num_critics=1, exploration="ou"),
             dict(exploration_noise=0.2, ou_theta=0.15, target_noise=0.0, policy_delay=1)),
    # Sec. 4.2 clipped double Q (two critics), sec. 5.3 target policy smoothing,
    # sec. 5.2 delayed updates; their values from the setup of sec. 6.1: target
    # noise N(0, 0.2) "clipped to (-0.5, 0.5)", "d = 2", exploration "N(0, 0.1)".
    "td3": (dict(num_critics=2, exploration="gaussian"),
            dict(exploration_noise=0.1, target_noise=0.2, target_noise_clip=0.5,
                 policy_delay=2)),
}

# The papers' MuJoCo values, per preset.
DDPG_MUJOCO: dict[str, tuple[dict[str, Any], dict[str, float]]] = {
    # Lillicrap et al. 2016, sec. 7: Adam, "learning rates of 10^-4 and 10^-3 for
    # the actor and critic", "L2 weight decay of 10^-2" on Q, "discount factor
    # gamma = 0.99", "tau = 0.001", "400 and 300 units", "minibatch sizes of
    # 64", "replay buffer size of 10^6".
    "ddpg": (dict(hidden_sizes=(400, 300), batch_size=64, replay_capacity=1_000_000),
             dict(actor_learning_rate=1e-4, critic_learning_rate=1e-3,
                  critic_weight_decay=1e-2, discount=0.99, tau=0.001, random_steps=0,
                  learning_starts=64)),
    # Fujimoto et al. 2018, Table 3 and sec. 6.1: Adam 10^-3 for both, "400 and
    # 300", mini-batch 100, tau 0.005, replay 10^6, "a purely exploratory policy
    # for the first 10000 time steps" (of HalfCheetah and Ant; 1000 elsewhere:
    # one value here, the HalfCheetah one; `--set random_steps=1000
    # learning_starts=1000` for Hopper or Walker2d as in the paper). The networks
    # have no batch normalisation (Lillicrap et al. use it on low-dimensional
    # inputs; Fujimoto et al.'s DDPG re-run does not) and flax's default hidden
    # initialisation, not U(+-1/sqrt(fan_in)).
    "td3": (dict(hidden_sizes=(400, 300), batch_size=100, replay_capacity=1_000_000),
            dict(actor_learning_rate=1e-3, critic_learning_rate=1e-3,
                 critic_weight_decay=0.0, discount=0.99, tau=0.005, random_steps=10_000,
                 learning_starts=10_000)),
}
DDPG_MUJOCO_RUN = dict(total_steps=1_000_000, num_envs=1, train_every=1, updates_per_train=1,
                       num_rows=100, eval_episodes=10)

# Small tasks: Pendulum-v1 (200-step episodes, torque in [-2, 2]) within a
# minute on a 2-core CPU (docs/results.md).
DDPG_FAMILY_DEFAULTS: dict[str, tuple[dict, dict, dict]] = {
    "pendulum": (
        dict(hidden_sizes=(128, 128), batch_size=128, replay_capacity=50_000),
        dict(actor_learning_rate=1e-3, critic_learning_rate=1e-3, tau=0.005,
             learning_starts=1_000, random_steps=1_000),
        dict(total_steps=15_000, num_envs=4, train_every=1, updates_per_train=4, num_rows=10,
             eval_episodes=100),
    ),
}
DDPG_FAMILY_DEFAULTS["classic"] = DDPG_FAMILY_DEFAULTS["pendulum"]
DDPG_FAMILY_DEFAULTS["mujoco"] = ({}, {}, DDPG_MUJOCO_RUN)


# --- RDPG (recurrent DDPG) -------------------------------------------------------

# Heess et al. 2015, Algorithm 1: DDPG with a recurrent actor and critic, so the
# method is DDPG's (one critic, Ornstein-Uhlenbeck noise as Lillicrap et al. 2016,
# sec. 7); --set num_critics=2 etc. adds TD3's parts.
RDPG_PRESETS: dict[str, tuple[dict[str, Any], dict[str, float]]] = {
    "rdpg": (dict(num_critics=1, exploration="ou"),
             dict(exploration_noise=0.2, ou_theta=0.15, target_noise=0.0, policy_delay=1)),
}

# Small tasks: (Masked)Pendulum-v1 with the DDPG pendulum family's budget (15k env
# steps, 4 envs, 4 updates per step of the envs), step sizes, tau and random steps.
# The rest is ours, chosen on MaskedPendulum for a 4-seed run of minutes on a
# 2-core CPU (the paper unrolls whole episodes and gives no sizes for this task):
# an LSTM of 32 between a 64-unit layer and a 64x64 head (the loop over time is
# the cost, so the core is small and the layers around it are not); sequences of
# 4 burn-in + 8 trained + 1 bootstrap steps every 4 steps (the velocity needs two
# observations, and every step of a sequence is a step of that loop); 16
# sequences per update, so each env step replays 4 x 16 x 8 / 4 = 128
# transitions, as DDPG's 4 x 128 / 4; replay holds the whole run.
RDPG_FAMILY_DEFAULTS: dict[str, tuple[dict, dict, dict]] = {
    "pendulum": (
        dict(hidden_sizes=(64,), core_size=32, head_hidden=(64, 64), burn_in=4,
             trace_length=8, period=4, batch_size=16, replay_capacity=4_000),
        dict(actor_learning_rate=1e-3, critic_learning_rate=1e-3, tau=0.005,
             learning_starts=32, random_steps=1_000),
        dict(total_steps=15_000, num_envs=4, train_every=1, updates_per_train=4, num_rows=10,
             eval_episodes=100),
    ),
}
RDPG_FAMILY_DEFAULTS["classic"] = RDPG_FAMILY_DEFAULTS["pendulum"]


# --- The index ------------------------------------------------------------------


class Preset(NamedTuple):
    """A named agent: its family (`jaxrl57.agents.FAMILIES`), the static config
    fields and the traced hyperparameters it sets."""

    family: str
    static: dict[str, Any]
    hparams: dict[str, float]


PRESETS: dict[str, Preset] = {
    **{name: Preset("dqn", *values) for name, values in DQN_PRESETS.items()},
    **{name: Preset("r2d2", *values) for name, values in R2D2_PRESETS.items()},
    **{name: Preset("ngu", *values) for name, values in NGU_PRESETS.items()},
    **{name: Preset("ddpg", *values) for name, values in DDPG_PRESETS.items()},
    **{name: Preset("rdpg", *values) for name, values in RDPG_PRESETS.items()},
}
AGENTS = tuple(PRESETS)
