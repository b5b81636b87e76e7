"""Contact-map states: the chain decoder's structural state as the frame's whole contact map.

Why. The chain decoder with k-means states (:func:`lss_jax.decoder.states.distance_states`) gets a protein's
folded fraction right but not its folding transitions: its native contacts form and break together too often within
a frame, so Q, the fraction formed, has heavy tails, and frames decoded independently given psi cross the folded and
unfolded cutoffs too often (``docs/decoder.md``). Told the frame's own contacts (the flow conditioned on the 20 native
contacts of the MD frame it decodes), the field still gets 10 % of them wrong at temperature 0.7 and 15 % at 1: a
flow places a bead to a few hundredths of a nm, and a formed contact sits that close to its cutoff.

So the contacts are drawn first, by a model that is exact about them, and the chain is made to keep them:

    p(x | psi) = sum_b  p(b | psi)  p(x | psi, b),

* ``b``: the frame's contact map, one bit per Calpha pair of :func:`contact_map_pairs` (formed: closer than the
  pair's cutoff);
* ``p(b | psi)``: :class:`ContactModel`, an autoregressive Bernoulli model (MADE, Germain et al. 2015: one network
  whose masks let bit ``i`` see psi and bits ``< i`` only), trained by maximum likelihood, so the joint law of the
  contacts given psi, their correlations within a frame included, is learned directly;
* ``p(x | psi, b)``: the chain decoder's flow conditioned on ``[psi, b]`` (its Gaussian prior's mean linear in both);
* the decoded chain is then projected onto its contact map (:func:`lss_jax.decoder.chain.repair_chain` with
  contacts: a formed pair pulled inside ``(1 - margin)`` times its cutoff, a broken one pushed beyond
  ``(1 + margin)`` times it, with the bonds and the pair floors the repair always keeps): a deterministic, local
  correction that is part of every draw, not a rejection.

What each part does is measured in ``docs/decoder.md``: the folding statistics (Q, its tails, the transitions) are
the contact model's; the coordinates (novelty, Rg, the decoded slow process) are the flow's.

References:
    M. Germain, K. Gregor, I. Murray, H. Larochelle, "MADE: masked autoencoder for distribution estimation",
    ICML 2015.
    R. B. Best, G. Hummer, W. A. Eaton, "Native contacts determine protein folding mechanisms in atomistic
    simulations", PNAS 110, 17874 (2013).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from lss_jax.data.native import Q_TOLERANCE, native_chain

__all__ = ["CONTACT_MAP_CUTOFF", "CONTACT_MAP_MARGIN", "CONTACT_MAP_MAX_PAIRS", "CONTACT_MAP_SEPARATION",
           "CONTACT_MAP_SHARE", "ContactFlow", "ContactModel", "contact_bits", "contact_map_pairs",
           "fit_contact_model", "native_contact_pairs"]

CONTACT_MAP_CUTOFF = 0.8  # nm: a Calpha pair closer than this is a formed contact (the CASP contact definition)
CONTACT_MAP_SEPARATION = 4  # pairs at least this far apart along the chain (as Q's native contacts)
CONTACT_MAP_SHARE = 0.02  # a pair is a bit if formed in more than this share of the frames and less than 1 - it
CONTACT_MAP_MAX_PAIRS = 64  # the most variable pairs are kept (formed share closest to one half)
CONTACT_MAP_MARGIN = 0.03  # the projection's margin around a pair's cutoff (a share of the cutoff)


def contact_map_pairs(xyz, *, cutoff: float = CONTACT_MAP_CUTOFF, min_separation: int = CONTACT_MAP_SEPARATION,
                      share: float = CONTACT_MAP_SHARE, max_pairs: int = CONTACT_MAP_MAX_PAIRS):
    """The pairs whose contacts make a frame's contact map: beads at least ``min_separation`` apart whose distance
    is below ``cutoff`` (nm) in more than ``share`` and less than ``1 - share`` of the frames ``xyz [N, n, 3]``,
    the ``max_pairs`` whose formed share is closest to one half, in chain order.

    Returns:
        ``(pairs [K, 2] int32, cutoffs [K] float32 nm)``; ``K = 0`` when no pair forms and breaks.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> line = np.cumsum(np.tile([[0.38, 0.0, 0.0]], (6, 1)), axis=0)
        >>> bent = line.copy(); bent[4:, 0] = 2 * bent[3, 0] - bent[4:, 0]; bent[4:, 1] = 0.5
        >>> xyz = np.concatenate([line + rng.normal(0, 0.01, (60, 6, 3)), bent + rng.normal(0, 0.01, (40, 6, 3))])
        >>> pairs, cutoffs = contact_map_pairs(xyz)
        >>> pairs.tolist(), cutoffs.astype(float).round(2).tolist()  # the fold-back brings beads 5 to 0 and 1 (0.63, 0.50 nm)
        ([[0, 5], [1, 5]], [0.8, 0.8])
    """
    x = np.asarray(xyz, np.float64)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"xyz must be [n_frames, n_beads, 3], got shape {x.shape}.")
    i, j = np.triu_indices(x.shape[1], k=min_separation)
    formed = sum((np.linalg.norm(c[:, i] - c[:, j], axis=-1) < cutoff).sum(0)  # in blocks: bounded memory
                 for c in np.array_split(x, max(1, len(x) // 20_000))) / max(len(x), 1)
    varied = np.flatnonzero((formed > share) & (formed < 1 - share))
    keep = np.sort(varied[np.argsort(np.abs(formed[varied] - 0.5), kind="stable")[:max_pairs]])
    pairs = np.stack([i[keep], j[keep]], 1).astype(np.int32).reshape(-1, 2)
    return pairs, np.full(len(pairs), cutoff, np.float32)


def native_contact_pairs(reference, topology=None):
    """The pairs of a contact map from a protein's native structure: its native contacts (Best, Hummer & Eaton:
    residues at least 4 apart with heavy atoms within 0.45 nm, or Calpha atoms within 0.8 nm for a Calpha-only
    structure; :func:`lss_jax.data.native.native_chain`), each formed below
    :data:`lss_jax.data.native.Q_TOLERANCE` (1.2) times its native Calpha distance: the contacts Q counts.

    Args:
        reference: the path of a structure file of the protein (PDB, all-atom or Calpha), or an
            ``mdtraj.Trajectory``.
        topology: the decoded atoms' ``mdtraj.Topology``, checked: one Calpha per residue of the reference's chain.

    Returns:
        ``(pairs [K, 2] int32, cutoffs [K] float32 nm)``, in chain order.

    Example:
        >>> from lss_jax.systems import trp_cage
        >>> pairs, cutoffs = native_contact_pairs(trp_cage.trp_cage_files()["pdb"], trp_cage.native_structure().topology)
        >>> len(pairs), bool(np.allclose(cutoffs, 1.2 * trp_cage.native_contacts().distances))
        (20, True)
    """
    try:
        native = native_chain(reference)
    except (OSError, ValueError) as err:
        raise ValueError(f"decoder contact_reference must be a structure file of the protein (a PDB, all-atom or "
                         f"Calpha) that mdtraj reads; {reference!r}: {err}") from err
    n = len(native.residues)
    calpha = topology is None or all(a.name == "CA" for a in topology.atoms)
    if topology is not None and (topology.n_atoms != n or not calpha):
        raise ValueError(f"decoder contact_reference: the reference's chain has {n} residues, the decoded atoms are "
                         f"{topology.n_atoms} atoms{'' if calpha else ', not Calpha only'}; native contacts index one "
                         f"Calpha bead per residue (decode the Calpha atoms of the same chain: "
                         f"atom_selection = 'name CA').")
    # native_chain lists the contacts in chain order already
    pairs = np.asarray(native.contacts.pairs, np.int32).reshape(-1, 2)
    return pairs, (Q_TOLERANCE * np.asarray(native.contacts.distances, np.float64)).astype(np.float32)


def contact_bits(xyz, pairs, cutoffs) -> np.ndarray:
    """``[N, K]`` float32: 1 where pair ``k`` of frame ``xyz [N, n, 3]`` is closer than ``cutoffs[k]`` (the units of
    ``xyz``)."""
    x = np.asarray(xyz)
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    d = np.linalg.norm(x[:, pairs[:, 0]] - x[:, pairs[:, 1]], axis=-1)
    return (d < np.asarray(cutoffs)[None]).astype(np.float32)


def _fourier(c: jax.Array, n: int) -> jax.Array:
    freqs = jnp.pi * 2.0 ** jnp.arange(n, dtype=c.dtype)
    angle = (c[..., None] * freqs.reshape((1,) * c.ndim + (-1,))).reshape(*c.shape[:-1], -1)
    return jnp.concatenate([c, jnp.sin(angle), jnp.cos(angle)], -1)


class ContactModel(nnx.Module):
    """``p(b | c)``: an autoregressive Bernoulli model of ``K`` contact bits ``b`` given conditions ``c [.., m]``,
    one MADE network (two masked hidden layers of ``hidden`` swish units; the condition, with Fourier features,
    reaches every unit): the logit of bit ``i`` depends on ``c`` and bits ``< i`` only.

    Example:
        >>> model = ContactModel(2, 5, hidden=16, rngs=nnx.Rngs(0))
        >>> b = jnp.zeros((3, 5))
        >>> jacobian = jax.jacobian(lambda b: model(jnp.zeros((1, 2)), b[None])[0])(jnp.zeros(5))
        >>> bool(jnp.all(jnp.triu(jacobian) == 0))  # logit i does not depend on bits >= i
        True
        >>> model.sample(jnp.full((3, 5), 0.5), jnp.zeros((3, 2))).shape
        (3, 5)
    """

    def __init__(self, cond_dim: int, n_bits: int, *, hidden: int = 256, n_frequencies: int = 6, rngs: nnx.Rngs):
        self.n_bits, self.n_frequencies = int(n_bits), int(n_frequencies)
        k = max(self.n_bits, 1)
        degree_in = np.arange(1, k + 1)  # bit i has degree i + 1; a hidden unit of degree d sees bits < d
        d1 = np.arange(hidden) % k
        d2 = np.arange(hidden) % k
        self.mask1 = nnx.Variable(jnp.asarray((degree_in[:, None] <= d1[None]).astype(np.float32)))
        self.mask2 = nnx.Variable(jnp.asarray((d1[:, None] <= d2[None]).astype(np.float32)))
        self.mask3 = nnx.Variable(jnp.asarray((d2[:, None] < degree_in[None]).astype(np.float32)))
        init = nnx.initializers.lecun_normal()
        width = cond_dim * (1 + 2 * n_frequencies)
        self.w1 = nnx.Param(init(rngs.params(), (k, hidden)))
        self.c1 = nnx.Linear(width, hidden, rngs=rngs)
        self.w2 = nnx.Param(init(rngs.params(), (hidden, hidden)))
        self.c2 = nnx.Linear(width, hidden, rngs=rngs)
        self.w3 = nnx.Param(init(rngs.params(), (hidden, k)) * 0.1)
        self.c3 = nnx.Linear(width, k, rngs=rngs)

    def __call__(self, c: jax.Array, b: jax.Array) -> jax.Array:
        """Logits ``[B, K]`` of every bit given ``c [B, m]`` and the bits ``b [B, K]`` before it."""
        f = _fourier(c.astype(jnp.float32), self.n_frequencies)
        b = b.astype(jnp.float32)
        h = jax.nn.swish(b @ (self.w1[...] * self.mask1[...]) + self.c1(f))
        h = jax.nn.swish(h @ (self.w2[...] * self.mask2[...]) + self.c2(f))
        return (h @ (self.w3[...] * self.mask3[...]) + self.c3(f))[..., :self.n_bits]

    def log_prob(self, c: jax.Array, b: jax.Array) -> jax.Array:
        """``log p(b | c)`` ``[B]`` (nats)."""
        return -jnp.sum(optax.sigmoid_binary_cross_entropy(self(c, b), b.astype(jnp.float32)), -1)

    def sample(self, u: jax.Array, c: jax.Array) -> jax.Array:
        """Bits ``[B, K]`` (float 0/1) from uniform variates ``u [B, K]`` at conditions ``c [B, m]``: bit ``i`` is
        ``u_i < p(b_i = 1 | c, b_<i)``, one network pass per bit."""
        def step(i, b):
            p = jax.nn.sigmoid(self(c, b)[:, i])
            return b.at[:, i].set((u[:, i] < p).astype(b.dtype))

        return jax.lax.fori_loop(0, self.n_bits, step, jnp.zeros(u.shape, jnp.float32))


def fit_contact_model(key: jax.Array, train, val, *, hidden: int = 256, batch_size: int = 256, max_epochs: int = 100,
                      patience: int = 10, progress: bool = True, checkpoint=None):
    """Train :class:`ContactModel` on ``(conditions [n, m], bits [n, K])`` by maximum likelihood
    (:func:`lss_jax.engine.train.fit`, early stopping on ``val``). Returns ``(model, TrainHistory)``."""
    from lss_jax.engine.train import fit

    k_init, k_fit = jax.random.split(key)
    train = tuple(jnp.asarray(a, jnp.float32) for a in train)
    val = tuple(jnp.asarray(a, jnp.float32) for a in val)
    model = ContactModel(train[0].shape[1], train[1].shape[1], hidden=hidden, rngs=nnx.Rngs(k_init))

    def loss_fn(model, batch):
        return -jnp.mean(model.log_prob(*batch))

    return fit(k_fit, model, loss_fn, train, val, optimizer=optax.adam(1e-3),
               batch_size=min(batch_size, len(train[0])), max_epochs=max_epochs, patience=patience,
               progress=progress, desc="contact model", checkpoint=checkpoint,
               run_id=f"contacts K={train[1].shape[1]} hidden={hidden}")


class PairTable(nnx.Variable):
    """The contact map's pairs and cutoffs (set from data, never trained)."""


