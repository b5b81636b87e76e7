"""The decoder D: a conditional generative model of molecular structures given a latent point ``psi``.

Two generative models over two coordinate maps (:mod:`lss_jax.decoder.coordinates`):

* ``kind="flow"`` (default): conditional flow matching (:mod:`lss_jax.decoder.flow`), a regression
  objective with a validation loss, sampled by a fixed-step ODE solve;
* ``kind="wgan"``: the paper's conditional Wasserstein GAN with gradient penalty
  (:mod:`lss_jax.decoder.wgan`);
* ``kind="knn"``: retrieval, a training frame among the ``k`` nearest in latent space
  (:mod:`lss_jax.decoder.knn`): no new structures, MD's own; the yardstick of the generative ones;
* ``kind="chain"``: flow matching on centred, aligned Cartesian coordinates of a chain (a protein's Cα
  atoms) with a transformer over beads and a Gaussian-chain prior (:mod:`lss_jax.decoder.chain`); it has
  its own isotropic Cartesian map and ignores ``coordinates``;
* ``kind="meanflow"``: the flow's network trained on the average velocity over an interval, so that it samples in
  ``flow_steps`` (default 2) steps of one network evaluation each (:mod:`lss_jax.decoder.meanflow`);

each kind is one module that registers its training, untrained template and sampler in
:data:`lss_jax.decoder.kinds.KINDS` (the flow's is :mod:`lss_jax.decoder.flow_kind`), and this package
dispatches through it;

* ``coordinates="internal"`` (default): Z-matrix bond lengths, angles and torsions rebuilt by NeRF, so
  bonded geometry is generated directly;
* ``coordinates="cartesian"``: the paper's aligned Cartesian coordinates.

Both models train on :func:`lss_jax.engine.train.fit` (checkpoints, resume, progress, divergence handling), and
a fitted :class:`Decoder` is a value: network, coordinate map and sampling settings. Its noise is
addressed like the propagator's: frame ``t`` of trajectory ``b`` decodes from
``fold_in(fold_in(key, b), t)``, whatever the batch or chunk it is decoded in.

Why ``flow`` + ``internal`` is the default is measured in ``benchmarks/studies/decoders.py`` (``docs/decoder.md``).
"""

from __future__ import annotations

import collections
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct

from lss_jax.config import DECODERS, DecoderConfig
from lss_jax.decoder.chain import ChainField, TemplateStart, chain_loss, chain_prior, fit_chain_map, sample_chain
from lss_jax.decoder.contacts import (
    ContactFlow,
    ContactModel,
    contact_bits,
    contact_map_pairs,
    fit_contact_flow,
    native_contact_pairs,
)
from lss_jax.decoder.coordinates import (
    COORDINATES,
    CartesianMap,
    CoordinateMap,
    InternalMap,
    build_zmatrix,
    coordinate_map_arrays,
    coordinate_map_from_arrays,
    feature_dim,
    features_to_xyz,
    fit_cartesian_map,
    fit_coordinate_map,
    fit_internal_map,
    internal_coordinates,
    kabsch_superpose,
    nerf,
    xyz_to_features,
)
from lss_jax.decoder.distill import DISTILLABLE, distill_field
from lss_jax.decoder.flow import SOLVERS, VelocityField, flow_matching_loss, integrate_flow, sample_flow
from lss_jax.decoder.flow_kind import FLOW  # noqa: F401  (registers the "flow" kind; chain, knn, wgan register below)
from lss_jax.decoder.kinds import KINDS, DecoderKind, n_epochs
from lss_jax.decoder.knn import NeighbourDecoder, fit_neighbours, stored_rows
from lss_jax.decoder.meanflow import MEANFLOW  # noqa: F401  (registers the "meanflow" kind)
from lss_jax.decoder.states import (
    RARE_STATE_SHARE,
    StateAssignment,
    StateClassifier,
    StateFlow,
    assign_states,
    balanced_rows,
    distance_states,
    find_states,
    fit_state_classifier,
    rare_states,
)
from lss_jax.decoder.support import (
    SupportConstraint,
    fit_support,
    support_arrays,
    support_from_arrays,
    support_ratio,
)
from lss_jax.decoder.wgan import (
    WGAN,
    ConditionalCritic,
    ConditionalGenerator,
    CriticInfo,
    fit_wgan,
    gradient_penalty,
    wgan_critic_loss,
    wgan_generator_loss,
    wgan_train_step,
)

