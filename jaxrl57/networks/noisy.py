"""Noisy networks: factorised Gaussian noisy linear layers and the heads built on them.

Fortunato et al. 2018, "Noisy Networks for Exploration", sec. 3 and 3.2:

    y = (mu_w + sigma_w * eps_w) x + mu_b + sigma_b * eps_b              (eq. 9)
    eps_w[i, j] = f(eps_in[i]) f(eps_out[j]),  eps_b[j] = f(eps_out[j])   (eq. 10-11)
    f(x) = sign(x) sqrt(|x|),  eps_in ~ N(0, I_p), eps_out ~ N(0, I_q)

with p inputs, q outputs, mu ~ U[-1/sqrt(p), 1/sqrt(p)] and sigma = sigma0 / sqrt(p).

Calling convention (pure: no noise is stored in the params). The noise key
comes in with every apply, in its own flax RNG stream named "noise":

    params = net.init(key, x)                        # "params" key also seeds init-time noise
    q = net.apply(params, x, rngs={"noise": key})    # training / acting: fresh noise per key
    q = net.apply(params, x, deterministic=True)     # evaluation: mean weights, no rng needed

`deterministic` is a module attribute (default False) and, on every module
here, also a call argument; the call argument wins when it is given. A
module nested in a network that does not forward the argument (e.g.
`QNetwork`) is switched with the attribute: `NoisyQHead(A, deterministic=True)`.
Every noisy layer derives its own key from the one "noise" key (flax folds in
the module path), so one key per apply is all a caller supplies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

NOISE_RNG = "noise"


def scale_noise(x: jax.Array) -> jax.Array:
    """f(x) = sign(x) sqrt(|x|) (Fortunato et al. 2018, sec. 3.2)."""
    return jnp.sign(x) * jnp.sqrt(jnp.abs(x))


def factorised_gaussian_noise(
    key: jax.Array, in_features: int, out_features: int, dtype=jnp.float32
) -> tuple[jax.Array, jax.Array]:
    """Factorised Gaussian noise (Fortunato et al. 2018, eq. 10-11).

    Draws eps_in ~ N(0, I_p) and eps_out ~ N(0, I_q) from `jax.random.split(key)`
    and returns (eps_w [p, q], eps_b [q]) with
    eps_w = outer(f(eps_in), f(eps_out)) and eps_b = f(eps_out): p + q
    Gaussian draws instead of p * q + q.
    """
    key_in, key_out = jax.random.split(key)
    f_in = scale_noise(jax.random.normal(key_in, (in_features,), dtype))
    f_out = scale_noise(jax.random.normal(key_out, (out_features,), dtype))
    return jnp.outer(f_in, f_out), f_out


def _uniform_fan_in(fan_in: int) -> Callable:
    bound = fan_in**-0.5

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _constant(value) -> Callable:
    def init(key, shape, dtype=jnp.float32):
        del key
        return jnp.full(shape, value, dtype)

    return init


def resolve_deterministic(attribute: bool, argument: bool | None) -> bool:
    """The call argument when given, else the module attribute."""
    return attribute if argument is None else argument


class NoisyDense(nn.Module):
    """Factorised Gaussian noisy linear layer (Fortunato et al. 2018, eq. 9-11).

    Params: mu_w [p, q], sigma_w [p, q], mu_b [q], sigma_b [q] (kernel laid
    out [in, out] as in `nn.Dense`). Input [..., p], output [..., q].

    Attributes:
      features: q, the number of outputs.
      sigma0: sets the noise scale at init, sigma = sigma0 / sqrt(p) (paper: 0.5).
      deterministic: True uses the mean weights only, y = x mu_w + mu_b, and
        draws nothing; False draws fresh noise from the "noise" RNG stream.
        Overridden by the call argument of the same name when that is given.
    """

    features: int
    sigma0: float = 0.5
    deterministic: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool | None = None) -> jax.Array:
        x = jnp.asarray(x, jnp.float32)
        p, q = x.shape[-1], self.features
        mu_w = self.param("mu_w", _uniform_fan_in(p), (p, q))
        sigma_w = self.param("sigma_w", _constant(self.sigma0 / p**0.5), (p, q))
        mu_b = self.param("mu_b", _uniform_fan_in(p), (q,))
        sigma_b = self.param("sigma_b", _constant(self.sigma0 / p**0.5), (q,))
        if resolve_deterministic(self.deterministic, deterministic):
            return x @ mu_w + mu_b
        eps_w, eps_b = factorised_gaussian_noise(self.make_rng(NOISE_RNG), p, q)
        return x @ (mu_w + sigma_w * eps_w) + mu_b + sigma_b * eps_b


def linear(
    features: int, *, noisy: bool = False, sigma0: float = 0.5, deterministic: bool = False
) -> nn.Module:
    """A linear layer factory: `nn.Dense` or `NoisyDense`, both called as `layer(x)`.

    Call it inside a compact method so the layer is named after its class
    (Dense_0, NoisyDense_0, ...).
    """
    if noisy:
        return NoisyDense(features, sigma0=sigma0, deterministic=deterministic)
    return nn.Dense(features)


class NoisyQHead(nn.Module):
    """Noisy layers to one value per action (Fortunato et al. 2018, NoisyNet-DQN):
    `hidden_sizes` noisy ReLU layers, then a noisy linear layer.

    features [..., D] -> Q-values [..., num_actions].
    """

    num_actions: int
    sigma0: float = 0.5
    deterministic: bool = False
    hidden_sizes: Sequence[int] = ()

    @nn.compact
    def __call__(self, features: jax.Array, deterministic: bool | None = None) -> jax.Array:
        det = resolve_deterministic(self.deterministic, deterministic)
        x = features
        for size in self.hidden_sizes:
            x = nn.relu(NoisyDense(size, self.sigma0, deterministic=det)(x))
        return NoisyDense(self.num_actions, self.sigma0, deterministic=det)(x)


class NoisyDuelingHead(nn.Module):
    """Dueling streams of noisy layers (Wang et al. 2016, eq. 9; Fortunato et al. 2018).

    Q(s, a) = V(s) + A(s, a) - mean_a' A(s, a'); every layer, hidden ones
    included, is a `NoisyDense`. features [..., D] -> Q-values [..., num_actions].
    """

    num_actions: int
    hidden_sizes: Sequence[int] = ()
    sigma0: float = 0.5
    deterministic: bool = False

    @nn.compact
    def __call__(self, features: jax.Array, deterministic: bool | None = None) -> jax.Array:
        det = resolve_deterministic(self.deterministic, deterministic)
        value, advantage = features, features
        for size in self.hidden_sizes:
            value = nn.relu(NoisyDense(size, self.sigma0, deterministic=det)(value))
            advantage = nn.relu(NoisyDense(size, self.sigma0, deterministic=det)(advantage))
        value = NoisyDense(1, self.sigma0, deterministic=det)(value)
        advantage = NoisyDense(self.num_actions, self.sigma0, deterministic=det)(advantage)
        return value + advantage - jnp.mean(advantage, axis=-1, keepdims=True)