class ContactFlow(nnx.Module):
    """The chain decoder with contact-map states: ``p(x | c) = sum_b p(b | c) p(x | c, b)`` (module docstring).

    A frame's noise is the field's prior sample followed by ``K`` normal variates, whose normal CDFs are the uniform
    variates of the contact bits' draw (:meth:`ContactModel.sample`); the field (a
    :class:`~lss_jax.decoder.chain.ChainField` conditioned on ``[c, b]``) carries the prior sample, and the chain is
    repaired onto the drawn bits: formed pairs within ``upper``, broken ones beyond ``lower`` (feature units).
    ``n_states`` is ``K`` (saved with a model, to rebuild it).

    Example:
        >>> from lss_jax.decoder.chain import ChainField
        >>> field = ChainField(6, 1 + 2, width=8, depth=1, heads=2, rngs=nnx.Rngs(0))
        >>> flow = ContactFlow(field, ContactModel(1, 2, hidden=8, rngs=nnx.Rngs(1)), np.array([[0, 4], [1, 5]]),
        ...                    np.full(2, 2.0))
        >>> flow.noise_dim, flow.sample(jnp.zeros((3, 20)), jnp.zeros((3, 1)), n_steps=2).shape
        (20, (3, 18))
    """

    def __init__(self, field, model: ContactModel, pairs, cutoffs, *, margin: float = CONTACT_MAP_MARGIN):
        self.field, self.model = field, model
        self.dim, self.n_states = field.noise_dim, model.n_bits
        self.pairs = PairTable(jnp.asarray(np.asarray(pairs, np.int32).reshape(-1, 2)))
        self.cutoffs = PairTable(jnp.asarray(np.asarray(cutoffs, np.float32)))
        self.margin = float(margin)

    @property
    def noise_dim(self) -> int:
        return self.dim + self.n_states

    def bits(self, z_bits: jax.Array, c: jax.Array) -> jax.Array:
        """Contact bits ``[B, K]`` for normal variates ``z_bits [B, K]`` at conditions ``c [B, m]``."""
        u = jax.scipy.stats.norm.cdf(z_bits.astype(jnp.float32))
        return self.model.sample(u, c.astype(jnp.float32))

    def field_condition(self, z: jax.Array, c: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The field's prior sample and condition for noise ``z [B, dim + K]``: ``(z[:, :dim], [c, bits])``."""
        b = self.bits(z[:, self.dim:], c)
        return z[:, :self.dim], jnp.concatenate([c.astype(z.dtype), b.astype(z.dtype)], -1)

    def sample(self, z: jax.Array, c: jax.Array, *, n_steps: int, solver: str = "heun") -> jax.Array:
        """Features ``[B, 3n]`` from noise ``z [B, dim + K]`` and conditions ``c [B, m]``: bits, flow, projection."""
        x0, cond = self.field_condition(z, c)
        x = self.field.sample(x0, cond, n_steps=n_steps, solver=solver, repair=False)
        bits = cond[:, cond.shape[1] - self.n_states:]
        cut = self.cutoffs[...]
        return self.field.repair(x, contacts=(self.pairs[...], (1 - self.margin) * cut, (1 + self.margin) * cut, bits))


def fit_contact_flow(key: jax.Array, train, val, frames, scale: float, config, fit_field, *, topology=None,
                     progress: bool = True, checkpoint=None):
    """The chain decoder with contact-map states (``decoder.state_features = "contact_map"``): the pairs of
    :func:`contact_map_pairs` on every frame ``frames [N, n, 3]`` (nm; the training frames then the validation
    frames, as ``train`` and ``val`` hold their features ``x`` and conditions ``c``), the :class:`ContactModel` of
    their bits given ``c``, the chain field trained on ``[c, bits]`` by ``fit_field`` (called as
    :func:`lss_jax.decoder.fit_feature_model`, which the caller passes), the whole a :class:`ContactFlow` (``scale``:
    the features' length unit, nm). With ``config.contact_reference``, the pairs are the reference's native contacts
    (:func:`native_contact_pairs`; ``topology``: the decoded atoms'). Without a pair that forms and breaks, the plain
    chain decoder.

    Returns:
        ``(network, critic (None), TrainHistory)`` as :func:`lss_jax.decoder.fit_feature_model`.
    """
    if config.contact_reference:
        pairs, cutoffs = native_contact_pairs(config.contact_reference, topology)
    else:
        pairs, cutoffs = contact_map_pairs(frames)
    plain = config.__class__(**{**config.__dict__, "states": 0})
    if len(pairs) == 0:
        return fit_field(key, train, val, config=plain, progress=progress, checkpoint=checkpoint)
    bits = contact_bits(frames, pairs, cutoffs)
    b_train, b_val = bits[:len(train[0])], bits[len(train[0]):]
    sub = None if checkpoint is None else type(checkpoint)(checkpoint.directory, f"{checkpoint.name}-contacts",
                                                            every=checkpoint.every, resume=checkpoint.resume)
    model, _ = fit_contact_model(jax.random.fold_in(key, 1), (train[1], b_train), (val[1], b_val), progress=progress,
                                 checkpoint=sub)
    with_bits = lambda data, b: (data[0], np.concatenate([np.asarray(data[1]), b], 1))  # noqa: E731
    field, critic, history = fit_field(key, with_bits(train, b_train), with_bits(val, b_val), config=plain,
                                       progress=progress, checkpoint=checkpoint)
    return ContactFlow(field, model, pairs, cutoffs / scale), critic, history