__all__ = [
    "DECODERS",
    "DecoderConfig",
    "Decoder",
    "fit_decoder",
    "fit_feature_model",
    "sample_features",
    "decode",
    "decode_fn",
    "decode_rows",
    "default_decode_block",
    "memory_noise",
    "memory_terms",
    "decoder_template",
    "DecoderKind",
    "KINDS",
    # re-exported from the submodules
    "COORDINATES", "CartesianMap", "InternalMap", "CoordinateMap", "build_zmatrix", "internal_coordinates", "nerf",
    "kabsch_superpose", "fit_cartesian_map", "fit_internal_map", "fit_coordinate_map", "xyz_to_features",
    "features_to_xyz", "feature_dim", "coordinate_map_arrays", "coordinate_map_from_arrays",
    "ChainField", "TemplateStart", "template_start", "chain_loss", "chain_prior", "fit_chain_map", "sample_chain",
    "SOLVERS", "VelocityField", "flow_matching_loss", "integrate_flow", "sample_flow", "distill_field", "distill_decoder",
    "WGAN", "ConditionalCritic", "ConditionalGenerator", "CriticInfo", "fit_wgan", "gradient_penalty",
    "wgan_critic_loss", "wgan_generator_loss", "wgan_train_step",
    "StateAssignment", "StateClassifier", "StateFlow", "assign_states", "distance_states", "find_states", "fit_state_classifier",
    "ContactFlow", "ContactModel", "contact_bits", "contact_map_pairs", "native_contact_pairs",
    "NeighbourDecoder", "fit_neighbours", "SupportConstraint", "fit_support", "support_ratio", "support_arrays", "support_from_arrays",
]

DISTILL_ITERATIONS = 20_000  # the distillation's default optimizer steps, at most

@struct.dataclass
class Decoder:
    """A fitted decoder: what generation needs to turn unit-box latent points into frames (a pytree;
    ``kind``, ``flow_steps`` and ``flow_solver`` are static).

    Attributes:
        kind: ``"flow"``, ``"wgan"``, ``"knn"``, ``"chain"`` or ``"meanflow"``.
        network: the velocity field (flow, chain), the average-velocity field (meanflow), the generator (wgan) or the
            stored frames (knn).
        coordinates: the coordinate map the network's features live in.
        flow_steps: steps of the sampling ODE (flow, chain) or of the average velocity (meanflow).
        critic: the WGAN critic (kept with the model for checkpoints and analysis; ``None`` otherwise).
        support: the training data's support constraint (``None``: none, e.g. models saved before it).
        redraws: at most this many new draws of a frame outside ``support``.
        flow_solver: the sampling ODE's solver (:data:`lss_jax.decoder.flow.SOLVERS`; ``"euler"`` for a distilled
            flow, :mod:`lss_jax.decoder.distill`).
        noise_memory: correlation ``rho`` of the noise of consecutive decoded frames of a trajectory
            (:func:`memory_noise`; 0: every frame's noise independent).
    """

    kind: str = struct.field(pytree_node=False)
    network: nnx.Module
    coordinates: CoordinateMap
    flow_steps: int = struct.field(pytree_node=False, default=10)
    critic: nnx.Module | None = None
    support: SupportConstraint | None = None
    redraws: int = struct.field(pytree_node=False, default=0)
    flow_solver: str = struct.field(pytree_node=False, default="heun")
    noise_memory: float = struct.field(pytree_node=False, default=0.0)

    @property
    def noise_dim(self) -> int:
        """Length of the per-frame noise vector."""
        return self.network.noise_dim


# --------------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------------


def fit_feature_model(key: jax.Array, train_data, val_data, *, config: DecoderConfig = DecoderConfig(),
                      progress: bool = True, checkpoint=None, states=None):
    """Train the generative model of ``config.kind`` on feature/condition pairs ``(x [n, D], c [n, m])``.

    Args:
        key: PRNG key.
        train_data, val_data: ``(x, c)`` float32 arrays (``val_data`` for early stopping and the record).
        config: decoder settings.
        progress: show a progress bar.
        checkpoint: optional :class:`lss_jax.engine.checkpoint.Checkpointer`.
        states: ``(train_labels [n], val_labels, n_states)``, structural states of the frames, split off first
            (classifier trained and calibrated, one-hot state appended to the condition) for a kind whose
            :attr:`lss_jax.decoder.kinds.DecoderKind.states` is set; a flow or chain network is then a
            :class:`lss_jax.decoder.states.StateFlow`.

    The kind's training is ``KINDS[config.kind].fit`` (:mod:`lss_jax.decoder.kinds`).

    Returns:
        ``(network, critic or None, TrainHistory)``.

    Example:
        >>> x = jax.random.normal(jax.random.key(0), (300, 2))
        >>> c = jax.random.uniform(jax.random.key(1), (300, 1))
        >>> net, _, history = fit_feature_model(jax.random.key(2), (x[:250], c[:250]), (x[250:], c[250:]),
        ...                                     config=DecoderConfig(hidden=(16,), iterations=10), progress=False)
        >>> sample_features(jax.random.key(3), "flow", net, jnp.zeros((4, 1))).shape
        (4, 2)
    """
    cfg = config.resolved()
    kind = KINDS[cfg.kind]
    train_data = tuple(jnp.asarray(a, jnp.float32) for a in train_data)
    val_data = tuple(jnp.asarray(a, jnp.float32) for a in val_data)
    classifier = None
    if states is not None and kind.states:
        classifier, train_data, val_data = _state_split(key, train_data, val_data, states, progress=progress,
                                                        checkpoint=checkpoint)
    return kind.fit(key, train_data, val_data, cfg, progress=progress, checkpoint=checkpoint, classifier=classifier)


