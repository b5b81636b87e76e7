"""The chain decoder: conditional flow matching on centred, aligned Cartesian coordinates of a chain, with a
transformer over its beads and a prior fitted to the training frames (or the Gaussian chain).

Why another decoder. On a protein the flow over a Z-matrix (``kind="flow"``, internal coordinates) keeps
every bond and angle but makes each distant contact depend on a long product of torsions, and loses the
folded state; the paper's GAN on aligned Cartesian coordinates keeps contacts but breaks bonds, because an
MLP over the flattened frame treats the 3n numbers as unrelated. This decoder keeps the Cartesian frame
(contacts are direct) and gives the network the chain's structure:

* **features**: the frame superposed on a centred reference and divided by one length ``scale`` (the mean
  bond), so distances keep their meaning (an isotropic :class:`~lss_jax.decoder.coordinates.CartesianMap`);
* **prior** (``DecoderConfig.prior``): by default a Gaussian fitted to the training frames of each structural
  state (``prior="gaussian"``: a mean linear in ``psi`` and the covariance of what it leaves), so the path starts
  from the state's average fold at that ``psi`` with its fluctuations and the flow only carries what a Gaussian
  misses (a data-dependent prior, as PriorGrad's);
  ``prior="chain"``: the Gaussian chain (a random walk of steps ``N(0, I/3)`` in units of ``scale``, centred,
  whose covariance is the pseudo-inverse of the chain graph's Laplacian: EigenFold's harmonic prior). On the
  Trp-cage round trip the fitted prior (at temperature 0.7) took the conditional bias of Q given psi from -0.030
  to +0.001 and the folded fraction from 0.480 to 0.522 (MD 0.544; ``docs/decoder.md``);
* **network** (:class:`ChainField`): one token per bead (its coordinates, the vectors to its chain
  neighbours, a learned position embedding), the latent point and the time injected into every block by
  a FiLM modulation, attention whose logits are biased per head by the sequence separation and by radial
  basis functions of the current pair distances, so that contacts are seen as distances;
* **loss**: the flow-matching velocity regression (times ``t`` drawn with more weight near the data) plus,
  at low noise (``t > 0.9``), the error of the distances of the predicted endpoint ``x_t + (1 - t) v`` over
  bonds and close pairs (FrameDiff's auxiliary loss; applied from ``t > 0.5`` it biased the conditional
  means of the known-answer test by 0.26 sd, from ``t > 0.9`` it does not);
* **self-conditioning** (``DecoderConfig.self_condition``, off): the field also sees the endpoint its previous
  evaluation predicted, as token input and pair distances (Chen et al. 2023; FrameFlow, Genie 2). On the Trp-cage
  round trip it moved the folded fraction from 0.480 to 0.488 at 1.5x the training time, so it stays off;
* **classifier-free guidance** (``DecoderConfig.condition_dropout``, ``DecoderConfig.guidance``, off): trained with
  the condition hidden from a share of the frames, the field also gives the unconditional velocity ``v_u``, and
  samples with ``v_u + w (v_c - v_u)`` (Ho & Salimans 2022). On Trp-cage (300 epochs) ``w > 1`` shortened the
  decoded t1 at every temperature, so it stays off;
* **structural states** (``DecoderConfig.states``, default 16): the frames are clustered by k-means on the
  distances of beads >= 3 apart (:func:`lss_jax.decoder.states.distance_states`), a calibrated classifier gives
  the states' weights given ``psi`` and the field is conditioned on the state as well
  (:class:`lss_jax.decoder.states.StateFlow`), so the weights of compact and open conformations are a
  classifier's, not a smooth map's;
* **sampling**: fixed Heun steps of the ODE (``DecoderConfig.flow_steps``) from the prior sample scaled by
  ``temperature`` (default 0.7: a low-temperature sample), then :func:`repair_chain`, a deterministic
  projection of the frame into the training frames' support (each bond within its training range, each
  pair >= 3 beads apart at least 0.95x its smallest training distance): local corrections, part of every
  draw, not a rejection.

References:
    B. Jing et al., "EigenFold: generative protein structure prediction with diffusion models", 2023
    (harmonic prior).
    S. Lee et al., "PriorGrad: improving conditional denoising diffusion models with data-dependent adaptive
    prior", ICLR 2022.
    T. Chen et al., "Analog bits: generating discrete data using diffusion models with self-conditioning",
    ICLR 2023.
    J. Yim et al., "SE(3) diffusion model with application to protein backbone generation", ICML 2023
    (FrameDiff: auxiliary distance loss at low noise).
    Y. Lipman et al., "Flow matching for generative modeling", ICLR 2023.
    J. Ho and T. Salimans, "Classifier-free diffusion guidance", 2022.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lss_jax.decoder.coordinates import CartesianMap
from lss_jax.decoder.kinds import DecoderKind, flow_optimizer, register
from lss_jax.decoder.knn import NeighbourDecoder, _Stored
from lss_jax.decoder.states import StateClassifier, StateFlow

__all__ = ["ChainField", "TemplateStart", "template_steps", "chain_prior", "chain_loss", "fit_chain_map", "integrate_chain", "repair_chain",
           "sample_chain", "CHAIN"]


PRIORS = ("chain", "gaussian")  # the chain decoder's prior samples (DecoderConfig.prior)


def fit_chain_map(xyz, reference) -> CartesianMap:
    """An isotropic :class:`CartesianMap` for the chain decoder: frames superposed on the centred ``reference``,
    features = coordinates / ``scale``, with ``scale`` the mean distance of consecutive beads (nm).

    Example:
        >>> xyz = np.cumsum(np.random.default_rng(0).normal(size=(20, 5, 3)), axis=1)
        >>> cmap = fit_chain_map(xyz, xyz[0])
        >>> float(np.abs(np.asarray(cmap.reference).mean(0)).max()) < 1e-6, bool(np.all(cmap.std == cmap.std[0]))
        (True, True)
    """
    xyz, reference = np.asarray(xyz, np.float64), np.asarray(reference, np.float64)
    reference = reference - reference.mean(0)
    scale = float(np.linalg.norm(xyz[:, 1:] - xyz[:, :-1], axis=-1).mean()) if xyz.shape[1] > 1 else 1.0
    d = reference.size
    return CartesianMap(jnp.asarray(reference, jnp.float32), jnp.zeros(d, jnp.float32), jnp.full(d, scale, jnp.float32))


def chain_prior(z: jax.Array) -> jax.Array:
    """Gaussian-chain prior sample ``[..., 3n]`` from standard normal ``z [..., 3n]``: a centred random walk
    with steps ``N(0, I/3)`` (mean squared step 1, in units of the bond length).

    Example:
        >>> x = chain_prior(jax.random.normal(jax.random.key(0), (4000, 30)))
        >>> steps = jnp.linalg.norm(jnp.diff(x.reshape(-1, 10, 3), axis=1), axis=-1)
        >>> round(float(jnp.mean(steps ** 2)), 1), float(jnp.abs(x.reshape(-1, 10, 3).mean(1)).max()) < 1e-5
        (1.0, True)
    """
    lead = z.shape[:-1]
    walk = jnp.cumsum(z.reshape(*lead, -1, 3), axis=-2) / jnp.sqrt(3.0)
    walk = walk - walk.mean(axis=-2, keepdims=True)
    return walk.reshape(*lead, -1)


def _fourier(x: jax.Array, n: int) -> jax.Array:
    freqs = jnp.pi * 2.0 ** jnp.arange(n, dtype=x.dtype)
    angle = x[..., None] * freqs.reshape((1,) * x.ndim + (-1,))
    return jnp.concatenate([jnp.sin(angle), jnp.cos(angle)], axis=-1).reshape(*x.shape[:-1], -1)


class _Block(nnx.Module):
    def __init__(self, width: int, heads: int, rngs: nnx.Rngs):
        self.heads = heads
        self.norm1 = nnx.LayerNorm(width, use_scale=False, use_bias=False, rngs=rngs)
        self.norm2 = nnx.LayerNorm(width, use_scale=False, use_bias=False, rngs=rngs)
        self.film = nnx.Linear(width, 4 * width, kernel_init=nnx.initializers.zeros, rngs=rngs)
        self.qkv = nnx.Linear(width, 3 * width, rngs=rngs)
        self.out = nnx.Linear(width, width, rngs=rngs)
        self.mlp1 = nnx.Linear(width, 2 * width, rngs=rngs)
        self.mlp2 = nnx.Linear(2 * width, width, rngs=rngs)

    def __call__(self, h, cond, bias):
        # h [B, n, w]; cond [B, w]; bias [B, heads, n, n]
        b, n, w = h.shape
        s1, b1, s2, b2 = jnp.split(self.film(cond)[:, None, :], 4, axis=-1)
        a = self.norm1(h) * (1 + s1) + b1
        q, k, v = jnp.split(self.qkv(a).reshape(b, n, 3, self.heads, w // self.heads), 3, axis=2)
        q, k, v = q[:, :, 0], k[:, :, 0], v[:, :, 0]  # [B, n, H, w/H]
        logits = jnp.einsum("bihd,bjhd->bhij", q, k) / jnp.sqrt(w // self.heads) + bias
        att = jax.nn.softmax(logits, axis=-1)
        h = h + self.out(jnp.einsum("bhij,bjhd->bihd", att, v).reshape(b, n, w))
        a = self.norm2(h) * (1 + s2) + b2
        return h + self.mlp2(jax.nn.swish(self.mlp1(a)))


class ChainField(nnx.Module):
    """Velocity ``v(x [..., 3n], t [...], c [..., m]) -> [..., 3n]`` of a chain of ``n`` beads in units of the bond
    length: a transformer over beads (``depth`` blocks of ``width`` features, ``heads`` heads) with pair biases from
    the sequence separation and the current distances; ``c`` and ``t`` modulate every block.

    Example:
        >>> field = ChainField(5, 2, width=16, depth=1, heads=2, rngs=nnx.Rngs(0))
        >>> field(jnp.zeros((3, 15)), jnp.full(3, 0.5), jnp.zeros((3, 2))).shape
        (3, 15)
    """

    def __init__(self, n_atoms: int, cond_dim: int, *, width: int = 64, depth: int = 4, heads: int = 4,
                 n_rbf: int = 16, n_frequencies: int = 6, temperature: float = 1.0, self_condition: bool = False,
                 prior: str = "chain", n_states: int = 0, condition_dropout: float = 0.0, guidance: float = 1.0,
                 rngs: nnx.Rngs):
        if width % heads:
            raise ValueError(f"width ({width}) must be a multiple of heads ({heads}).")
        self.n_atoms, self.cond_dim, self.depth, self.heads = n_atoms, cond_dim, depth, heads
        self.n_rbf, self.n_frequencies, self.temperature = n_rbf, n_frequencies, float(temperature)
        self.self_condition = bool(self_condition)
        # classifier-free guidance: trained with the condition hidden from a share of the frames (a learned "no
        # condition" vector added to the condition's first layer), sampled with v_u + guidance * (v_c - v_u)
        if guidance != 1.0 and not condition_dropout:
            raise ValueError(f"a guidance of {guidance!r} needs a field trained with condition dropout (its "
                             "unconditional velocity); set condition_dropout > 0, or guidance = 1.")
        self.condition_dropout, self.guidance = float(condition_dropout), float(guidance)
        self.null_condition = (nnx.Param(jax.random.normal(rngs.params(), (width,)) * 0.1) if condition_dropout
                               else None)
        if prior not in PRIORS:
            raise ValueError(f"the chain decoder's prior must be one of {', '.join(map(repr, PRIORS))}, got {prior!r}.")
        # prior "gaussian": N(mean_k + W_k psi, L_k L_k^T) fitted to the training frames of state k (the last n_states
        # entries of the condition are its one-hot, psi the others; one Gaussian without states), set by fit_prior
        self.prior, self.n_states = prior, int(n_states)
        if prior == "gaussian":
            k, d = max(self.n_states, 1), 3 * n_atoms
            self.prior_mean = nnx.Variable(jnp.zeros((k, d)))
            self.prior_slope = nnx.Variable(jnp.zeros((k, d, cond_dim - self.n_states)))
            self.prior_chol = nnx.Variable(jnp.broadcast_to(jnp.eye(d), (k, d, d)))
        self.embed = nnx.Param(jax.random.normal(rngs.params(), (n_atoms, width)) * 0.1)
        self.inp = nnx.Linear(3 + 8, width, rngs=rngs)
        self.cond1 = nnx.Linear(cond_dim * (1 + 2 * n_frequencies) + 2 * n_frequencies, width, rngs=rngs)
        self.cond2 = nnx.Linear(width, width, rngs=rngs)
        self.relpos = nnx.Param(jnp.zeros((2 * n_atoms - 1, depth * heads)))
        self.rbf = nnx.Linear(n_rbf, depth * heads, kernel_init=nnx.initializers.zeros, rngs=rngs)
        self.blocks = nnx.List([_Block(width, heads, rngs) for _ in range(depth)])
        self.norm = nnx.LayerNorm(width, rngs=rngs)
        self.head = nnx.Linear(width, 3, kernel_init=nnx.initializers.zeros, rngs=rngs)
        # self-conditioning: the field's own previous estimate of the endpoint, as token input and pair distances
        self.sc_inp = nnx.Linear(3, width, kernel_init=nnx.initializers.zeros, rngs=rngs) if self_condition else None
        self.sc_rbf = (nnx.Linear(n_rbf, depth * heads, kernel_init=nnx.initializers.zeros, rngs=rngs)
                       if self_condition else None)
        # the training frames' support, for repair_chain (set by fit_support_bounds; these defaults repair nothing)
        self.bond_min = nnx.Variable(jnp.zeros(max(n_atoms - 1, 0)))
        self.bond_max = nnx.Variable(jnp.full(max(n_atoms - 1, 0), 1e6))
        self.pair_floor = nnx.Variable(jnp.zeros(len(_far_pairs(n_atoms))))

    def prior_sample(self, z: jax.Array, c: jax.Array) -> jax.Array:
        """The prior sample ``[B, 3n]`` of standard normal ``z [B, 3n]`` at conditions ``c [B, cond_dim]``:
        :func:`chain_prior`, or (``prior="gaussian"``) ``mean_k + W_k psi + L_k z`` for the state ``k`` of ``c``'s
        one-hot and its latent part ``psi`` (:meth:`fit_prior`)."""
        if self.prior == "chain":
            return chain_prior(z)
        m = c.shape[-1] - self.n_states
        k = jnp.argmax(c[:, m:], axis=-1) if self.n_states else jnp.zeros(z.shape[0], jnp.int32)
        mean = self.prior_mean[...][k] + jnp.einsum("bij,bj->bi", self.prior_slope[...][k], c[:, :m].astype(z.dtype))
        return mean + jnp.einsum("bij,bj->bi", self.prior_chol[...][k], z)

    def fit_prior(self, features, cond, *, ridge: float = 1e-3) -> None:
        """``prior="gaussian"``: for each state, the least-squares linear map from the latent point to the frame
        (``mean_k + W_k psi``) and the Cholesky factor of the covariance of what it leaves (``+ ridge`` on the
        diagonal, in squared bond lengths: the superposed frames have no translation or rotation), from training
        features ``[N, 3n]`` and their conditions ``[N, cond_dim]`` (latent point, then the state's one-hot)."""
        if self.prior != "gaussian":
            return
        x, c = np.asarray(features, np.float64), np.asarray(cond, np.float64)
        m = c.shape[1] - self.n_states
        labels = np.argmax(c[:, m:], axis=1) if self.n_states else np.zeros(len(x), np.int64)
        means, slopes, chols = [], [], []
        for k in range(max(self.n_states, 1)):
            rows = labels == k if np.sum(labels == k) > 2 * (m + 1) else np.ones(len(x), bool)  # too few: all frames
            design = np.concatenate([np.ones((rows.sum(), 1)), c[rows, :m]], 1)
            coef = np.linalg.solve(design.T @ design + ridge * np.eye(m + 1), design.T @ x[rows])  # [m + 1, 3n]
            residual = x[rows] - design @ coef
            cov = residual.T @ residual / max(rows.sum() - m - 1, 1) + ridge * np.eye(x.shape[1])
            means.append(coef[0])
            slopes.append(coef[1:].T)
            chols.append(np.linalg.cholesky(cov))
        self.prior_mean[...] = jnp.asarray(np.stack(means), jnp.float32)
        self.prior_slope[...] = jnp.asarray(np.stack(slopes), jnp.float32)
        self.prior_chol[...] = jnp.asarray(np.stack(chols), jnp.float32)

    def _rbf(self, dist: jax.Array) -> jax.Array:
        centres = jnp.linspace(0.0, 8.0, self.n_rbf, dtype=dist.dtype)
        return jnp.exp(-((dist[..., None] - centres.reshape((1,) * dist.ndim + (-1,))) ** 2) / (2 * (8.0 / self.n_rbf) ** 2))

    @property
    def noise_dim(self) -> int:
        """Length of a frame's prior sample (3 per bead)."""
        return 3 * self.n_atoms

    def __call__(self, x: jax.Array, t: jax.Array, c: jax.Array, x1: jax.Array | None = None, *,
                 drop: jax.Array | None = None) -> jax.Array:
        """Velocity at ``x [..., 3n]``, time ``t`` and condition ``c``; ``x1 [..., 3n]``: the endpoint estimated at the
        previous evaluation (self-conditioning; ``None`` or zeros: no estimate; ignored without self-conditioning).

        ``drop [...]`` (bool; a field trained with condition dropout): where true, the velocity without the condition.
        ``None`` (sampling): the guided velocity ``v_u + guidance (v_c - v_u)`` (two evaluations a call when
        ``guidance != 1``; Ho & Salimans 2022)."""
        if drop is None and self.guidance != 1.0:  # both velocities in one batch
            lead, b = x.shape[:-1], int(np.prod(x.shape[:-1]))
            flat = [a.reshape(b, a.shape[-1]) for a in (x, c, *(() if x1 is None else (x1,)))]
            twice = [jnp.concatenate([a, a]) for a in flat]
            tt = jnp.broadcast_to(t, lead).reshape(b)
            v = self(twice[0], jnp.concatenate([tt, tt]), twice[1], twice[2] if x1 is not None else None,
                     drop=jnp.arange(2 * b) >= b)
            return (v[b:] + self.guidance * (v[:b] - v[b:])).reshape(x.shape)
        if drop is not None and self.null_condition is None:
            raise ValueError("this chain field was trained without condition dropout: it has no unconditional velocity.")
        lead = x.shape[:-1]
        n = self.n_atoms
        pos = x.reshape(-1, n, 3)
        t = jnp.broadcast_to(t, lead).reshape(-1).astype(pos.dtype)
        c = c.reshape(-1, c.shape[-1]).astype(pos.dtype)
        # local chain geometry: vectors to the previous and next bead and their lengths (0 at the ends)
        fwd = jnp.concatenate([pos[:, 1:] - pos[:, :-1], jnp.zeros_like(pos[:, :1])], axis=1)
        bwd = jnp.concatenate([jnp.zeros_like(pos[:, :1]), pos[:, :-1] - pos[:, 1:]], axis=1)
        local = jnp.concatenate([pos, fwd, bwd, jnp.linalg.norm(fwd, axis=-1, keepdims=True) - 1,
                                 jnp.linalg.norm(bwd, axis=-1, keepdims=True) - 1], axis=-1)
        h = self.inp(local) + self.embed[None]
        if self.self_condition:
            est = jnp.zeros_like(pos) if x1 is None else x1.reshape(-1, n, 3).astype(pos.dtype)
            h = h + self.sc_inp(est)
        if drop is None:
            cond = self.cond1(jnp.concatenate([c, _fourier(c, self.n_frequencies),
                                               _fourier(t[:, None], self.n_frequencies)], -1))
        else:  # the dropped frames' condition: zeros, and the learned "no condition" vector
            hidden = drop.reshape(-1, 1).astype(pos.dtype)
            cond = self.cond1(jnp.concatenate([c * (1 - hidden), _fourier(c, self.n_frequencies) * (1 - hidden),
                                               _fourier(t[:, None], self.n_frequencies)], -1))
            cond = cond + hidden * self.null_condition[...][None]
        cond = self.cond2(jax.nn.swish(cond))
        h = h + cond[:, None, :]
        # pair biases: sequence separation (learned table) + radial basis of the current distances
        idx = jnp.arange(n)
        rel = self.relpos[idx[:, None] - idx[None, :] + n - 1]  # [n, n, depth*heads]
        dist = jnp.sqrt(jnp.sum((pos[:, :, None] - pos[:, None, :]) ** 2, -1) + 1e-6)  # [B, n, n]
        bias = rel[None] + self.rbf(self._rbf(dist))
        if self.self_condition:  # the estimate's distances (0 where there is none: the rbf of 0 is a constant)
            bias = bias + self.sc_rbf(self._rbf(jnp.sqrt(jnp.sum((est[:, :, None] - est[:, None, :]) ** 2, -1) + 1e-6)))
        bias = bias.reshape(-1, n, n, self.depth, self.heads)
        bias = jnp.moveaxis(bias, (3, 4), (0, 2))  # [depth, B, heads, n, n]
        for i, block in enumerate(self.blocks):
            h = block(h, cond, bias[i])
        v = self.head(jax.nn.swish(self.norm(h)))
        return v.reshape(*lead, 3 * n)

    def sample(self, z: jax.Array, cond: jax.Array, *, n_steps: int, repair: bool = True,
               solver: str = "heun") -> jax.Array:
        """Features ``[B, 3n]`` from standard normal ``z [B, 3n]`` (scaled by ``temperature``): :func:`sample_chain`,
        then (``repair``) :func:`repair_chain` into the training frames' bond ranges and pair distances
        (:meth:`fit_support_bounds`)."""
        x = sample_chain(self, z * self.temperature, cond, n_steps=n_steps, solver=solver)
        if not repair:
            return x
        return self.repair(x)

    def repair(self, x: jax.Array, contacts=None) -> jax.Array:
        """:func:`repair_chain` of features ``[B, 3n]`` into the bounds of :meth:`fit_support_bounds` (and onto
        ``contacts``, as :func:`repair_chain` takes them, in feature units)."""
        n = self.n_atoms
        pairs = jnp.asarray(_far_pairs(n))
        fixed = repair_chain(x.reshape(-1, n, 3), self.bond_min[...], self.bond_max[...], pairs, self.pair_floor[...],
                             contacts=contacts)
        return fixed.reshape(x.shape)

    def fit_support_bounds(self, features, *, margin: float = 0.9) -> None:
        """Set the repair's bounds from training features ``[N, 3n]``: each bond's smallest and largest training
        length, and ``min(1, margin + 0.05)`` times the smallest training distance of each pair ``>= 3`` beads
        apart (``margin``: the support constraint's, :mod:`lss_jax.decoder.support`)."""
        x = np.asarray(features, np.float64).reshape(len(features), self.n_atoms, 3)
        bonds = np.linalg.norm(x[:, 1:] - x[:, :-1], axis=-1)
        i, j = _far_pairs(self.n_atoms).T
        far = np.linalg.norm(x[:, i] - x[:, j], axis=-1).min(0) if len(i) else np.zeros(0)
        self.bond_min[...] = jnp.asarray(bonds.min(0), jnp.float32)
        self.bond_max[...] = jnp.asarray(bonds.max(0), jnp.float32)
        # a little beyond the support constraint's margin, so that a repaired pair is inside the support
        self.pair_floor[...] = jnp.asarray(min(1.0, margin + 0.05) * far, jnp.float32)


class TemplateStart(nnx.Module):
    """Chain decoding whose path starts part of the way, at time ``t0``, from a training frame near the condition.

    The flow was trained on the straight paths ``x_t = (1 - t) x_0 + t x_1`` between prior samples ``x_0`` and
    training frames ``x_1`` at their latent points. For a condition ``c`` this picks one of the ``k`` training frames
    whose latent points are nearest to ``c`` (retrieval's pick, by the noise's last entry), draws the prior sample
    ``x_0`` (the rest of the noise, scaled by the field's temperature) and starts the ODE at
    ``x_t0 = (1 - t0) x_0 + t0 x_1`` under the frame's own structural state: a draw of the path's law at ``t0``
    built from MD frames, where a path started at ``t = 0`` gets there through the field's errors over ``[0, t0]``.
    The field carries it over ``[t0, 1]`` (``round(n_steps (1 - t0))`` steps, at least 1: the flow's step size) and
    :meth:`ChainField.repair` ends it, as for every chain draw. ``t0 = 0`` would be the plain chain decoder and
    ``t0 -> 1`` retrieval; in between, the decoded frame is a new structure whose coarse features (the fold, its
    contacts) are those of a frame MD visits at that latent point. How new is measured by ``report``'s novelty
    (median Calpha-RMSD to the nearest training frame against independent MD's; docs/decoder.md).

    Example:
        >>> field = ChainField(4, 1, width=8, depth=1, heads=2, prior="gaussian", rngs=nnx.Rngs(0))
        >>> frames = jnp.asarray(np.random.default_rng(0).normal(size=(6, 12)), jnp.float32)
        >>> start = TemplateStart(field, jnp.linspace(0, 1, 6)[:, None], frames, jnp.zeros(6, jnp.int32), k=2, t0=0.5)
        >>> start.noise_dim, start.sample(jnp.zeros((3, 13)), jnp.full((3, 1), 0.5), n_steps=4).shape
        (13, (3, 12))
    """

    def __init__(self, network, latents, features, labels, *, k: int, t0: float):
        if not 0.0 < t0 < 1.0:
            raise ValueError(f"a template start's time must be in (0, 1), got {t0!r}.")
        self.network, self.t0 = network, float(t0)
        self.neighbours = NeighbourDecoder(latents, features, k)
        self.labels = _Stored(jnp.asarray(labels, jnp.int32))

    @property
    def field(self) -> ChainField:
        return self.network.field if isinstance(self.network, StateFlow) else self.network

    @property
    def n_states(self) -> int:
        return int(getattr(self.network, "n_states", 0))

    @property
    def noise_dim(self) -> int:
        """The field's prior sample and one variate for the pick of the frame."""
        return self.field.noise_dim + 1

    def sample(self, z: jax.Array, c: jax.Array, *, n_steps: int, solver: str = "heun") -> jax.Array:
        """Features ``[B, 3n]`` from noise ``z [B, noise_dim]`` and latent points ``c [B, m]``."""
        field = self.field
        rows = self.neighbours.pick(z[:, -1:], c)
        x1 = self.neighbours.features[...][rows]
        cond = c.astype(x1.dtype)
        if self.n_states:
            cond = jnp.concatenate([cond, jax.nn.one_hot(self.labels[...][rows], self.n_states, dtype=x1.dtype)], -1)
        x0 = field.prior_sample(z[:, :-1].astype(x1.dtype) * field.temperature, cond)
        x = integrate_chain(field, (1.0 - self.t0) * x0 + self.t0 * x1, cond, solver=solver, start=self.t0,
                            n_steps=template_steps(n_steps, self.t0))
        return field.repair(x)


def template_steps(n_steps: int, t0: float) -> int:
    """Steps of a path started at ``t0`` by a sampler of ``n_steps`` over ``[0, 1]``: the same step size, at least 1.

    Example:
        >>> template_steps(10, 0.5), template_steps(10, 0.96)
        (5, 1)
    """
    return max(1, round(n_steps * (1.0 - t0)))


def _far_pairs(n: int) -> np.ndarray:
    """``[P, 2]`` bead pairs at least 3 apart along the chain."""
    i, j = np.triu_indices(n, k=3)
    return np.stack([i, j], 1).astype(np.int32)


def sample_chain(field, z: jax.Array, cond: jax.Array, *, n_steps: int, solver: str = "heun") -> jax.Array:
    """Integrate ``dx/dt = field(x, t, c)`` from the chain prior sample of ``z`` with ``n_steps`` steps of
    ``solver`` (:func:`integrate_chain`)."""
    x0 = field.prior_sample(z, cond) if hasattr(field, "prior_sample") else chain_prior(z)
    return integrate_chain(field, x0, cond, n_steps=n_steps, solver=solver)


def integrate_chain(field, x0: jax.Array, cond: jax.Array, *, n_steps: int, solver: str = "heun",
                    start: float = 0.0) -> jax.Array:
    """Solve ``dx/dt = field(x, t, c)`` from ``x0 [B, 3n]`` at time ``start`` (:func:`lss_jax.decoder.flow.integrate_flow`); a
    self-conditioned field (``field.self_condition``) is given, at each evaluation, the endpoint ``x + (1 - t) v``
    that its previous evaluation predicted (none at the first).

    Example:
        >>> field = ChainField(4, 1, width=8, depth=1, heads=2, self_condition=True, rngs=nnx.Rngs(0))
        >>> integrate_chain(field, jnp.zeros((2, 12)), jnp.zeros((2, 1)), n_steps=3).shape
        (2, 12)
    """
    from lss_jax.decoder.flow import integrate_flow

    return integrate_flow(field, x0, cond, n_steps=n_steps, solver=solver,
                          self_condition=getattr(field, "self_condition", False), start=start)


def _pair_distances(x: jax.Array, n: int) -> jax.Array:
    p = x.reshape(x.shape[0], n, 3)
    return jnp.sqrt(jnp.sum((p[:, :, None] - p[:, None, :]) ** 2, -1) + 1e-8)


def chain_loss(key: jax.Array, field, x1: jax.Array, cond: jax.Array, *, distance_weight: float = 1.0,
               close: float = 3.0, t_power: float = 1.0, gate: float = 0.9, local_weight: float = 0.0) -> jax.Array:
    """Flow-matching loss from the chain prior plus ``distance_weight`` times the mean squared error of the
    predicted endpoint's distances over bonded pairs and pairs closer than ``close`` (bond lengths) in the data,
    at ``t > gate``; ``t ~ 1 - (1 - U(0, 1))^t_power``. ``x1 [B, 3n]`` in bond-length units.

    ``local_weight`` adds the mean squared first and second differences of the velocity error along the chain
    (the errors of the bond vectors and of the ``i, i + 2`` vectors): the same regression in another metric, so
    its minimiser, the conditional mean velocity, is unchanged, but the network's errors in the local geometry
    cost more. Off by default: on Trp-cage (50 epochs, ``local_weight = 10``) it narrowed the decoded virtual-bond
    angles from 21.3 to 13.8 degrees sd (MD 8.0) and the pseudo-torsions from 49.9 to 43.1 (MD 42.5) but left the
    folding where it was (round-trip mean Q 0.500 against 0.501; MD 0.533), and with the known-answer test's short
    training it moved the conditional means by 0.23 sd (allowance 0.16).
    """
    k_t, k_0 = jax.random.split(key)
    b = x1.shape[0]
    n = x1.shape[-1] // 3
    t = 1.0 - (1.0 - jax.random.uniform(k_t, (b,), x1.dtype)) ** t_power  # t_power > 1: more weight near the data
    z = jax.random.normal(k_0, x1.shape, x1.dtype)
    x0 = field.prior_sample(z, cond) if hasattr(field, "prior_sample") else chain_prior(z)
    xt = (1.0 - t[:, None]) * x0 + t[:, None] * x1
    # condition dropout (classifier-free guidance): a share of the frames regress the velocity without the condition
    dropout = getattr(field, "condition_dropout", 0.0)
    kw = {"drop": jax.random.uniform(jax.random.fold_in(key, 3), (b,)) < dropout} if dropout else {}
    if getattr(field, "self_condition", False):  # half the frames see the field's own estimate (no gradient through it)
        estimate = jax.lax.stop_gradient(xt + (1.0 - t[:, None]) * field(xt, t, cond, **kw))
        use = jax.random.uniform(jax.random.fold_in(key, 2), (b, 1)) < 0.5
        v = field(xt, t, cond, jnp.where(use, estimate, 0.0), **kw)
    else:
        v = field(xt, t, cond, **kw)
    err = v - (x1 - x0)
    loss = jnp.mean(err ** 2)
    if local_weight:  # the same regression in another metric: errors of bond vectors and of i, i + 2 vectors
        e = err.reshape(b, n, 3)
        loss = loss + local_weight * (jnp.mean((e[:, 1:] - e[:, :-1]) ** 2) + jnp.mean((e[:, 2:] - e[:, :-2]) ** 2))
    if distance_weight:
        pred = xt + (1.0 - t[:, None]) * v
        d_true, d_pred = _pair_distances(x1, n), _pair_distances(pred, n)
        i, j = np.triu_indices(n, k=1)
        d_true, d_pred = d_true[:, i, j], d_pred[:, i, j]
        mask = ((d_true < close) | jnp.asarray(j - i == 1)[None]) & (t[:, None] > gate)
        weight = jnp.where(jnp.asarray(j - i == 1)[None], 4.0, 1.0) * mask
        loss = loss + distance_weight * jnp.sum(weight * (d_pred - d_true) ** 2) / jnp.maximum(jnp.sum(mask), 1.0)
    return loss


def repair_chain(xyz: jax.Array, bond_min: jax.Array, bond_max: jax.Array, pairs: jax.Array, min_distance: jax.Array,
                 *, iterations: int = 50, contacts=None) -> jax.Array:
    """Project decoded chains ``xyz [..., n, 3]`` towards valid geometry, deterministically: every bond
    ``(i, i + 1)`` into ``[bond_min, bond_max]`` and every pair ``pairs [P, 2]`` (distinct pairs, none of them a
    bond) apart by at least ``min_distance [P]``, by ``iterations`` sweeps of symmetric corrections (each violated
    constraint moves its two atoms half-way along their axis; Jacobi updates, so the result does not depend on the
    order). A chain that satisfies every constraint is returned unchanged; the corrections are local (a bond or a
    contact), so they do not move distant parts of the chain the way a change of an internal coordinate would.

    ``contacts = (contact_pairs [K, 2], upper [K], lower [K], bits [B, K])`` (``B`` the chains of ``xyz`` flattened)
    also puts pair ``k`` of a chain within ``upper[k]`` where its bit is 1 and beyond ``lower[k]`` where it is 0
    (a contact map, :mod:`lss_jax.decoder.contacts`), with 4x the sweeps: the constraints then reach across the
    chain and take longer to settle.

    Example:
        >>> x = jnp.array([[0.0, 0, 0], [0.5, 0, 0], [0.6, 0.35, 0], [0.25, 0.1, 0]])  # a long bond, 0-3 at 0.27
        >>> lo, hi, pairs = jnp.full(3, 0.38), jnp.full(3, 0.42), jnp.array([[0, 3]])
        >>> y = repair_chain(x, lo, hi, pairs, jnp.array([0.36]))
        >>> b = jnp.linalg.norm(jnp.diff(y, axis=0), axis=-1)
        >>> bool(jnp.all((b > 0.378) & (b < 0.422))), round(float(jnp.linalg.norm(y[3] - y[0])), 2)
        (True, 0.36)
        >>> ok = jnp.array([[0.0, 0, 0], [0.4, 0, 0], [0.8, 0, 0], [1.2, 0, 0]])
        >>> bool(jnp.array_equal(repair_chain(ok, lo, hi, pairs, jnp.array([0.36])), ok))
        True
    """
    lead, n = xyz.shape[:-2], xyz.shape[-2]
    flat = xyz.reshape(-1, n, 3)
    # every pair i < j of the chain, as rows of the incidence matrix (+1 at i, -1 at j): a sweep's pair vectors and
    # its corrections' sums over atoms are two small matmuls, not gathers and scatter-adds (3x to 5x faster on CPU)
    incidence, index = _pair_incidence(n)
    k = jnp.arange(n - 1)
    lo = jnp.zeros(incidence.shape[0], flat.dtype).at[index[k, k + 1]].set(bond_min)
    hi = jnp.full(incidence.shape[0], jnp.inf, flat.dtype).at[index[k, k + 1]].set(bond_max)
    if pairs.shape[0]:
        lo = lo.at[index[pairs[:, 0], pairs[:, 1]]].set(min_distance)
    bounds = [(lo[None], hi[None])]
    if contacts is not None:
        c_pairs, upper, lower, bits = contacts
        at = index[c_pairs[:, 0], c_pairs[:, 1]]
        formed = bits.reshape(flat.shape[0], -1) > 0.5
        none = jnp.zeros((flat.shape[0], incidence.shape[0]), flat.dtype)
        bounds.append((none.at[:, at].set(jnp.where(formed, 0.0, lower[None])),
                       (none + jnp.inf).at[:, at].set(jnp.where(formed, upper[None], jnp.inf))))
        iterations = 4 * iterations

    def sweep(_, x):
        u = jnp.einsum("pn,bnk->bpk", incidence, x)  # x_i - x_j
        d = jnp.linalg.norm(u, axis=-1)
        excess = sum(d - jnp.clip(d, low, high) for low, high in bounds)
        move = (0.5 * excess / jnp.maximum(d, 1e-9))[..., None] * u  # half of each violation, on each atom
        return x - 0.5 * jnp.einsum("pn,bpk->bnk", incidence, move)  # under-relaxed: several corrections an atom

    return jax.lax.fori_loop(0, iterations, sweep, flat).reshape(*lead, n, 3)


def _pair_incidence(n: int) -> tuple[jax.Array, jax.Array]:
    """The pairs ``i < j`` of ``n`` beads: their incidence matrix ``[n (n - 1) / 2, n]`` (+1 at ``i``, -1 at ``j``)
    and the ``[n, n]`` table of each pair's row (symmetric; -1 on the diagonal)."""
    i, j = np.triu_indices(n, k=1)
    rows = np.arange(len(i))
    incidence = np.zeros((len(i), n), np.float32)
    incidence[rows, i], incidence[rows, j] = 1.0, -1.0
    index = np.full((n, n), -1, np.int32)
    index[i, j] = index[j, i] = rows
    return jnp.asarray(incidence), jnp.asarray(index)


# --------------------------------------------------------------------------------------------------
# the "chain" decoder kind (lss_jax.decoder.kinds)
# --------------------------------------------------------------------------------------------------


def _fit_kind(key: jax.Array, train_data, val_data, cfg, *, progress, checkpoint, classifier):
    """A :class:`ChainField` trained by :func:`chain_loss` on ``(x [n, 3 n_atoms], c [n, m])``, its repair bounds
    fitted on every frame (a :class:`~lss_jax.decoder.states.StateFlow` with ``classifier``), ``(network, None,
    TrainHistory)``."""
    from lss_jax.engine.train import fit

    n, d = train_data[0].shape
    batch_size, epochs, optimizer = flow_optimizer(cfg, n)
    k_init, k_fit = jax.random.split(key)
    field = _field(cfg, d, train_data[1].shape[1], 0 if classifier is None else classifier.n_states, nnx.Rngs(k_init))
    field.fit_prior(*train_data)
    field, history = fit(
        k_fit, field, lambda k, model, batch: chain_loss(k, model, batch[0], batch[1], distance_weight=2.0, t_power=1.5),
        train_data, val_data, optimizer=optimizer, batch_size=batch_size, max_epochs=epochs,
        patience=cfg.patience, progress=progress, desc="chain decoder", checkpoint=checkpoint, stochastic=True,
        run_id=f"chain lr={cfg.learning_rate!r} decay={cfg.lr_decay} hidden={cfg.hidden} cond={train_data[1].shape[1]}")
    field.fit_support_bounds(np.concatenate([np.asarray(train_data[0]), np.asarray(val_data[0])]),
                             margin=cfg.support_margin)
    return (field if classifier is None else StateFlow(field, classifier)), None, history


def _field(cfg, d: int, cond_dim: int, n_states: int, rngs: nnx.Rngs) -> ChainField:
    """The :class:`ChainField` of ``cfg`` (resolved) for frames of ``d`` features and conditions of ``cond_dim``."""
    return ChainField(d // 3, cond_dim, width=cfg.hidden[0], depth=len(cfg.hidden), temperature=cfg.temperature,
                      self_condition=cfg.self_condition, prior=cfg.prior, n_states=n_states,
                      condition_dropout=cfg.condition_dropout, guidance=cfg.guidance, rngs=rngs)


def _template(cfg, d: int, cond_dim: int, n_states: int, rngs: nnx.Rngs):
    """An untrained :class:`ChainField` (in a :class:`~lss_jax.decoder.states.StateFlow` with ``n_states``),
    ``(network, None)``."""
    contact_map = cfg.state_features == "contact_map" and n_states  # n_states: the contact map's bits
    network = _field(cfg, d, cond_dim + n_states, 0 if contact_map else n_states, rngs)
    if contact_map:
        from lss_jax.decoder.contacts import ContactFlow, ContactModel

        network = ContactFlow(network, ContactModel(cond_dim, n_states, rngs=rngs), np.zeros((n_states, 2), np.int32),
                              np.zeros(n_states, np.float32))
    elif n_states:
        network = StateFlow(network, StateClassifier(cond_dim, n_states, rngs=rngs))
    if cfg.template_time:  # placeholder frames (as many as a pick looks at): their number comes with the saved arrays
        k = cfg.neighbours
        network = TemplateStart(network, jnp.zeros((k, cond_dim)), jnp.zeros((k, d)), jnp.zeros(k, jnp.int32), k=k,
                                t0=cfg.template_time)
    return network, None


def _sample(network, z: jax.Array, cond: jax.Array, flow_steps: int, solver: str = "heun") -> jax.Array:
    """:meth:`ChainField.sample` (or the :class:`~lss_jax.decoder.states.StateFlow`'s) from the noise ``z``."""
    return network.sample(z, cond, n_steps=flow_steps, solver=solver)


CHAIN = register(DecoderKind("chain", _fit_kind, _template, _sample, distillable=True))
