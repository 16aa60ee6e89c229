"""DQN with a small CNN on Catch 16x16 written in JAX.

Setup: preset `dqn` on `jax:Catch` at size 16 (the ball-catching game of the Keras DQN
article and of bsuite, Osband et al. 2020), with the catch family defaults of
`jaxrl57/configs.py` (Adam 1e-3, batch 32, replay 10k, learning starts at 500, target
copy every 100 updates, 8 envs, 20k env steps, 100 eval episodes) and `torso=small_cnn`.

The command line cannot set the grid size (`JaxDriver` calls `envs.make_env(env_id)`
with no keyword arguments and env ids carry no parameters), so this script uses the
library API directly: `configs.resolve` -> `envs.make_env("jax:Catch", size=16)` ->
`make_dqn` -> `make_train`, all members (seeds) trained in one `jit(vmap(train))`.

Expected: final greedy eval return near +1 (optimal); a random policy scores
2/16 - 1 = -0.875. Episodes last 15 steps, so 20k steps are ~1.3k episodes per member;
raise `--steps` if it has not converged.

    python experiments/catch_cnn.py [--steps N] [--seed S] [--seeds K] [--out DIR]
                                    [--set NAME=VALUE ...]
"""

import argparse
import json
import os
import time

import jax
import numpy as np

from jaxrl57 import configs, envs
from jaxrl57.agents.dqn import make_dqn
from jaxrl57.runners.driver import stack_hparams
from jaxrl57.runners.on_device import make_train

SIZE = 16

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=None, help="env steps per member")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--seeds", type=int, default=1, help="train seeds seed..seed+K-1")
parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
parser.add_argument("--out", default=None, help="folder for summary.json (optional)")
args = parser.parse_args()

overrides = {"torso": "small_cnn"}
overrides.update(dict(s.split("=", 1) for s in args.set))
settings = configs.resolve("dqn", "jax:Catch", overrides, steps=args.steps)
env = envs.make_env("jax:Catch", size=SIZE)
agent = make_dqn(settings.agent_config, env.spec, settings.run_config.num_envs)
train = make_train(agent, env, settings.run_config)

seeds = [args.seed + i for i in range(args.seeds)]
keys = np.stack([np.asarray(jax.random.PRNGKey(s)) for s in seeds])
hparams = stack_hparams([settings.hparams] * len(seeds))

t0 = time.perf_counter()
_, rows = jax.block_until_ready(jax.jit(jax.vmap(train))(keys, hparams))
wall = time.perf_counter() - t0

evals = np.asarray(rows["eval_return"])  # [K, num_rows]
for s, curve in zip(seeds, evals, strict=True):
    print(f"seed {s}: eval return by row {np.round(curve, 3).tolist()}")
final = float(np.mean(evals[:, -1]))
steps = settings.run_config.num_rows * settings.run_config.steps_per_row
print(f"final eval return {final:.4g} (Catch {SIZE}x{SIZE}, small_cnn, {len(seeds)} seed(s), "
      f"{steps} env steps each, {wall:.1f} s incl. compilation)")
if args.out:
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump({"env": f"jax:Catch size={SIZE}", "torso": "small_cnn", "seeds": seeds,
                   "env_steps": steps, "final_eval_return": final,
                   "eval_return_by_row": evals.tolist(), "wall_s": wall}, f, indent=2)