def _state_split(key, train_data, val_data, states, *, progress, checkpoint):
    """The state classifier ``pi(psi)`` (trained, calibrated on every frame) and the training pairs with the
    one-hot state appended to the condition, the frames of rare states repeated (:func:`balanced_rows`)."""
    y_train, y_val, n_states = states
    sub = None if checkpoint is None else type(checkpoint)(checkpoint.directory, f"{checkpoint.name}-states",
                                                            every=checkpoint.every, resume=checkpoint.resume)
    classifier, _ = fit_state_classifier(
        jax.random.fold_in(key, 1), (train_data[1], y_train), (val_data[1], y_val), n_states,
        calibrate=(np.concatenate([train_data[1], val_data[1]]), np.concatenate([y_train, y_val])),
        progress=progress, checkpoint=sub)
    onehot = lambda y: jnp.asarray(np.eye(n_states, dtype=np.float32)[np.asarray(y)])  # noqa: E731
    # the weights are the classifier's; the flow learns p(x | psi, k), which repeating the frames of a rare
    # state leaves unchanged: up to 1 % of the training frames each, or the flow never learns the state
    rows = balanced_rows(np.asarray(y_train), n_states, RARE_STATE_SHARE)
    # a rare state's flow knows its frames' latent points only: it is asked about the nearest of them (every frame's)
    classifier.set_anchors(np.concatenate([np.asarray(train_data[1]), np.asarray(val_data[1])]),
                           np.concatenate([np.asarray(y_train), np.asarray(y_val)]),
                           rare_states(y_train, n_states, RARE_STATE_SHARE))
    train_data = (train_data[0][rows], jnp.concatenate([train_data[1][rows], onehot(np.asarray(y_train)[rows])], 1))
    val_data = (val_data[0], jnp.concatenate([val_data[1], onehot(y_val)], 1))
    return classifier, train_data, val_data


def _split_frames(arrays: list[np.ndarray], val_fraction: float):
    from lss_jax.data.pairs import split_trajectories

    return split_trajectories(arrays, val_fraction)


