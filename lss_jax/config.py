"""What an LSS is fitted with. The checks of training input shared by the library and the command line live in
:mod:`lss_jax.data.checks` (one place, so that both say the same thing about the same mistake) and are re-exported
here.

:class:`LSSConfig` nests one configuration per part, each validated where it is defined:

* :class:`DataConfig`: the features, the decoded atoms and how every trajectory is split;
* :class:`EncoderConfig`: the SRV encoder and the latent dimension it chooses;
* :class:`PropagatorConfig`: the MDN propagator (and its bootstrap ensemble);
* :class:`DecoderConfig`: the decoder (also ``lss_jax.decoder.DecoderConfig``).

Each network's fit takes its own configuration (:func:`lss_jax.encoder.fit_srv`, :func:`lss_jax.propagator.fit_mdn`,
:func:`lss_jax.propagator.ensemble.fit_mdn_ensemble`, :func:`lss_jax.decoder.fit_decoder`). This module imports no network
code: the networks import it, never the other way round.

The flat configuration of earlier lss_jax (``encoder_hidden``, ``n_components``, ``decoder_iterations``, ...: one
field per setting) is still read by :meth:`LSSConfig.from_dict` and :meth:`LSSConfig.replace` (TOML files, the
``lss.json`` of saved models, ``LSS(...)`` keywords), with a :class:`FlatConfigWarning` that names the new spelling.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import sys
import warnings
from typing import Any, Mapping, Sequence

from lss_jax.data.checks import check_atom_selection, check_training_data, check_training_input
from lss_jax.data.featurize import FeatureSpec

__all__ = [
    "LSSConfig",
    "DataConfig",
    "EncoderConfig",
    "PropagatorConfig",
    "DecoderConfig",
    "FlatConfigWarning",
    "DECODERS",
    "STATE_FEATURES",
    "COORDINATES",
    "check_training_input",
    "check_training_data",
    "check_atom_selection",
]


def _check_positive_ints(owner: str, values: dict) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{owner}{name} must be a positive integer, got {value!r}.")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """What the networks train on: the encoder's features, the decoded atoms, and how every trajectory is split.

    Attributes:
        torsions: torsion features (:class:`lss_jax.data.featurize.FeatureSpec`: ``phi, psi, omega, chi1..chi4``,
            ``"chi"`` for all four, ``"ca"`` for Cα pseudo-torsions).
        distances: distance features: ``"heavy"``, ``"ca"``, an mdtraj selection, or ``None``.
        atom_selection: the atoms the decoder generates (an mdtraj selection; empty: all atoms).
        val_fraction: the trailing fraction of every trajectory (of each network's part of it) held out for
            early stopping, in (0, 0.5).
        encoder_fraction: < 1: cross-fitting. The encoder trains on this leading fraction of every trajectory,
            the propagator on the rest, so the propagator learns the latent kinetics of frames the encoder never
            saw (as new MD will look to it) instead of the encoder's in-sample ones, whose slowest process is
            slower than out of sample. A split of the data between the networks, so it lives here. 1 (default):
            encoder and propagator train on the same frames.

    Example:
        >>> DataConfig(distances="ca").feature_spec
        FeatureSpec(torsions=('phi', 'psi', 'chi'), distances='ca')
        >>> try:
        ...     DataConfig(val_fraction=0.7)
        ... except ValueError as err:
        ...     print(err)
        val_fraction must be in (0, 0.5), got 0.7.
    """

    torsions: tuple[str, ...] = ("phi", "psi", "chi")
    distances: str | None = "heavy"
    atom_selection: str = "not element H"
    val_fraction: float = 0.1
    encoder_fraction: float = 1.0

    def __post_init__(self):
        if not 0 < self.val_fraction < 0.5:
            raise ValueError(f"val_fraction must be in (0, 0.5), got {self.val_fraction}.")
        if isinstance(self.encoder_fraction, bool) or not 0 < self.encoder_fraction <= 1:
            raise ValueError(f"encoder_fraction must be in (0, 1] (1: encoder and propagator train on the same frames; "
                             f"e.g. 0.5 for cross-fitting on halves), got {self.encoder_fraction!r}.")

    @property
    def feature_spec(self) -> FeatureSpec:
        """The encoder's features as a :class:`lss_jax.data.featurize.FeatureSpec`."""
        return FeatureSpec(torsions=tuple(self.torsions), distances=self.distances)


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """The SRV encoder (:func:`lss_jax.encoder.fit_srv`; defaults: the paper's architecture) and the latent
    dimension, which the encoder's implied timescales choose.

    Attributes:
        latent_dim: the latent dimension; ``None``: the one at the largest gap of the implied timescales among
            ``max_latent_dim`` (:func:`lss_jax.encoder.choose_latent_dim`).
        max_latent_dim: eigenfunctions the SRV learns when ``latent_dim`` is ``None``.
        min_latent_dim: the smallest latent dimension the gap may choose (the proteins' protocols: 2; a
            one-dimensional latent space lost the folding kinetics of the villin headpiece, docs/trp_cage.md).
        hidden, batch_norm: the network's hidden layer widths and batch normalization.
        learning_rate, batch_size, epochs, patience: Adam and early stopping on the validation VAMP-2 score.
        linear_floor: the linear floor (on by default): an SRV that loses a slow process TICA finds on the same
            features, lag and split (one of TICA's processes slower than the lag more than 10 % shorter in the SRV,
            by more than two bootstrap standard errors, on pairs TICA was not fitted to: the training part
            cross-fitted, and the validation pairs; :func:`lss_jax.encoder.below_floor`) is trained again from TICA
            with a residual linear path, which never ends below it (:func:`lss_jax.encoder.fit_srv`). ``False``
            keeps the plain SRV whatever the check says; the comparison itself is always made, printed and
            recorded (``info["encoder"]["linear_floor"]``).

    Example:
        >>> EncoderConfig().n_outputs, EncoderConfig(latent_dim=2).n_outputs
        (4, 2)
        >>> try:
        ...     EncoderConfig(batch_size=0)
        ... except ValueError as err:
        ...     print(err)
        encoder.batch_size must be a positive integer, got 0.
    """

    latent_dim: int | None = None
    max_latent_dim: int = 4
    min_latent_dim: int = 1
    hidden: tuple[int, ...] = (100, 100)
    batch_norm: bool = True
    learning_rate: float = 1e-3
    batch_size: int = 2000
    epochs: int = 50
    patience: int = 5
    linear_floor: bool = True

    def __post_init__(self):
        _check_positive_ints("encoder.", {"max_latent_dim": self.max_latent_dim, "min_latent_dim": self.min_latent_dim,
                                          "batch_size": self.batch_size,
                                          "epochs": self.epochs, "patience": self.patience})
        if self.latent_dim is not None and (not isinstance(self.latent_dim, int) or isinstance(self.latent_dim, bool)
                                            or self.latent_dim < 1):
            raise ValueError(f"encoder.latent_dim must be a positive integer or None, got {self.latent_dim!r}.")
        if not isinstance(self.linear_floor, bool):
            raise ValueError(f"encoder.linear_floor must be true or false, got {self.linear_floor!r}.")
        if self.min_latent_dim > self.max_latent_dim:
            raise ValueError(f"encoder.min_latent_dim ({self.min_latent_dim}) is above encoder.max_latent_dim "
                             f"({self.max_latent_dim}); raise max_latent_dim or lower min_latent_dim.")

    @property
    def n_outputs(self) -> int:
        """Eigenfunctions the SRV learns: ``latent_dim``, or ``max_latent_dim`` to choose among."""
        return self.latent_dim if self.latent_dim is not None else self.max_latent_dim


@dataclasses.dataclass(frozen=True)
class PropagatorConfig:
    """The MDN propagator (:func:`lss_jax.propagator.fit_mdn`; defaults: the paper's architecture), its bootstrap
    ensemble (:func:`lss_jax.propagator.ensemble.fit_mdn_ensemble`) and the walls of its unit box in generation.

    Attributes:
        n_components: Gaussians in the mixture (``C``).
        hidden: hidden layer widths.
        scale_floor: the smallest standard deviation of a component.
        learning_rate, batch_size, epochs, patience: Adam with a cosine decay over ``epochs``, early stopping on the
            validation NLL.
        boundary: what generation does with a step out of the unit box (``"reflect"``, ``"clip"`` or ``"none"``;
            :func:`lss_jax.propagator.scaling.apply_boundary`).
        ensemble_size: > 1: also train this many bootstrap propagators (uncertainty, ensemble spread); 0: none.

    Example:
        >>> PropagatorConfig().n_components, PropagatorConfig(ensemble_size=4).ensemble_size
        (24, 4)
    """

    n_components: int = 24
    hidden: tuple[int, ...] = (100, 100)
    scale_floor: float = 1e-3
    learning_rate: float = 1e-3
    batch_size: int = 1024
    epochs: int = 60
    patience: int = 30
    boundary: str = "reflect"
    ensemble_size: int = 0

    def __post_init__(self):
        _check_positive_ints("propagator.", {"n_components": self.n_components, "batch_size": self.batch_size,
                                             "epochs": self.epochs, "patience": self.patience})
        if not isinstance(self.ensemble_size, int) or isinstance(self.ensemble_size, bool) or self.ensemble_size < 0 \
                or self.ensemble_size == 1:
            raise ValueError(f"propagator.ensemble_size must be 0 (no ensemble) or an integer >= 2, "
                             f"got {self.ensemble_size!r}.")


DECODERS = ("flow", "wgan", "knn", "chain", "meanflow")
STATE_FEATURES = ("distances", "contacts", "contact_map")  # what the chain decoder's structural states are
DISTILLABLE = ("flow", "chain")  # the decoder kinds that sample by integrating a flow (decoder.distill_steps)
FLOW_SOLVERS = ("heun", "midpoint", "euler", "rk4")  # the flow's sampling ODE solvers (lss_jax.decoder.flow.SOLVERS)
COORDINATES = ("internal", "cartesian")

# per-kind defaults where DecoderConfig says None
_DEFAULTS = {
    "flow": {"hidden": (256, 256, 256), "learning_rate": 1e-3, "epochs": 300, "lr_decay": True, "flow_steps": 10},
    # the flow's network, trained to be sampled in a few steps (lss_jax.decoder.meanflow) for a fixed number of steps:
    # its loss converges slower than the flow's: on alanine dipeptide's 100 ns validation, three training seeds,
    # 120 000 steps put the one-step F(phi, psi) within 0.031 kT of the 10-step flow, 60 000 (the flow's budget there)
    # up to 0.077 kT off (docs/decoder_record.md)
    "meanflow": {"hidden": (256, 256, 256), "learning_rate": 1e-3, "iterations": 120_000, "lr_decay": True,
                 "flow_steps": 2},
    # the paper's cWGAN-GP with 4x its 5000 iterations, the one change that helped on alanine dipeptide
    # (benchmarks/studies/decoders.py: a learning-rate decay, a wider critic or the condition in every layer did not)
    "wgan": {"hidden": (200, 200, 200), "learning_rate": 2e-4, "iterations": 20_000, "lr_decay": False, "flow_steps": 10},
    "knn": {"flow_steps": 10},  # nothing to train
    # hidden = (width,) * depth of the transformer over beads
    # (measured on Trp-cage, docs/decoder.md: with the fitted Gaussian prior, temperature 0.7 takes the conditional bias
    # of Q given psi to zero, +0.001 against -0.016 at 0.8)
    "chain": {"hidden": (64, 64, 64), "learning_rate": 1e-3, "epochs": 50, "lr_decay": True, "temperature": 0.7,
              "self_condition": False, "prior": "gaussian", "flow_steps": 10},
}


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """Settings of a decoder (``None``: the kind's default; :func:`lss_jax.decoder.fit_decoder`, ``LSSConfig.decoder``,
    also importable from :mod:`lss_jax.decoder`).

    Attributes:
        kind: ``"flow"``, ``"wgan"``, ``"knn"``, ``"chain"`` or ``"meanflow"`` (the flow trained to be sampled in
            ``flow_steps`` average-velocity steps, :mod:`lss_jax.decoder.meanflow`).
        coordinates: ``"internal"`` or ``"cartesian"``.
        hidden: hidden layer widths (flow: 3 x 256 swish; wgan: the paper's 3 x 200 swish, for both networks
            unless ``critic_hidden``; chain: ``(width,) * depth`` of its transformer, 3 x 64).
        learning_rate: Adam step size (flow: 1e-3 with a cosine decay to 1 %; wgan: 2e-4, constant).
        batch_size: frames per minibatch (wgan: per critic or generator update).
        epochs: passes over the training frames (flow: 300, so training grows with the data, up to ``max_steps``;
            wgan: as many as 20 000 generator updates need).
        max_steps: at most this many optimizer steps when training by epochs (flow: 60 000, which 300 epochs of
            the shipped alanine dipeptide and Trp-cage data stay below; 10^6 frames, 90 % of them for training,
            train for 18 epochs).
        iterations: if set, train for this many optimizer steps (wgan: generator updates) instead (meanflow: 120 000
            by default, whatever the data's size).
        patience: flow: early stopping after this many epochs without a better validation loss (meanflow: none, the
            last step's field is kept: its loss's target moves with the field).
        lr_decay: decay the learning rate over the run (flow, default: cosine to 1 %; wgan: linear to 0, as
            Gulrajani et al.); ``False`` (wgan default, as in the LSS paper): constant.
        flow_steps: steps of the sampler (flow, chain: 10 steps of the ODE, ``2 flow_steps`` network evaluations per
            frame with Heun's solver; meanflow: 2 average-velocity steps, one evaluation each).
        flow_solver: the sampling ODE's solver, ``"heun"``, ``"midpoint"``, ``"rk4"`` or ``"euler"``
            (:data:`lss_jax.decoder.flow.SOLVERS`: its network evaluations per step).
        distill_steps: flow, chain: 0 samples the trained flow (``flow_steps`` of ``flow_solver``); ``k >= 1``
            distils it after training into a student sampled with ``k`` Euler steps, ``k`` network evaluations per
            frame (:mod:`lss_jax.decoder.distill`; its couplings are solved with ``flow_steps`` of
            ``flow_solver``).
        distill_iterations: the distillation's optimizer steps (at most; it stops early on held-out couplings);
            default: as many as the flow's own training was given, at most 20 000.
        states: flow on internal coordinates, chain: split ``p(x | psi)`` into at most this many structural states
            (flow: combinations of torsion modes; chain: k-means clusters of the distances of beads >= 3 apart;
            :mod:`lss_jax.decoder.states`) whose weights a calibrated classifier gives, so that rare conformations
            keep their population; 0: one flow for everything.
        state_tail: flow on internal coordinates: ``> 0`` also makes each torsion mode's tails states of their own,
            the bins whose density stays below this share of the mode's peak (``0.05``: 3 kT above its minimum;
            :func:`lss_jax.decoder.states.torsion_modes`); 0 (default): modes split at barriers only.
        state_features: chain: what the structural states cluster, ``"distances"`` (default: the distances of beads
            >= 3 apart) or ``"contacts"`` (soft contacts of the pairs that come within 0.8 nm; weighs which tertiary
            contacts are formed; :func:`lss_jax.decoder.states.distance_states`), or ``"contact_map"``: the state is
            the frame's whole contact map (the Calpha pairs >= 4 apart that form and break within 0.8 nm), drawn by an
            autoregressive model of psi before the flow, which is conditioned on it, and kept by the repair
            (:mod:`lss_jax.decoder.contacts`; ``states`` then only needs to be > 0).
        contact_reference: contact-map states: which pairs make the map. ``""`` (default): the generic rule above
            (pairs that form and break within 0.8 nm in the training frames); or the path of the protein's native
            structure (a PDB, all-atom or Calpha): its native contacts (residues >= 4 apart with heavy atoms within
            0.45 nm), each formed below 1.2 times its native Calpha distance, the contacts Q counts
            (:func:`lss_jax.decoder.contacts.native_contact_pairs`).
        noise_dim, critic_hidden, condition, n_critic, gp_weight: WGAN-GP settings (paper: 50, = hidden,
            ``"input"``: the latent point joins the first layer, 5, 10; ``condition="every_layer"`` feeds it to
            every layer of both networks).
        redraws: a decoded frame outside the training data's support (two atoms >= 3 bonds apart closer than
            ``support_margin`` times their smallest training distance; :mod:`lss_jax.decoder.support`) is
            drawn again with fresh addressed noise, up to this many times (0: never); frames inside it at the
            first draw are unchanged.
        support_margin: fraction of the smallest training distance of a pair that decoded frames must keep.
        neighbours, max_frames: knn: pick among this many nearest stored frames; store at most this many
            training frames (a random subset of more).
        temperature: chain: the prior sample's scale at sampling (default 0.7, a low-temperature sample, narrower
            around the conditional modes; 1: the trained flow's law).
        self_condition: chain: the field also sees the endpoint its previous evaluation predicted (self-conditioning,
            Chen et al. 2023, as in protein backbone flows), trained on half the minibatch frames.
        prior: chain: where the flow starts, ``"gaussian"`` (default: a Gaussian fitted to the training frames of
            each structural state, its mean linear in psi and its covariance that of what the mean leaves, so the
            flow only carries what a Gaussian misses) or ``"chain"`` (the Gaussian chain, a random walk of
            bond-length steps).
        template_time: chain: start each frame's path at this time ``t0`` in ``[0, 1)`` from one of the
            ``neighbours`` training frames nearest in latent space (at most ``max_frames`` stored), noised by the prior
            to ``t0`` (:class:`lss_jax.decoder.chain.TemplateStart`; ``flow_steps (1 - t0)`` steps); 0 (default): from
            the prior alone.
        condition_dropout: chain: the share of training frames whose condition (latent point and state) the field
            does not see, so that it also learns the unconditional velocity ``v_u`` (classifier-free guidance; 0,
            default: off; 0.1 is usual).
        guidance: chain, with ``condition_dropout``: sample with ``v_u + guidance (v_c - v_u)`` (Ho & Salimans
            2022) at twice the network evaluations; 1 (default): the conditional velocity alone. On Trp-cage
            ``> 1`` shortened the decoded t1 instead of sharpening the law along the slow coordinate
            (docs/decoder.md), so it stays off.
        noise_memory: generative decoders: the correlation ``rho`` in ``[0, 0.95]`` of the decoder noise of
            consecutive decoded frames of a trajectory (an AR(1) process along it; every frame's noise stays standard
            normal, so the per-frame law is unchanged; :func:`lss_jax.decoder.memory_noise`), so what psi leaves open
            of a structure does not decorrelate within one frame. 0 (default): independent noise per frame.
            ``"auto"``: calibrated at fit, the ``rho`` whose decoded training paths keep MD's lag memory of the slow
            structural coordinate beyond psi (:func:`lss_jax.analysis.memory.calibrate_noise_memory`); the fitted
            model's configuration holds the number. Per lag: generation that saves every ``s``-th step decodes
            its saved frames with ``rho^s``.

    Example:
        >>> DecoderConfig().resolved().hidden, DecoderConfig(kind="wgan").resolved().learning_rate
        ((256, 256, 256), 0.0002)
        >>> DecoderConfig(kind="wgan").resolved().iterations, DecoderConfig(kind="wgan", epochs=3).resolved().iterations
        (20000, None)
    """

    kind: str = "flow"
    coordinates: str = "internal"
    hidden: tuple[int, ...] | None = None
    learning_rate: float | None = None
    batch_size: int = 256
    epochs: int | None = None
    iterations: int | None = None
    patience: int = 30
    max_steps: int = 60_000
    lr_decay: bool | None = None
    flow_steps: int | None = None  # None: the kind's default, set at construction
    flow_solver: str = "heun"
    distill_steps: int = 0
    distill_iterations: int | None = None
    states: int = 16
    state_features: str = "distances"
    contact_reference: str = ""
    state_tail: float = 0.0
    noise_dim: int = 50
    critic_hidden: tuple[int, ...] | None = None
    condition: str = "input"
    n_critic: int = 5
    gp_weight: float = 10.0
    redraws: int = 8
    support_margin: float = 0.9
    neighbours: int = 20
    max_frames: int = 100_000
    temperature: float | None = None
    self_condition: bool | None = None
    prior: str | None = None
    template_time: float = 0.0
    condition_dropout: float = 0.0
    guidance: float = 1.0
    noise_memory: float | str = 0.0

    def __post_init__(self):
        if self.kind not in DECODERS:
            raise ValueError(f"decoder must be 'flow' (conditional flow matching), 'wgan' (the paper's cWGAN-GP), "
                             f"'knn' (retrieval of training frames), 'chain' (flow matching on a chain's Cartesian "
                             f"coordinates) or 'meanflow' (a flow trained to be sampled in a few steps), "
                             f"got {self.kind!r}.")
        if self.flow_steps is None:  # the kind's own (frozen: set once, here)
            object.__setattr__(self, "flow_steps", _DEFAULTS[self.kind]["flow_steps"])
        if self.coordinates not in COORDINATES:
            raise ValueError(f"decoder coordinates must be 'internal' (bonds, angles, torsions) or 'cartesian' "
                             f"(aligned coordinates), got {self.coordinates!r}.")
        for name in ("batch_size", "patience", "max_steps", "flow_steps", "noise_dim", "n_critic", "epochs", "iterations",
                     "neighbours", "max_frames", "distill_iterations"):
            value = getattr(self, name)
            if value is None and name in ("epochs", "iterations", "distill_iterations"):
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"decoder {name} must be a positive integer, got {value!r}.")
        if self.condition not in ("input", "every_layer"):
            raise ValueError(f"decoder condition must be 'input' or 'every_layer', got {self.condition!r}.")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ValueError(f"decoder learning_rate must be > 0, got {self.learning_rate!r}.")
        if not self.gp_weight >= 0:
            raise ValueError(f"gp_weight must be >= 0, got {self.gp_weight!r}.")
        if not isinstance(self.states, int) or isinstance(self.states, bool) or self.states < 0:
            raise ValueError(f"decoder states must be an integer >= 0 (0: no structural states), got {self.states!r}.")
        if isinstance(self.state_tail, bool) or not isinstance(self.state_tail, (int, float)) \
                or not 0 <= self.state_tail < 1:
            raise ValueError(f"decoder state_tail must be a number in [0, 1) (the share of a torsion mode's peak "
                             f"density below which its tails become states; 0: off), got {self.state_tail!r}.")
        if self.state_features not in STATE_FEATURES:
            raise ValueError(f"decoder state_features must be 'distances' or 'contacts' (what the chain decoder's "
                             f"structural states cluster) or 'contact_map' (the state is the frame's contact map), "
                             f"got {self.state_features!r}.")
        if self.state_features == "contact_map" and self.template_time:
            raise ValueError("decoder state_features = 'contact_map' draws each frame's contacts before the flow and "
                             "projects the chain onto them; its paths cannot start from a template (set "
                             "template_time = 0, or use state_features = 'distances').")
        if not isinstance(self.contact_reference, str):
            raise ValueError(f"decoder contact_reference must be a string: '' (the generic contact map) or the path "
                             f"of the protein's native structure, got {self.contact_reference!r}.")
        if self.contact_reference and self.state_features != "contact_map":
            raise ValueError(f"decoder contact_reference = {self.contact_reference!r} chooses the pairs of a contact "
                             f"map; it needs state_features = 'contact_map' (got {self.state_features!r}).")
        if self.state_features != "distances" and self.kind != "chain":
            raise ValueError(f"decoder state_features = {self.state_features!r} applies to the chain decoder (kind = "
                             f"'chain'); the {self.kind!r} decoder's states are not clustered on a chain's distances.")
        if not isinstance(self.redraws, int) or isinstance(self.redraws, bool) or self.redraws < 0:
            raise ValueError(f"decoder redraws must be an integer >= 0 (0: never draw a frame again), "
                             f"got {self.redraws!r}.")
        if self.kind == "chain" and self.hidden is not None and (len(self.hidden) < 1 or len(set(self.hidden)) != 1
                                                                  or self.hidden[0] % 4):
            raise ValueError(f"the chain decoder's hidden is (width,) * depth with width a multiple of 4 (its attention "
                             f"heads), got {self.hidden!r}.")
        if self.temperature is not None and not (isinstance(self.temperature, (int, float)) and 0.0 < self.temperature <= 2.0):
            raise ValueError(f"decoder temperature must be in (0, 2], got {self.temperature!r}.")
        if self.self_condition not in (None, True, False):
            raise ValueError(f"decoder self_condition must be true or false, got {self.self_condition!r}.")
        if self.self_condition and self.kind != "chain":
            raise ValueError(f"decoder self_condition applies to the chain decoder only (kind = 'chain'), "
                             f"got kind = {self.kind!r}.")
        if self.self_condition and isinstance(self.distill_steps, int) and self.distill_steps > 1:
            raise ValueError(f"a self-conditioned chain decoder is distilled into one step (distill_steps = 1; its "
                             f"student is trained without the estimate a second step would give it), got "
                             f"distill_steps = {self.distill_steps!r}.")
        if self.prior is not None and (self.kind != "chain" or self.prior not in ("chain", "gaussian")):
            raise ValueError(f"decoder prior applies to the chain decoder (kind = 'chain') and is 'chain' or "
                             f"'gaussian', got prior = {self.prior!r} with kind = {self.kind!r}.")
        if not (isinstance(self.template_time, (int, float)) and not isinstance(self.template_time, bool)
                and 0.0 <= self.template_time < 1.0):
            raise ValueError(f"decoder template_time must be in [0, 1) (0: no template start), got {self.template_time!r}.")
        if self.template_time and (self.kind != "chain" or self.distill_steps):
            raise ValueError(f"decoder template_time applies to the chain decoder sampled by its own flow (kind = "
                             f"'chain', distill_steps = 0), got kind = {self.kind!r}, distill_steps = "
                             f"{self.distill_steps!r}.")
        for name, high in (("condition_dropout", 1.0), ("guidance", 10.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < high:
                raise ValueError(f"decoder {name} must be a number in [0, {high:g}), got {value!r}.")
        if (self.condition_dropout or self.guidance != 1.0) and self.kind != "chain":
            raise ValueError(f"decoder condition_dropout and guidance (classifier-free guidance) apply to the chain "
                             f"decoder (kind = 'chain'), got kind = {self.kind!r}.")
        if self.guidance != 1.0 and not self.condition_dropout:
            raise ValueError(f"decoder guidance = {self.guidance!r} needs the unconditional velocity of a field trained "
                             f"with condition dropout: set condition_dropout > 0 (0.1 is usual), or guidance = 1.")
        if self.noise_memory != "auto" and (isinstance(self.noise_memory, bool)
                                            or not isinstance(self.noise_memory, (int, float))
                                            or not 0.0 <= self.noise_memory <= 0.95):
            raise ValueError(f"decoder noise_memory must be a number in [0, 0.95] (the correlation of the decoder noise "
                             f"of consecutive frames; 0: independent) or 'auto' (calibrated at fit to the training "
                             f"MD), got {self.noise_memory!r}.")
        if self.noise_memory and self.kind == "knn":
            raise ValueError("decoder noise_memory applies to the generative decoders (flow, chain, wgan); retrieval "
                             "(kind = 'knn') picks training frames: set noise_memory = 0.")
        if not 0.0 < self.support_margin <= 1.0:
            raise ValueError(f"decoder support_margin must be in (0, 1] (a fraction of the smallest training "
                             f"distance of an atom pair), got {self.support_margin!r}.")
        if self.flow_solver not in FLOW_SOLVERS:
            raise ValueError(f"decoder flow_solver must be one of {', '.join(map(repr, FLOW_SOLVERS))}, "
                             f"got {self.flow_solver!r}.")
        if not isinstance(self.distill_steps, int) or isinstance(self.distill_steps, bool) or self.distill_steps < 0:
            raise ValueError(f"decoder distill_steps must be an integer >= 0 (0: sample the trained flow itself), "
                             f"got {self.distill_steps!r}.")
        if self.distill_steps and self.kind not in DISTILLABLE:
            raise ValueError(f"decoder distill_steps applies to the flow-matching decoders ({', '.join(DISTILLABLE)}); "
                             f"the {self.kind!r} decoder samples in one pass already: set distill_steps = 0.")

    @property
    def sampler(self) -> tuple[int, str]:
        """``(steps, solver)`` the fitted decoder samples with: a distilled student's Euler steps, else
        ``(flow_steps, flow_solver)``."""
        return (self.distill_steps, "euler") if self.distill_steps else (self.flow_steps, self.flow_solver)

    def replace(self, **changes) -> "DecoderConfig":
        """A copy with ``changes``; a change of ``kind`` also gives the new kind's default ``flow_steps`` where this
        one has its own kind's default and ``changes`` names none (``DecoderConfig().replace(kind="meanflow")``
        samples in the mean flow's 2 steps, not the flow's 10).

        Example:
            >>> DecoderConfig().replace(kind="meanflow").flow_steps, DecoderConfig(flow_steps=4).replace(kind="meanflow").flow_steps
            (2, 4)
        """
        if "kind" in changes and "flow_steps" not in changes and self.flow_steps == _DEFAULTS[self.kind]["flow_steps"]:
            changes = {**changes, "flow_steps": None}
        return dataclasses.replace(self, **changes)

    def resolved(self) -> "DecoderConfig":
        """A copy with the kind's defaults filled in (``iterations`` overrides ``epochs``)."""
        defaults = dict(_DEFAULTS[self.kind])
        if self.epochs is not None or self.iterations is not None:
            defaults.pop("epochs", None)
            defaults.pop("iterations", None)
        values = {k: v for k, v in defaults.items() if getattr(self, k) is None}
        return dataclasses.replace(self, **values)


class FlatConfigWarning(DeprecationWarning):
    """A configuration in the flat form of earlier lss_jax (``encoder_hidden``, ``n_components``,
    ``decoder_iterations``, ...: one field per setting). It is read, translated to the nested form, and the message
    names the new spelling of every flat key (``encoder_hidden -> encoder.hidden``)."""


_SECTIONS = {"data": DataConfig, "encoder": EncoderConfig, "propagator": PropagatorConfig, "decoder": DecoderConfig}
_TOP = ("lag", "seed")
# the flat keys of earlier lss_jax that are not "<section>_<field>" (encoder_hidden -> encoder.hidden and the like)
# fields added after the flat form, with the value that reproduces the behaviour before them: left out of the flat
# dict (and so of model fingerprints) at that value, and given that value when a model saved without them is loaded
_ADDED_SINCE_FLAT = {("decoder", "flow_solver"): "heun", ("decoder", "distill_steps"): 0,
                     ("decoder", "distill_iterations"): None, ("encoder", "min_latent_dim"): 1,
                     ("decoder", "self_condition"): None, ("decoder", "prior"): None,
                     ("decoder", "template_time"): 0.0, ("decoder", "state_features"): "distances",
                     ("decoder", "contact_reference"): "",
                     ("decoder", "state_tail"): 0.0, ("decoder", "condition_dropout"): 0.0,
                     ("decoder", "guidance"): 1.0, ("decoder", "noise_memory"): 0.0}
# fields a model saved before they existed was trained without, whose default is no longer that value: a saved
# model that lacks one is read with the value it was trained with (it stays in the flat dict, as it always was)
_DEFAULT_CHANGED = {("encoder", "linear_floor"): False}
_FLAT_NAMES = {
    **{name: ("data", name) for name in ("torsions", "distances", "atom_selection", "val_fraction", "encoder_fraction")},
    **{name: ("encoder", name) for name in ("latent_dim", "max_latent_dim")},
    **{name: ("propagator", name) for name in ("n_components", "scale_floor", "boundary", "ensemble_size")},
    "decoder": ("decoder", "kind"),
    **{name: ("decoder", name) for name in ("flow_steps", "noise_dim", "critic_hidden", "n_critic", "gp_weight")},
}


def _field_names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _flat_target(key: str) -> tuple[str, str] | None:
    """``(section, field)`` of a flat key of earlier lss_jax, or ``None``."""
    if key in _FLAT_NAMES:
        return _FLAT_NAMES[key]
    section, _, name = key.partition("_")
    if section in ("encoder", "propagator", "decoder") and name in _field_names(_SECTIONS[section]):
        return section, name
    return None


def _flat_name(section: str, name: str) -> str:
    """The flat key of earlier lss_jax for ``section.name`` (the inverse of :func:`_flat_target`)."""
    for key, target in _FLAT_NAMES.items():
        if target == (section, name):
            return key
    return f"{section}_{name}"


def _did_you_mean(key: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, list(candidates), n=1)
    return f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")


def _a(name: str) -> str:
    return f"{'an' if name[0] in 'AEIOU' else 'a'} {name}"


def _plain(value):
    return tuple(value) if isinstance(value, list) else value


def _section_fields(section: str, value) -> dict:
    """The fields of ``section`` given as its configuration object or as a mapping of (some of) its fields."""
    cls = _SECTIONS[section]
    names = _field_names(cls)
    if isinstance(value, cls):
        return {name: getattr(value, name) for name in names}
    if not isinstance(value, Mapping):
        raise ValueError(f"{section} must be {_a(cls.__name__)} or a mapping of its fields (a [{section}] table in "
                         f"TOML), got {value!r}.")
    unknown = [k for k in value if k not in names]
    if unknown:
        raise ValueError(f"unknown {section} key(s) {', '.join(_did_you_mean(k, names) for k in unknown)}; valid "
                         f"{section} keys ({cls.__name__}): {', '.join(names)}.")
    return {k: _plain(v) for k, v in value.items()}


def _outside_stacklevel() -> int:
    """The ``stacklevel`` of the first caller outside lss_jax, for a warning raised in the function that calls this:
    the line the warning names is the user's, where Python shows a ``DeprecationWarning`` by default."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(2), 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


def _nested(data: Mapping, *, source: str | None = None) -> dict:
    """``data`` with every section as a dict of fields: flat keys of earlier lss_jax are moved into their section
    (with one :class:`FlatConfigWarning` that names their new spelling), unknown keys refused."""
    if not isinstance(data, Mapping):
        raise ValueError(f"a configuration is a mapping of its fields, got {type(data).__name__}.")
    out, flat, renamed, unknown = {}, {}, [], []
    for key, value in data.items():
        if key in _TOP:
            out[key] = value
        elif key in _SECTIONS and not (key == "decoder" and isinstance(value, str)):  # decoder = "wgan": flat
            out[key] = _section_fields(key, value)
        elif (target := _flat_target(key)) is not None:
            flat[target] = _plain(value)
            renamed.append((key, ".".join(target)))
        else:
            unknown.append(key)
    if unknown:
        flat_names = {_flat_name(s, f): f"{s}.{f}" for s, cls in _SECTIONS.items() for f in _field_names(cls)}
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, [*_TOP, *_SECTIONS, *flat_names], n=1)
            hints.append(f"{key!r}" + (f" (did you mean {flat_names.get(close[0], close[0])!r}?)" if close else ""))
        raise ValueError(
            f"unknown configuration key(s) {', '.join(hints)}; valid keys: lag, seed and the sections data, encoder, "
            f"propagator, decoder (DataConfig, EncoderConfig, PropagatorConfig, DecoderConfig fields).")
    for (section, name), value in flat.items():
        fields = out.setdefault(section, {})
        if name in fields:
            raise ValueError(f"{_flat_name(section, name)} and {section}.{name} are the same setting, given twice; "
                             f"keep {section}.{name}.")
        fields[name] = value
    if renamed:
        shown = ", ".join(f"{old} -> {new}" for old, new in renamed[:8])
        more = f" and {len(renamed) - 8} more" if len(renamed) > 8 else ""
        section, name = renamed[0][1].split(".")
        warnings.warn(
            f"{source + ': ' if source else ''}flat configuration keys are deprecated, each setting now lives in its "
            f"section: {shown}{more} (TOML: [{section}] {name} = ...; Python: LSSConfig(lag, {section}="
            f"{_SECTIONS[section].__name__}({name}=...))).", FlatConfigWarning, stacklevel=_outside_stacklevel())
    return out


@dataclasses.dataclass(frozen=True)
class LSSConfig:
    """Hyperparameters of a molecular LSS (defaults: the paper's architectures), one configuration per part.

    Attributes:
        lag: the lag of the encoder and the propagator, in trajectory frames.
        data: features, decoded atoms, validation split and cross-fitting (:class:`DataConfig`).
        encoder: the SRV encoder and the latent dimension (:class:`EncoderConfig`; ``latent_dim=None`` picks the
            dimension at the largest gap of the SRV implied timescales among ``max_latent_dim``).
        propagator: the MDN propagator and its ensemble (:class:`PropagatorConfig`).
        decoder: the decoder (:class:`DecoderConfig`).
        seed: the seed of ``LSS.fit``'s key and of the choice of generation's start points.

    :meth:`from_dict` reads a plain dict (TOML, JSON: a ``[data]``, ``[encoder]``, ``[propagator]`` and
    ``[decoder]`` table, each with the fields to change), :meth:`to_dict` writes one, :meth:`replace` changes
    some fields of a section. Both read the flat keys of earlier lss_jax (``encoder_hidden``, ...) with a
    :class:`FlatConfigWarning`.

    Example:
        >>> config = LSSConfig(lag=5, encoder=EncoderConfig(latent_dim=2))
        >>> config.lag, config.encoder.latent_dim, config.propagator.n_components
        (5, 2, 24)
        >>> config.replace(decoder={"kind": "knn"}).decoder.kind
        'knn'
        >>> LSSConfig.from_dict({"lag": 5, "encoder": {"hidden": [32, 32]}}).encoder.hidden   # e.g. from TOML
        (32, 32)
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     old = LSSConfig.from_dict({"lag": 5, "encoder_hidden": [32, 32]})   # the flat form of earlier lss_jax
        >>> old == LSSConfig(lag=5, encoder=EncoderConfig(hidden=(32, 32))), caught[0].category.__name__
        (True, 'FlatConfigWarning')
    """

    lag: int
    data: DataConfig = DataConfig()
    encoder: EncoderConfig = EncoderConfig()
    propagator: PropagatorConfig = PropagatorConfig()
    decoder: DecoderConfig = DecoderConfig()
    seed: int = 0

    def __post_init__(self):
        _check_positive_ints("", {"lag": self.lag})
        for section, cls in _SECTIONS.items():
            value = getattr(self, section)
            if not isinstance(value, cls):
                raise ValueError(f"{section} must be {_a(cls.__name__)} (LSSConfig(lag, {section}={cls.__name__}"
                                 f"(...))), got {value!r}; LSSConfig.from_dict and LSSConfig.replace also take a "
                                 "mapping of its fields.")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> "LSSConfig":
        """Build from a plain dict (e.g. TOML or a saved model's ``lss.json``): ``lag``, ``seed`` and a mapping of
        fields per section (the others keep their defaults); lists become tuples. Unknown keys are refused with
        the valid ones; the flat keys of earlier lss_jax are read with a :class:`FlatConfigWarning` (``source``,
        e.g. a file name, begins its message)."""
        nested = _nested(data, source=source)
        if "lag" not in nested:
            raise ValueError("the configuration has no lag; give it in frames, e.g. lag = 5.")
        return cls(lag=nested["lag"])._with(nested)

    @classmethod
    def from_saved(cls, data: Mapping[str, Any], *, source: str | None = None) -> "LSSConfig":
        """:meth:`from_dict` of a saved model's configuration: a field lss_jax added since the model was saved takes
        the value that reproduces the model as it was trained (e.g. ``decoder.distill_steps = 0`` for a flow saved
        before distillation), not today's default."""
        nested = _nested(data, source=source)
        if "lag" not in nested:
            raise ValueError("the configuration has no lag; give it in frames, e.g. lag = 5.")
        for (section, name), before in {**_ADDED_SINCE_FLAT, **_DEFAULT_CHANGED}.items():
            nested.setdefault(section, {}).setdefault(name, before)
        return cls(lag=nested["lag"])._with(nested)

    def replace(self, **changes) -> "LSSConfig":
        """A copy with ``changes``: ``lag``, ``seed``, or a section as a whole configuration object or as a mapping
        of the fields to change (``config.replace(encoder={"epochs": 2})`` keeps the encoder's other fields).
        Flat keys of earlier lss_jax are read with a :class:`FlatConfigWarning`."""
        return self._with(_nested(changes))

    def _with(self, nested: dict) -> "LSSConfig":
        changes = {k: nested[k] for k in _TOP if k in nested}
        for section in _SECTIONS:
            if section in nested:
                current = getattr(self, section)
                changes[section] = (current.replace(**nested[section]) if section == "decoder"
                                    else dataclasses.replace(current, **nested[section]))
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The nested plain dict (lists for tuples) that :meth:`from_dict` reads back; what saved models store."""
        plain = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731
        out = {"lag": self.lag, "seed": self.seed}
        for section, cls in _SECTIONS.items():
            out[section] = {name: plain(getattr(getattr(self, section), name)) for name in _field_names(cls)}
        return out

    def to_toml(self) -> str:
        """This configuration as a ``--config`` file of ``lss-jax train``: ``lag`` and ``seed``, then one table per
        section.

        TOML has no ``None``: a field that is ``None`` and ``None`` by default is left out (read back, it is
        ``None`` again); one that is ``None`` against a default (``distances=None``) raises ``ValueError``.

        Example:
            >>> import tomllib
            >>> config = LSSConfig(lag=5, encoder=EncoderConfig(latent_dim=2, hidden=(32, 32)))
            >>> text = config.to_toml()
            >>> text.splitlines()[:3]
            ['lag = 5', 'seed = 0', '[data]']
            >>> LSSConfig.from_dict(tomllib.loads(text)) == config
            True
        """
        values = self.to_dict()
        lost = [f"{section}.{f.name}" for section, cls in _SECTIONS.items() for f in dataclasses.fields(cls)
                if values[section][f.name] is None and f.default is not None]
        if lost:
            raise ValueError(f"{', '.join(lost)} = None cannot be written in TOML (a missing key means the default); "
                             f"pass the configuration in Python instead.")
        text = "".join(f"{k} = {_toml_value(values[k])}\n" for k in _TOP)
        for section in _SECTIONS:
            text += f"[{section}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in values[section].items()
                                              if v is not None)
        return text

    def _flat_dict(self) -> dict:
        """The flat dict of earlier lss_jax (what model fingerprints hash, so that a model's name did not change
        with the nesting)."""
        out = {"lag": self.lag, "seed": self.seed}
        for section, fields in self.to_dict().items():
            if section in _SECTIONS:
                out.update({_flat_name(section, name): value for name, value in fields.items()
                            if _ADDED_SINCE_FLAT.get((section, name), object()) != value})
        return out

    @property
    def feature_spec(self) -> FeatureSpec:
        """``data.feature_spec``: the encoder's features."""
        return self.data.feature_spec


def _toml_value(v) -> str:
    """A TOML value: booleans, numbers, strings and (nested) lists of them."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