def fit_decoder(
    key: jax.Array,
    xyz,
    cond,
    *,
    topology=None,
    reference=None,
    config: DecoderConfig = DecoderConfig(),
    val_fraction: float = 0.1,
    progress: bool = True,
    checkpoint=None,
) -> tuple[Decoder, object]:
    """Fit a decoder ``p(x | c)`` on frames and their unit-box latent points.

    Args:
        key: PRNG key.
        xyz: one ``[n_frames, n_atoms, 3]`` array (nm) or a list of trajectories.
        cond: the matching ``[n_frames, m]`` latent points (or a list).
        topology: ``mdtraj.Topology`` of the atoms (needed for ``coordinates="internal"``: its bonds).
        reference: ``[n_atoms, 3]`` structure to superpose on (default: the first frame).
        config: decoder settings.
        val_fraction: trailing fraction of every trajectory held out for validation.
        progress: show a progress bar.
        checkpoint: optional :class:`lss_jax.engine.checkpoint.Checkpointer`.

    Returns:
        ``(Decoder, TrainHistory)``.

    Example:
        >>> from lss_jax.datasets import load_alanine_dipeptide
        >>> heavy = load_alanine_dipeptide("train", stride=50)
        >>> heavy = heavy.atom_slice(heavy.topology.select("not element H"))
        >>> cond = np.random.default_rng(0).uniform(size=(heavy.n_frames, 1)).astype(np.float32)
        >>> decoder, history = fit_decoder(jax.random.key(0), heavy.xyz, cond, topology=heavy.topology,
        ...                                config=DecoderConfig(hidden=(32,), iterations=20), progress=False)
        >>> decode(jax.random.key(1), decoder, cond[:3]).shape
        (3, 10, 3)
    """
    xyz_list = [np.asarray(xyz)] if not isinstance(xyz, (list, tuple)) else [np.asarray(x) for x in xyz]
    cond_list = [np.asarray(cond)] if not isinstance(cond, (list, tuple)) else [np.asarray(c) for c in cond]
    if len(xyz_list) != len(cond_list) or any(len(x) != len(c) for x, c in zip(xyz_list, cond_list)):
        raise ValueError("xyz and cond must hold the same trajectories with the same numbers of frames.")
    if any(x.ndim != 3 or x.shape[2] != 3 for x in xyz_list) or any(c.ndim != 2 for c in cond_list):
        raise ValueError("xyz must be [n_frames, n_atoms, 3] and cond [n_frames, m] per trajectory.")
    if config.coordinates == "internal" and config.kind != "chain" and topology is None:
        raise ValueError("internal coordinates need the topology (its bonds); pass topology= or use "
                         "coordinates='cartesian'.")
    reference = xyz_list[0][0] if reference is None else np.asarray(reference)
    train_x, val_x = _split_frames(xyz_list, val_fraction)
    train_c, val_c = _split_frames(cond_list, val_fraction)
    train_x, val_x = np.concatenate(train_x), np.concatenate(val_x)
    if len(val_x) == 0:
        raise ValueError("no validation frames: give longer trajectories or a larger val_fraction.")
    cmap = (fit_chain_map(train_x, reference) if config.kind == "chain"
            else fit_coordinate_map(config.coordinates, train_x, reference, topology))
    train = (xyz_to_features(cmap, train_x), np.concatenate(train_c).astype(np.float32))
    val = (xyz_to_features(cmap, val_x), np.concatenate(val_c).astype(np.float32))
    states = None
    torsion_states = config.kind in ("flow", "meanflow") and isinstance(cmap, InternalMap)
    if torsion_states and config.states > 0 and feature_dim(cmap) > 0:
        zmatrix = np.asarray(cmap.zmatrix)
        torsions = [internal_coordinates(x, zmatrix)[2] for x in (train_x, val_x)]
        # states are a partition of conformations: found on every frame (a rare basin may sit in the held-out
        # part), kept only if each has frames to train the flow on
        found = find_states(np.concatenate(torsions), max_states=config.states, tail=config.state_tail)
        labels = [assign_states(found, t) for t in torsions]
        if found.n_states >= 2 and np.bincount(labels[0], minlength=found.n_states).min() == 0:
            found = find_states(torsions[0], max_states=config.states, tail=config.state_tail)
            labels = [assign_states(found, t) for t in torsions]
        if found.n_states >= 2:
            states = (labels[0], labels[1], found.n_states)
    contact_map = config.kind == "chain" and config.states > 0 and config.state_features == "contact_map"
    if config.kind == "chain" and config.states > 0 and not contact_map:
        # a chain's states are tertiary: k-means in distance space, on every frame (as the torsion states)
        labels = distance_states(np.concatenate([train_x, val_x]), max_states=config.states,
                                 features=config.state_features)
        n_states = int(labels.max()) + 1
        if n_states >= 2:
            states = (labels[:len(train_x)], labels[len(train_x):], n_states)
    if contact_map:  # the state is the frame's whole contact map, drawn by an autoregressive model of psi
        network, critic, history = fit_contact_flow(key, train, val, np.concatenate([train_x, val_x]),
                                                    float(cmap.std[0]), config, fit_feature_model,
                                                    topology=topology, progress=progress, checkpoint=checkpoint)
    else:
        network, critic, history = fit_feature_model(key, train, val, config=config, progress=progress,
                                                     checkpoint=checkpoint, states=states)
    support = None
    if topology is not None and (topology.n_bonds or all(a.name == "CA" for a in topology.atoms)):
        support = fit_support(np.concatenate([train_x, val_x]), topology, margin=config.support_margin)
    if isinstance(network, StateFlow) and support is not None:
        # a rare state's frame its flow does not reproduce inside the support is not an anchor
        network.prune_anchors(jax.random.fold_in(key, 3), cmap, support, n_steps=config.flow_steps,
                              solver=config.flow_solver)
    decoder = Decoder(config.kind, network, cmap, config.flow_steps, critic, support, config.redraws,
                      config.flow_solver, _noise_memory(config))
    if config.template_time:  # paths start at t0 from stored training frames (and their structural states)
        decoder = template_start(jax.random.fold_in(key, 4), decoder, np.concatenate([train_x, val_x]),
                                 np.concatenate([train[1], val[1]]), t0=config.template_time,
                                 neighbours=config.neighbours, max_frames=config.max_frames,
                                 labels=None if states is None else np.concatenate(states[:2]),
                                 features=np.concatenate([train[0], val[0]]))
    if config.distill_steps:
        sub = None if checkpoint is None else type(checkpoint)(checkpoint.directory, f"{checkpoint.name}-distill",
                                                                every=checkpoint.every, resume=checkpoint.resume)
        cfg = config.resolved()
        per_epoch = max(1, len(train[0]) // min(cfg.batch_size, len(train[0])))
        budget = cfg.iterations or n_epochs(cfg, per_epoch) * per_epoch  # the flow's own optimizer steps
        iterations = config.distill_iterations or min(budget, DISTILL_ITERATIONS)
        decoder = distill_decoder(jax.random.fold_in(key, 2), decoder, train[1], val[1], n_steps=config.distill_steps,
                                  iterations=iterations, progress=progress, checkpoint=sub)
    return decoder, history


def template_start(key: jax.Array, decoder: Decoder, xyz, cond, *, t0: float, neighbours: int = 20,
                   max_frames: int = 100_000, labels=None, features=None, state_features: str = "distances") -> Decoder:
    """``decoder`` (a trained chain decoder) with every path started at time ``t0`` from one of its training frames
    ``xyz [N, n_atoms, 3]`` near the condition (their unit-box latent points ``cond [N, m]``; at most
    ``max_frames`` stored, a random subset from ``key``): :class:`lss_jax.decoder.chain.TemplateStart`, what
    ``decoder.template_time`` makes :func:`fit_decoder` build. ``labels [N]``: the frames' structural states
    (default: :func:`distance_states` of ``xyz`` on ``state_features``, as :func:`fit_decoder` finds them, when the
    decoder has states; give the ``decoder.state_features`` setting the decoder was trained with);
    ``features [N, 3 n_atoms]``: the frames' features when already computed (default: from ``xyz``).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> xyz = np.cumsum(rng.normal(0.0, 0.2, size=(60, 4, 3)), axis=1).astype(np.float32)
        >>> c = rng.uniform(size=(60, 1)).astype(np.float32)
        >>> dec, _ = fit_decoder(jax.random.key(0), xyz, c, config=DecoderConfig(kind="chain", hidden=(8,),
        ...                      iterations=2, states=0, redraws=0), progress=False)
        >>> started = template_start(jax.random.key(1), dec, xyz, c, t0=0.5, neighbours=5)
        >>> type(started.network).__name__, decode(jax.random.key(2), started, c[:3]).shape
        ('TemplateStart', (3, 4, 3))
    """
    network = decoder.network
    if decoder.kind != "chain" or isinstance(network, TemplateStart):
        raise ValueError(f"a template start is for a chain decoder sampled by its own flow, got a {decoder.kind!r} "
                         f"decoder ({type(network).__name__}).")
    xyz, cond = np.asarray(xyz, np.float32), np.asarray(cond, np.float32)
    n_states = int(getattr(network, "n_states", 0))
    if labels is None:
        labels = (distance_states(xyz, max_states=n_states, features=state_features) if n_states
                  else np.zeros(len(xyz), np.int32))
    rows = stored_rows(key, len(xyz), max_frames)
    features = xyz_to_features(decoder.coordinates, xyz[rows]) if features is None else np.asarray(features)[rows]
    return decoder.replace(network=TemplateStart(network, cond[rows], features, np.asarray(labels)[rows],
                                                 k=neighbours, t0=t0))


def distill_decoder(key: jax.Array, decoder: Decoder, train_cond, val_cond, *, n_steps: int = 1, progress: bool = True,
                    checkpoint=None, **settings) -> Decoder:
    """``decoder`` (a trained flow or chain decoder) with its network distilled into one sampled with ``n_steps``
    Euler steps (:func:`lss_jax.decoder.distill.distill_field`; ``settings`` go to it). Everything else (coordinate
    map, support, redraws, a flow's state classifier) is the teacher's.

    Example:
        >>> cmap = fit_cartesian_map(np.random.default_rng(0).normal(size=(40, 2, 3)), np.zeros((2, 3)))
        >>> field = VelocityField(6, 1, hidden=(8,), rngs=nnx.Rngs(0))
        >>> c = np.random.default_rng(1).uniform(size=(40, 1)).astype(np.float32)
        >>> fast = distill_decoder(jax.random.key(0), Decoder("flow", field, cmap), c[:30], c[30:], iterations=5,
        ...                        batch_size=8, progress=False)
        >>> fast.flow_steps, fast.flow_solver, decode(jax.random.key(1), fast, c[:3]).shape
        (1, 'euler', (3, 2, 3))
    """
    if decoder.kind not in DISTILLABLE:
        raise ValueError(f"only flow-matching decoders ({', '.join(DISTILLABLE)}) can be distilled, got {decoder.kind!r}.")
    student, _ = distill_field(key, decoder.network, train_cond, val_cond, n_steps=n_steps,
                               teacher_steps=decoder.flow_steps, teacher_solver=decoder.flow_solver, progress=progress,
                               checkpoint=checkpoint, **settings)
    return decoder.replace(network=student, flow_steps=n_steps, flow_solver="euler")


def decoder_template(config: DecoderConfig, coordinates: CoordinateMap, cond_dim: int, n_states: int = 0) -> Decoder:
    """An untrained decoder with the structure ``config`` gives, for loading saved weights into (``n_states``: the
    structural states a flow was trained with, 0 for none)."""
    cfg = config.resolved()
    steps, solver = cfg.sampler
    network, critic = KINDS[cfg.kind].template(cfg, feature_dim(coordinates), cond_dim, n_states, nnx.Rngs(0))
    return Decoder(cfg.kind, network, coordinates, steps, critic, redraws=cfg.redraws, flow_solver=solver,
                   noise_memory=_noise_memory(cfg))


def _noise_memory(config: DecoderConfig) -> float:
    """The decoder's ``rho``: ``"auto"`` is 0 until :func:`lss_jax.fit_lss` calibrates it."""
    return 0.0 if config.noise_memory == "auto" else float(config.noise_memory)


# --------------------------------------------------------------------------------------------------
# sampling
# --------------------------------------------------------------------------------------------------


def _features_from_noise(kind: str, network, z, cond, flow_steps: int, solver: str = "heun"):
    """Features ``[B, D]`` of the ``kind`` network from the noise ``z [B, noise_dim]`` and ``cond [B, m]``."""
    return KINDS[kind].sample(network, z, cond, flow_steps, solver)


def sample_features(key: jax.Array, kind: str, network, cond, *, flow_steps: int = 10,
                    solver: str = "heun") -> jax.Array:
    """Standardized features ``[B, D]`` for conditions ``cond [B, m]``, one noise draw from ``key`` for the batch.

    Example:
        >>> gen = ConditionalGenerator(3, 1, noise_dim=2, hidden=(8,), rngs=nnx.Rngs(0))
        >>> sample_features(jax.random.key(0), "wgan", gen, jnp.zeros((5, 1))).shape
        (5, 3)
    """
    cond = jnp.asarray(cond, jnp.float32)
    z = jax.random.normal(key, (cond.shape[0], network.noise_dim))
    return _features_from_noise(kind, network, z, cond, flow_steps, solver)


_DECODE_CACHE: dict = {}


def row_keys(key: jax.Array, rows_b, rows_t, attempts) -> jax.Array:
    """The decoder noise keys of rows: ``fold_in(fold_in(key, b), t)``, and for a redraw ``a >= 1`` of the frame
    ``fold_in`` of that by ``a`` (so a first draw never depends on whether redraws exist)."""

    def one(b, t, a):
        k = jax.random.fold_in(jax.random.fold_in(key, b), t)
        redrawn = jax.random.key_data(jax.random.fold_in(k, a))
        return jax.random.wrap_key_data(jnp.where(a > 0, redrawn, jax.random.key_data(k)),
                                        impl=jax.random.key_impl(k))

    return jax.vmap(one)(rows_b, rows_t, attempts)


# a frame's memory noise sums the innovations of its last K frames, K the first with rho^K <= MEMORY_TAIL
MEMORY_TAIL = 0.01


def memory_terms(rho: float) -> int:
    """Innovations in a frame's noise at memory ``rho``: the smallest ``K`` with ``rho^K <= MEMORY_TAIL`` (1 at 0).

    Example:
        >>> memory_terms(0.0), memory_terms(0.334), memory_terms(0.9)
        (1, 5, 44)
    """
    return 1 if rho == 0 else max(1, int(np.ceil(np.log(MEMORY_TAIL) / np.log(rho))))


def memory_noise(key: jax.Array, rows_b, rows_t, attempts, noise_dim: int, rho: float) -> jax.Array:
    """Decoder noise ``[N, noise_dim]`` of rows (frame ``rows_t[i]`` of trajectory ``rows_b[i]``, draw
    ``attempts[i]``), standard normal for every frame, correlated ``rho`` between consecutive frames of a trajectory.

    The noise of frame ``t`` is a truncated AR(1) sum ``z_t = c sum_(k < K) rho^k e_(t-k)`` of the innovations
    ``e_s``, each the standard normal of frame ``s``'s :func:`row_keys` (``K``: :func:`memory_terms`; frames
    before 0 have keys of their own); the frame's own innovation is that of its draw, the earlier ones their first
    draws', so a redraw keeps the memory. ``c = sqrt((1 - rho^2) / (1 - rho^(2K)))`` makes every frame's noise
    exactly standard normal (the decoder's per-frame law is unchanged), and consecutive frames correlate
    ``rho (1 - rho^(2K-2)) / (1 - rho^(2K))``, below ``rho`` by at most ``rho^(2K-1) <= 10^-4 / rho``. A frame's noise
    depends on the key, its trajectory and frame only, so chunks and resumed runs keep the bits; at ``rho = 0`` it is the first
    innovation itself (the bits of a decoder without memory).

    Example:
        >>> b, t = np.zeros(20_000, np.int32), np.arange(20_000, dtype=np.int32)
        >>> z = np.asarray(memory_noise(jax.random.key(0), b, t, np.zeros_like(b), 1, 0.5))[:, 0]
        >>> round(float(z.std()), 1), round(float(np.corrcoef(z[:-1], z[1:])[0, 1]), 1)
        (1.0, 0.5)
    """
    draw = jax.vmap(lambda k: jax.random.normal(k, (noise_dim,)))
    z = draw(row_keys(key, rows_b, rows_t, attempts))
    terms = memory_terms(rho)
    if terms == 1:
        return z
    first = jnp.zeros_like(attempts)
    for k in range(1, terms):
        z = z + rho ** k * draw(row_keys(key, rows_b, rows_t - k, first))
    return z * np.sqrt((1 - rho ** 2) / (1 - rho ** (2 * terms)))


def decode_fn(decoder: Decoder, precision: str = "float32"):
    """A jitted ``(params, cmap, support, key, u [N, m], rows_b [N], rows_t [N], attempts [N]) -> (xyz [N, n_atoms,
    3], ratio [N])`` for this decoder's network (cached per network structure, so loading or chunking never
    recompiles): the noise of row ``i`` comes from :func:`row_keys` (:func:`memory_noise`), and ``ratio`` is the frame's
    :func:`lss_jax.decoder.support.support_ratio` (``inf`` without a support constraint). For a
    :class:`~lss_jax.decoder.states.StateFlow` the first half of the redraws (``1 <= attempts <= redraws // 2``)
    keep the first draw's state variate (the noise's last entry) and draw the flow's noise afresh, so the support
    constraint redraws a frame within its state and leaves the states' weights ``pi(psi)`` alone; the second half
    draw the state afresh too, for a frame its state cannot place inside the support at this ``psi``.

    Returns:
        ``(fn, params)`` with ``params`` the network's state.
    """
    from lss_jax.propagator import with_precision

    graphdef, params = nnx.split(decoder.network)
    cache_key = (graphdef, decoder.kind, decoder.flow_steps, decoder.flow_solver, precision,
                 type(decoder.coordinates).__name__, decoder.support is None, decoder.redraws, decoder.noise_memory)
    if cache_key not in _DECODE_CACHE:
        kind, flow_steps, solver, noise_dim = decoder.kind, decoder.flow_steps, decoder.flow_solver, decoder.noise_dim
        rho = decoder.noise_memory

        def features(params, z, u):
            return _features_from_noise(kind, nnx.merge(graphdef, params), z, u, flow_steps, solver)

        features = with_precision(features, precision)

        keeps_state = isinstance(decoder.network, StateFlow)
        keep_state_redraws = decoder.redraws // 2

        @jax.jit
        def fn(params, cmap, support, key, u, rows_b, rows_t, attempts):
            z = memory_noise(key, rows_b, rows_t, attempts, noise_dim, rho)
            if keeps_state:  # the first half of the redraws keep the first draw's state variate: fresh flow noise
                kept = (attempts > 0) & (attempts <= keep_state_redraws)
                last = jax.lax.cond(  # first draws (every row of a first pass) skip drawing it again
                    jnp.any(kept), lambda: memory_noise(key, rows_b, rows_t, jnp.zeros_like(attempts), noise_dim,
                                                        rho)[:, -1],
                    lambda: z[:, -1])
                z = z.at[:, -1].set(jnp.where(kept, last, z[:, -1]))
            xyz = features_to_xyz(cmap, features(params, z, u).astype(jnp.float32))
            ratio = (jnp.full(xyz.shape[0], jnp.inf, jnp.float32) if support is None
                     else support_ratio(support, xyz))
            return xyz, ratio

        _DECODE_CACHE[cache_key] = fn
    return _DECODE_CACHE[cache_key], params


# rows per compiled decode call: 4096 on a CPU; on an accelerator a block of 4096 frames is a few hundred microseconds
# of work behind a dispatch and the host's padding and copies, so blocks are larger there (an H200 decodes alanine
# dipeptide 2.4x faster at 16 384-65 536 rows: benchmarks/perf/decoding.py --blocks, docs/benchmarks.md), up to 65 536
# rows of at most 32 atoms and fewer rows for larger molecules (the chain decoder's attention holds n_atoms^2 numbers
# per row), never under 4096
DECODE_BLOCK = {"cpu": 4096}
ACCELERATOR_DECODE_BLOCK = 65_536
ACCELERATOR_BLOCK_ATOMS = 32


def default_decode_block(platform: str | None = None, n_atoms: int | None = None) -> int:
    """Rows per decode call on ``platform`` (default: the default backend's): 4096 on a CPU; on an accelerator
    65 536 for molecules of up to 32 atoms, a power of two shrinking with the square of ``n_atoms`` beyond, at least
    4096. A frame's bits depend on the block size, so for one model on one platform they never depend on how many
    frames are decoded with it.

    Example:
        >>> default_decode_block("cpu"), default_decode_block("gpu", 20), default_decode_block("gpu", 64)
        (4096, 65536, 16384)
    """
    platform = platform or jax.default_backend()
    if platform in DECODE_BLOCK:
        return DECODE_BLOCK[platform]
    scale = (ACCELERATOR_BLOCK_ATOMS / max(n_atoms or 1, ACCELERATOR_BLOCK_ATOMS)) ** 2
    return max(DECODE_BLOCK["cpu"], 1 << int(np.floor(np.log2(ACCELERATOR_DECODE_BLOCK * scale))))


def decode_rows(key: jax.Array, decoder: Decoder, u, rows_b, rows_t, *, block: int | None = None,
                precision: str = "float32", progress: bool | None = None,
                devices: Sequence[jax.Device] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decode rows ``u [N, m]`` (unit box), row ``i`` being frame ``rows_t[i]`` of trajectory ``rows_b[i]``, with
    the support constraint's redraws.

    Rows are decoded in blocks of exactly ``block`` (default: :func:`default_decode_block` of the devices' platform;
    the last one padded): one compiled shape, so a frame's bits depend on its key, trajectory, frame and condition
    only, never on the rows decoded with it (XLA may round a reduction differently for another batch size). A frame
    outside the decoder's support is drawn again (draw ``a`` from :func:`row_keys` with ``attempts = a``; a
    :class:`~lss_jax.decoder.states.StateFlow` keeps the first draw's state in the first half, :func:`decode_fn`)
    until one is inside, at most ``decoder.redraws`` times; if none is, the draw closest to the support (largest
    ratio, the first of equals) is kept.

    Blocks are dispatched ahead of the copies back (the host pads and copies while the device computes) and, with
    ``devices`` (e.g. the host devices of :func:`lss_jax.use_every_core`), in turn to each device; the bits do not
    depend on either.

    Returns:
        ``(xyz [N, n_atoms, 3] float32, draws [N] int)``: ``draws`` is the index of the kept draw (0: the first),
        or ``redraws + 1`` for a frame that stayed outside the support after every redraw.
    """
    from lss_jax.engine.progress import progress_bar

    u = np.asarray(u, np.float32).reshape(-1, np.shape(u)[-1])
    rows_b, rows_t = np.asarray(rows_b, np.int32), np.asarray(rows_t, np.int32)
    devices = list(devices) if devices else [None]
    n_atoms = decoder.coordinates.reference.shape[0]
    block = block or default_decode_block(None if devices[0] is None else devices[0].platform, n_atoms)
    fn, params = decode_fn(decoder, precision)
    # the network, map and support once per device; None: wherever JAX puts them (the default device)
    state = [(params, decoder.coordinates, decoder.support) if d is None
             else jax.device_put((params, decoder.coordinates, decoder.support), d) for d in devices]
    ahead = 2 * len(devices)  # blocks in flight

    def run(idx, attempt, bar=None):
        xyz = np.empty((len(idx), n_atoms, 3), np.float32)
        ratio = np.empty(len(idx), np.float32)
        pending = collections.deque()

        def collect():
            start, n, out, r = pending.popleft()
            xyz[start:start + n] = np.asarray(out)[:n]
            ratio[start:start + n] = np.asarray(r)[:n]

        starts = range(0, len(idx), block)
        for i, start in enumerate(starts if bar is None else bar(starts)):
            sel = idx[start:start + block]
            pad = lambda a: np.pad(a[sel], [(0, block - len(sel))] + [(0, 0)] * (a.ndim - 1))  # noqa: E731
            rows = (pad(u), pad(rows_b), pad(rows_t), np.full(block, attempt, np.int32))
            device = devices[i % len(devices)]
            if device is not None:
                rows = jax.device_put(rows, device)
            pending.append((start, len(sel), *fn(*state[i % len(devices)], key, *rows)))
            if len(pending) >= ahead:
                collect()
        while pending:
            collect()
        return xyz, ratio

    n = len(u)
    show = -(-n // block) >= 4 if progress is None else progress
    bar = lambda it: progress_bar(iterable=it, desc="decode", unit="chunk", disable=not show)  # noqa: E731
    xyz, best = run(np.arange(n), 0, bar)
    draws = np.zeros(n, np.int64)
    todo = np.flatnonzero(best < 1.0)
    for attempt in range(1, decoder.redraws + 1):
        if not len(todo):
            break
        new_xyz, ratio = run(todo, attempt)
        better = ratio > best[todo]
        xyz[todo[better]], best[todo[better]], draws[todo[better]] = new_xyz[better], ratio[better], attempt
        todo = todo[ratio < 1.0]
    draws[best < 1.0] = decoder.redraws + 1
    return xyz, draws


def decode(key: jax.Array, decoder: Decoder, cond, *, precision: str = "float32") -> np.ndarray:
    """Frames ``[N, n_atoms, 3]`` (nm) for unit-box latent points ``cond [N, m]`` (row ``i`` is trajectory ``i``,
    frame 0 of the addressed noise; :meth:`lss_jax.LSS.decode_unit` decodes trajectories in chunks).

    Example:
        >>> cmap = fit_cartesian_map(np.zeros((2, 2, 3)) + np.arange(2)[:, None, None], np.zeros((2, 3)))
        >>> gen = ConditionalGenerator(6, 1, noise_dim=2, hidden=(4,), rngs=nnx.Rngs(0))
        >>> decode(jax.random.key(0), Decoder("wgan", gen, cmap), np.zeros((3, 1))).shape
        (3, 2, 3)
    """
    cond = np.asarray(cond, np.float32)
    rows = np.arange(cond.shape[0], dtype=np.int32)
    return decode_rows(key, decoder, cond, rows, np.zeros_like(rows), precision=precision, progress=False)[0]
