"""Structural states: how the flow decoder keeps the weights of rare conformations.

A flow-matching decoder learns ``p(x | psi)`` as one transport map from a Gaussian, and a smooth map
under-fills small, distant modes: on alanine dipeptide it returned 0.7-0.8 of the alpha_L rate it was trained
on (a 0.17 % basin, whatever the epochs, width, ODE steps or sampler). Splitting the conditional into
discrete structural states,

    p(x | psi) = sum_k  pi_k(psi)  p(x | psi, k),

moves the mode weights into a classifier ``pi(psi)`` trained by cross-entropy, whose intercepts are then
calibrated so that the mean predicted probability of every state equals its frequency in the data (the
maximum-likelihood condition of a softmax with intercepts), and leaves the flow to model one state at a time.

The states come from the decoder's own torsions, without any system-specific input: every torsion's
circular histogram is split at free-energy barriers (minima at most ``depth`` times the smaller neighbouring
peak), and the states are the combinations of torsion modes that the data populate, the most populated
``max_states`` of them (each with at least ``min_frames`` frames); a frame of any other combination joins the
kept combination that differs from it in the fewest torsions.

A protein's Cα chain has no torsion modes to split (its pseudo-torsions are unimodal one by one); what
separates its conformations is tertiary, so the chain decoder's states are found in distance space instead
(:func:`distance_states`: k-means on the distances of beads >= 3 apart, deeptime's k-means++ with a fixed seed).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from lss_jax.config import STATE_FEATURES
from lss_jax.decoder.wgan import _MLP  # the project's plain MLP (the WGAN's networks)

__all__ = ["RARE_STATE_SHARE", "StateAnchors", "StateAssignment", "StateClassifier", "StateFlow", "assign_states",
           "balanced_rows", "calibrate_intercepts", "distance_states", "find_states", "fit_state_classifier",
           "rare_states", "torsion_modes", "CONTACT_CUTOFF", "CONTACT_WIDTH", "CONTACT_SHARE"]

CONTACT_CUTOFF = 0.8  # nm: a Calpha pair closer than this is in contact (soft, with CONTACT_WIDTH)
CONTACT_WIDTH = 0.05  # nm: the soft contact's width
CONTACT_SHARE = 0.05  # a pair is a contact feature if in contact in more than this share of the frames

RARE_STATE_SHARE = 0.01  # the flow trains on every state's frames repeated up to this share of the training frames


def _circular_smooth(hist: np.ndarray, sigma_bins: float) -> np.ndarray:
    n = hist.size
    offsets = np.arange(n) - n // 2
    kernel = np.exp(-0.5 * (offsets / sigma_bins) ** 2)
    kernel = np.roll(kernel / kernel.sum(), -(n // 2))
    return np.real(np.fft.ifft(np.fft.fft(hist) * np.fft.fft(kernel)))


def torsion_modes(theta, *, n_bins: int = 72, sigma_bins: float = 1.5, depth: float = 0.2,
                  min_frames: int = 5, rare: float = 0.05, tail: float = 0.0) -> np.ndarray:
    """Boundaries (radians, ascending) that split one torsion's circular distribution into its modes.

    The histogram (``n_bins`` on the circle, Gaussian-smoothed) is split at the lowest point between two
    peaks when that point is at most ``depth`` times the smaller peak (a barrier of at least ``-ln depth`` kT
    in the marginal free energy); shallower splits, and modes with fewer than ``min_frames`` frames, are
    merged into their neighbour; so are two neighbouring modes that both hold at least ``rare`` of the frames
    (the flow keeps the weights of common modes; a cut between them only starves the barrier region, which
    each state's flow then avoids). Returns ``[]`` for a torsion with one mode, else ``k >= 2`` cut angles:
    mode ``j`` is the arc from cut ``j`` to cut ``j + 1`` (the last wrapping round to the first).

    ``tail > 0`` (a torsion with modes only) also cuts off each mode's tails: walking into a mode from each of its
    ends, the bins whose smoothed density stays below ``tail`` times the mode's peak (``-ln tail`` kT above the
    mode's minimum free energy) become a mode of their own when they hold at least ``min_frames`` frames. A smooth
    map under-fills a mode's far tail as it does a small distant mode; as a state, the tail's weight is the
    classifier's, calibrated to the data. Experimental: on alanine dipeptide's β frames across φ = ±180° the weight
    is right but the tail state's own flow over-fills the far side of its few dozen frames (docs/decoder.md).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> theta = np.concatenate([rng.normal(-1.2, 0.3, 5000), rng.normal(1.0, 0.3, 100)])
        >>> cuts = torsion_modes(np.angle(np.exp(1j * theta)))
        >>> len(cuts), bool(-1.2 < cuts[0] < 1.0 < cuts[1] or cuts[0] < -1.2 and cuts[1] > 1.0)
        (2, True)
        >>> len(torsion_modes(rng.normal(0.0, 0.5, 5000)))
        0
        >>> tails = torsion_modes(np.angle(np.exp(1j * theta)), tail=0.05)  # the big mode (-69 deg) loses its tails
        >>> np.degrees(tails).round(-1).tolist()                           # beyond ~2.4 sd: two more cuts
        [-110.0, -30.0, 0.0, 160.0]
    """
    theta = np.asarray(theta, np.float64)
    width = 2 * np.pi / n_bins
    idx = np.floor((np.mod(theta + np.pi, 2 * np.pi)) / width).astype(int) % n_bins
    counts = np.bincount(idx, minlength=n_bins).astype(np.float64)
    dens = _circular_smooth(counts, sigma_bins)
    peaks = [i for i in range(n_bins) if dens[i] > dens[i - 1] and dens[i] >= dens[(i + 1) % n_bins]]

    def valleys(peaks):  # lowest bin between consecutive peaks (circularly), and its value
        out = []
        for a, b in zip(peaks, peaks[1:] + peaks[:1]):
            span = [(a + s) % n_bins for s in range(1, (b - a) % n_bins or n_bins)]
            v = min(span, key=lambda i: dens[i]) if span else a
            out.append(v)
        return out

    while len(peaks) >= 2:
        vs = valleys(peaks)
        # the worst-separated neighbouring pair: valley height relative to the smaller of its two peaks
        ratios = [dens[v] / max(min(dens[peaks[j]], dens[peaks[(j + 1) % len(peaks)]]), 1e-300) for j, v in enumerate(vs)]
        regions = _regions(idx, vs, n_bins)
        sizes = np.bincount(regions, minlength=len(peaks))[_regions(np.asarray(peaks), vs, n_bins)]  # per peak
        small = [j for j in range(len(peaks)) if sizes[j] < min_frames]
        # mode j + 1 lies after valley j; a pair of common modes with a valley between them is merged too
        common = [j for j in range(len(peaks)) if min(sizes[(j + 1) % len(peaks)], sizes[j]) >= rare * len(idx)]
        j = int(np.argmax(ratios))
        if ratios[j] > depth or common:  # merge the smaller peak of the pair into the larger one
            j = j if ratios[j] > depth else common[0]
            a, b = j, (j + 1) % len(peaks)
            peaks.pop(a if dens[peaks[a]] < dens[peaks[b]] else b)
        elif small:  # a real barrier, but too few frames behind it to learn a state from
            peaks.pop(min(small, key=lambda i: dens[peaks[i]]))
        else:
            break
    if len(peaks) < 2:
        return np.zeros(0)
    vs = valleys(peaks)
    cuts = list(vs)
    if tail > 0:
        for j, peak in enumerate(peaks):  # mode j: from valley j - 1 to valley j, round its peak
            start, end = vs[j - 1], vs[j]
            for step, edge in ((1, start), (-1, end)):  # walk in from either end towards the peak
                b, n_tail = edge, 0
                while b != peak and dens[b] < tail * dens[peak]:
                    n_tail += counts[b] if b != edge else 0
                    b = (b + step) % n_bins
                if n_tail >= min_frames and b != peak:
                    cuts.append(b)  # the first bin that reaches the threshold is split at its centre
    return np.sort(np.array([-np.pi + (v + 0.5) * width for v in sorted(set(cuts))]))


def _regions(idx: np.ndarray, valley_bins: Sequence[int], n_bins: int) -> np.ndarray:
    """Mode index of every bin index in ``idx`` given the valley bins (mode ``j`` starts after valley ``j - 1``)."""
    vs = np.sort(np.asarray(valley_bins))
    return np.searchsorted(vs, idx, side="right") % len(vs)


def _mode_labels(theta: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    if len(cuts) == 0:
        return np.zeros(len(theta), np.int64)
    return np.searchsorted(cuts, np.asarray(theta, np.float64), side="right") % len(cuts)


class StateAssignment(NamedTuple):
    """The structural states of a decoder's training data.

    Attributes:
        columns: ``[T]`` indices of the torsions with more than one mode.
        cuts: ``T`` arrays of cut angles (radians), from :func:`torsion_modes`.
        combinations: ``[K, T]`` the kept combinations of torsion modes, most populated first.
        counts: ``[K]`` training frames in each state (after reassignment).
    """

    columns: np.ndarray
    cuts: tuple
    combinations: np.ndarray
    counts: np.ndarray

    @property
    def n_states(self) -> int:
        return int(len(self.combinations))


def assign_states(assignment: StateAssignment, torsions) -> np.ndarray:
    """State index ``[n]`` of frames with torsions ``[n, n_torsions]`` (radians): the kept combination of torsion
    modes that differs from the frame's in the fewest torsions (the more populated one on a tie)."""
    torsions = np.asarray(torsions, np.float64)
    if len(assignment.columns) == 0:
        return np.zeros(len(torsions), np.int64)
    modes = np.stack([_mode_labels(torsions[:, c], cut) for c, cut in zip(assignment.columns, assignment.cuts)], 1)
    mismatches = (modes[:, None, :] != assignment.combinations[None]).sum(-1)
    return np.argmin(mismatches, axis=1).astype(np.int64)  # argmin takes the first: combinations are by count


def find_states(torsions, *, max_states: int = 16, min_frames: int = 5, depth: float = 0.2,
                rare: float = 0.05, tail: float = 0.0) -> StateAssignment:
    """Structural states of frames with torsions ``[n, n_torsions]`` (radians); see the module docstring
    (``tail``: :func:`torsion_modes`).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> a = np.where(rng.uniform(size=4000) < 0.02, 1.0, -1.5) + rng.normal(0, 0.2, 4000)   # two modes, 2 %
        >>> b = rng.normal(0.3, 0.2, 4000)                                                         # one mode
        >>> states = find_states(np.stack([a, b], 1))
        >>> states.n_states, states.columns.tolist(), np.round(states.counts / 4000, 2).tolist()
        (2, [0], [0.98, 0.02])
    """
    torsions = np.asarray(torsions, np.float64)
    if torsions.ndim != 2:
        raise ValueError(f"torsions must be [n_frames, n_torsions], got shape {torsions.shape}.")
    if not isinstance(max_states, int) or max_states < 1:
        raise ValueError(f"max_states must be a positive integer, got {max_states!r}.")
    cuts, columns = [], []
    for c in range(torsions.shape[1]):
        cut = torsion_modes(torsions[:, c], depth=depth, min_frames=min_frames, rare=rare, tail=tail)
        if len(cut):
            cuts.append(cut)
            columns.append(c)
    empty = StateAssignment(np.zeros(0, np.int64), (), np.zeros((1, 0), np.int64), np.array([len(torsions)]))
    if not columns:
        return empty
    modes = np.stack([_mode_labels(torsions[:, c], cut) for c, cut in zip(columns, cuts)], 1)
    combos, counts = np.unique(modes, axis=0, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    keep = [i for i in order[:max_states] if counts[i] >= min_frames]
    if len(keep) < 2:
        return empty
    assignment = StateAssignment(np.asarray(columns, np.int64), tuple(cuts), combos[keep], counts[keep])
    labels = assign_states(assignment, torsions)
    return assignment._replace(counts=np.bincount(labels, minlength=len(keep)))


def distance_states(xyz, *, max_states: int = 16, min_separation: int = 3, min_frames: int = 5,
                    seed: int = 0, features: str = "distances") -> np.ndarray:
    """Structural states of chain frames ``xyz [N, n, 3]``: k-means (deeptime, k-means++ seeded by ``seed``) on the
    distances of beads at least ``min_separation`` apart, with ``k = min(max_states, N // min_frames)``; states
    left with fewer than ``min_frames`` frames join the nearest kept centre. Returns labels ``[N]`` numbered from 0
    by decreasing compactness (mean distance of the centre; with contacts, mean contact of the centre), so the same
    data give the same numbering.

    ``features="contacts"`` clusters soft contacts instead of distances: ``1 / (1 + exp((d - 0.8 nm) / 0.05 nm))``
    of the pairs that come within 0.8 nm in more than 5 % of the frames (:data:`CONTACT_CUTOFF`, :data:`CONTACT_WIDTH`,
    :data:`CONTACT_SHARE`). Distances weigh an open chain's large, loose separations most; contacts weigh which
    tertiary contacts are formed, which is what separates a protein's folded, partly folded and unfolded frames.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> line = np.cumsum(np.tile([[0.38, 0.0, 0.0]], (6, 1)), axis=0)
        >>> bent = line.copy(); bent[3:, 0] = 2 * bent[2, 0] - bent[3:, 0]; bent[3:, 1] = 0.3
        >>> xyz = np.concatenate([line + rng.normal(0, 0.01, (60, 6, 3)), bent + rng.normal(0, 0.01, (40, 6, 3))])
        >>> labels = distance_states(xyz, max_states=2)
        >>> np.bincount(labels).tolist(), bool(np.all(labels[:60] == labels[0]))
        ([40, 60], True)
    """
    from deeptime.clustering import KMeans

    if features not in STATE_FEATURES[:2]:  # a contact map is not clustered (lss_jax.decoder.contacts)
        raise ValueError(f"state features must be 'distances' or 'contacts', got {features!r}.")
    x = np.asarray(xyz, np.float64)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"xyz must be [n_frames, n_beads, 3], got shape {x.shape}.")
    i, j = np.triu_indices(x.shape[1], k=min_separation)
    if len(i) == 0 or max_states < 2 or len(x) < 2 * min_frames:
        return np.zeros(len(x), np.int64)
    d = np.linalg.norm(x[:, i] - x[:, j], axis=-1)
    if features == "contacts":
        near = (d < CONTACT_CUTOFF).mean(0) > CONTACT_SHARE
        if not near.any():  # no pair ever in contact: the chain has no tertiary structure to split on
            return np.zeros(len(x), np.int64)
        d = -1.0 / (1.0 + np.exp((d[:, near] - CONTACT_CUTOFF) / CONTACT_WIDTH))  # negated: "compact" sorts first
    k = int(min(max_states, len(x) // min_frames))
    centres = KMeans(n_clusters=k, init_strategy="kmeans++", max_iter=100, fixed_seed=seed, n_jobs=1).fit(d) \
        .fetch_model().cluster_centers
    keep = np.ones(k, bool)
    while True:
        labels = np.concatenate([np.argmin(((c[:, None, :] - centres[None, keep]) ** 2).sum(-1), 1)
                                 for c in np.array_split(d, max(1, len(d) // 20_000))])  # in blocks: bounded memory
        counts = np.bincount(labels, minlength=int(keep.sum()))
        if counts.min() >= min_frames or keep.sum() == 1:
            break
        keep[np.flatnonzero(keep)[np.argmin(counts)]] = False
    order = np.argsort(centres[keep].mean(1), kind="stable")  # most compact first
    return np.argsort(order)[labels].astype(np.int64)


def balanced_rows(labels, n_states: int, share: float) -> np.ndarray:
    """Row indices that repeat the frames of every state holding fewer than ``share`` of them (each frame the
    same whole number of times, the most that keeps the state at or below ``share``); the other rows once.

    Example:
        >>> labels = np.array([0] * 95 + [1] * 5)
        >>> rows = balanced_rows(labels, 2, 0.2)
        >>> len(rows), int(np.sum(labels[rows] == 1))
        (115, 20)
    """
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=n_states)
    target = share * len(labels)
    rare = np.isin(np.arange(n_states), rare_states(labels, n_states, share))
    repeat = np.where(rare, np.maximum(1, np.floor(target / np.maximum(counts, 1))), 1)
    return np.repeat(np.arange(len(labels)), repeat.astype(np.int64)[labels])


def rare_states(labels, n_states: int, share: float) -> np.ndarray:
    """The states that hold some but fewer than ``share`` of the frames ``labels`` (what :func:`balanced_rows`
    repeats, and whose flows :meth:`StateClassifier.anchor` anchors).

    Example:
        >>> rare_states(np.array([0] * 95 + [2] * 5), 3, 0.2).tolist()
        [2]
    """
    counts = np.bincount(np.asarray(labels), minlength=n_states)
    return np.flatnonzero((counts > 0) & (counts < share * len(labels)))


# the anchors' check (StateFlow.prune_anchors): draws per anchor, and the share of them inside the support an anchor
# needs (the flow reproduces a rare state's frames all or nearly all of the time, or almost never: alanine
# dipeptide's alpha_L, 17 frames, one seed's flow: 16 anchors at 0.98-1.00, one at 0.00)
ANCHOR_DRAWS = 64
ANCHOR_MIN_INSIDE = 0.5


class StateAnchors(nnx.Variable):
    """The latent points of a rare state's frames (set from data, never trained; as many rows as the data give)."""


class StateClassifier(_MLP):
    """``pi(psi)``: logits ``[..., K]`` of the structural states given latent points ``[..., m]`` (a swish MLP), and
    the latent points of the rare states' frames (:meth:`set_anchors`, :meth:`anchor`).

    Example:
        >>> StateClassifier(2, 3, hidden=(8,), rngs=nnx.Rngs(0))(jnp.zeros((5, 2))).shape
        (5, 3)
    """

    def __init__(self, cond_dim: int, n_states: int, *, hidden: Sequence[int] = (64, 64), rngs: nnx.Rngs):
        super().__init__((cond_dim, *hidden, n_states), jax.nn.swish, rngs=rngs)
        self.n_states = n_states
        self.anchors = StateAnchors(jnp.zeros((0, cond_dim), jnp.float32))
        self.anchor_states = StateAnchors(jnp.zeros((0,), jnp.int32))

    def set_anchors(self, cond, labels, rare) -> None:
        """Keep the latent points ``cond [n, m]`` of the frames whose state (``labels [n]``) is in ``rare``."""
        keep = np.isin(np.asarray(labels), np.asarray(rare, int))
        self.anchors = StateAnchors(jnp.asarray(np.asarray(cond, np.float32)[keep]))
        self.anchor_states = StateAnchors(jnp.asarray(np.asarray(labels, np.int32)[keep]))

    def keep_anchors(self, keep) -> None:
        """Keep the anchors where the boolean ``keep [R]`` is true (:meth:`StateFlow.prune_anchors`)."""
        keep = np.asarray(keep, bool)
        self.anchors = StateAnchors(self.anchors[...][keep])
        self.anchor_states = StateAnchors(self.anchor_states[...][keep])

    def anchor(self, c: jax.Array, k: jax.Array) -> jax.Array:
        """The condition a state's flow is given: ``c [B, m]`` itself for a state without anchors, else the nearest
        (Euclidean) latent point of that state's frames. A rare state's flow has seen its few frames' latent points
        only; between them it extrapolates, so it is asked about the nearest point it knows.

        Example:
            >>> clf = StateClassifier(1, 2, hidden=(4,), rngs=nnx.Rngs(0))
            >>> clf.set_anchors(np.array([[0.2], [0.5], [0.9]]), np.array([1, 0, 1]), rare=[1])
            >>> c = clf.anchor(jnp.array([[0.0], [0.7], [0.7]]), jnp.array([1, 1, 0]))  # state 1 moved, state 0 not
            >>> np.asarray(c, np.float64)[:, 0].round(2).tolist()
            [0.2, 0.9, 0.7]
        """
        anchors, owner = self.anchors[...], self.anchor_states[...]
        if anchors.shape[0] == 0:
            return c
        mine = owner[None, :] == k[:, None]  # [B, R]
        cf, n = c.astype(jnp.float32), anchors.shape[0]
        d2 = jnp.where(mine, sum((cf[:, j:j + 1] - anchors[None, :, j]) ** 2 for j in range(c.shape[1])), jnp.inf)
        # the first nearest anchor by two min-reductions and a gather per coordinate: 6.7x an argmin (a variadic
        # reduction) and a row gather on XLA:CPU at 143 anchors
        closest = jnp.min(d2, axis=1, keepdims=True)
        first = jnp.min(jnp.where(d2 == closest, jnp.arange(n)[None], n - 1), axis=1)
        nearest = jnp.stack([jnp.take(anchors[:, j], first) for j in range(c.shape[1])], -1)
        return jnp.where(jnp.any(mine, axis=1, keepdims=True), nearest.astype(c.dtype), c)


def calibrate_intercepts(logits, labels, n_states: int, *, iterations: int = 200) -> np.ndarray:
    """Offsets ``[K]`` to add to the logits so that the mean softmax over the frames equals every state's
    frequency (the intercepts' maximum-likelihood condition; float64 fixed-point iteration).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> logits, labels = rng.normal(size=(1000, 3)), rng.choice(3, 1000, p=[0.7, 0.29, 0.01])
        >>> p = jax.nn.softmax(logits + calibrate_intercepts(logits, labels, 3), axis=1)
        >>> bool(np.allclose(np.asarray(p).mean(0), np.bincount(labels, minlength=3) / 1000, atol=1e-6))
        True
    """
    logits = np.asarray(logits, np.float64)
    freq = np.bincount(np.asarray(labels), minlength=n_states) / len(labels)
    if np.any(freq == 0):
        raise ValueError("every state needs at least one frame to calibrate its intercept.")
    offset = np.zeros(n_states)
    for _ in range(iterations):
        z = logits + offset
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        mean = p.mean(0)
        step = np.log(freq) - np.log(mean)
        offset += step
        if np.max(np.abs(step)) < 1e-10:
            break
    return offset - offset.mean()


def fit_state_classifier(key: jax.Array, train, val, n_states: int, *, calibrate=None, hidden=(64, 64),
                         batch_size: int = 256, max_epochs: int = 100, patience: int = 10, progress: bool = True,
                         checkpoint=None) -> tuple[StateClassifier, object]:
    """Train ``pi(psi)`` on ``(latent [n, m], state [n])`` pairs by cross-entropy (:func:`lss_jax.engine.train.fit`,
    early stopping on ``val``), then calibrate its intercepts on ``calibrate`` (default: ``train``).

    Returns:
        ``(classifier, TrainHistory)``.
    """
    from lss_jax.engine.train import fit

    k_init, k_fit = jax.random.split(key)
    train = (jnp.asarray(train[0], jnp.float32), jnp.asarray(train[1], jnp.int32))
    val = (jnp.asarray(val[0], jnp.float32), jnp.asarray(val[1], jnp.int32))
    model = StateClassifier(train[0].shape[1], n_states, hidden=hidden, rngs=nnx.Rngs(k_init))

    def loss_fn(model, batch):
        c, y = batch
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(model(c), y))

    model, history = fit(k_fit, model, loss_fn, train, val, optimizer=optax.adam(1e-3),
                         batch_size=min(batch_size, len(train[1])), max_epochs=max_epochs, patience=patience,
                         progress=progress, desc="state classifier", checkpoint=checkpoint,
                         run_id=f"states K={n_states} hidden={tuple(hidden)}")
    c_cal, y_cal = train if calibrate is None else calibrate
    logits = np.concatenate([np.asarray(model(jnp.asarray(c, jnp.float32)))
                             for c in np.array_split(np.asarray(c_cal), max(1, len(c_cal) // 65536))])
    offset = calibrate_intercepts(logits, np.asarray(y_cal), n_states)
    last = model.layers[-1]
    last.bias[...] = last.bias[...] + jnp.asarray(offset, last.bias.dtype)
    return model, history


class StateFlow(nnx.Module):
    """A flow decoder split into structural states: ``p(x | c) = sum_k pi_k(c) p(x | c, k)``.

    The last entry of a frame's noise vector picks the state (its normal CDF is the uniform variate of the
    inverse-CDF draw from ``pi(c)``); the rest is the flow's prior sample, carried to ``p(x | c, k)`` by the
    velocity field conditioned on ``c`` and the one-hot state.

    Example:
        >>> from lss_jax.decoder.flow import VelocityField
        >>> flow = StateFlow(VelocityField(4, 2 + 3, hidden=(8,), rngs=nnx.Rngs(0)),
        ...                  StateClassifier(2, 3, hidden=(8,), rngs=nnx.Rngs(1)))
        >>> flow.noise_dim, flow.sample(jnp.zeros((5, 5)), jnp.zeros((5, 2)), n_steps=2).shape
        (5, (5, 4))
    """

    def __init__(self, field, classifier: StateClassifier):
        self.field, self.classifier = field, classifier
        self.dim, self.n_states = field.noise_dim, classifier.n_states

    @property
    def noise_dim(self) -> int:
        return self.dim + 1

    def states(self, z_last: jax.Array, c: jax.Array) -> jax.Array:
        """State indices ``[...]`` for normal variates ``z_last [...]`` and conditions ``c [..., m]``."""
        p = jax.nn.softmax(self.classifier(c).astype(jnp.float32), axis=-1)
        u = jax.scipy.stats.norm.cdf(z_last.astype(jnp.float32))
        return jnp.minimum(jnp.sum(jnp.cumsum(p, axis=-1) < u[..., None], axis=-1), self.n_states - 1)

    def field_condition(self, z: jax.Array, c: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The flow's prior sample and condition for noise ``z [B, dim + 1]`` and conditions ``c [B, m]``:
        ``(z[:, :-1], [c, one-hot state])``, ``c`` moved to the nearest of the state's own latent points for a rare
        state (:meth:`StateClassifier.anchor`)."""
        k = self.states(z[..., -1], c)
        c = self.classifier.anchor(c.astype(z.dtype), k)
        return z[..., :-1], jnp.concatenate([c, jax.nn.one_hot(k, self.n_states, dtype=z.dtype)], -1)

    def anchor_support(self, key: jax.Array, cmap, support, *, n_steps: int, solver: str = "heun",
                       n_draws: int = ANCHOR_DRAWS) -> np.ndarray:
        """For every anchor (:meth:`StateClassifier.anchor`), the share of ``n_draws`` of its state's flow, given the
        anchor itself, that lie inside the decoder's ``support`` (:func:`lss_jax.decoder.support.support_ratio`
        ``>= 1``) once mapped to coordinates by ``cmap``: ``[R]``."""
        from lss_jax.decoder.coordinates import features_to_xyz
        from lss_jax.decoder.support import support_ratio

        anchors, owner = self.classifier.anchors[...], self.classifier.anchor_states[...]
        n = anchors.shape[0]
        if n == 0:
            return np.zeros(0)
        x0 = jax.random.normal(key, (n * n_draws, self.dim))
        cond = jnp.concatenate([jnp.repeat(anchors, n_draws, axis=0),
                                jax.nn.one_hot(jnp.repeat(owner, n_draws), self.n_states, dtype=jnp.float32)], -1)
        inside = []
        for rows in np.array_split(np.arange(n * n_draws), max(1, (n * n_draws) // 4096)):  # bounded memory
            features = self._carry(x0[rows], cond[rows], n_steps=n_steps, solver=solver)
            inside.append(np.asarray(support_ratio(support, features_to_xyz(cmap, features.astype(jnp.float32)))) >= 1)
        return np.concatenate(inside).reshape(n, n_draws).mean(1)

    def prune_anchors(self, key: jax.Array, cmap, support, *, n_steps: int, solver: str = "heun",
                      min_inside: float = ANCHOR_MIN_INSIDE) -> int:
        """Drop the anchors whose state's flow places fewer than ``min_inside`` of its draws there inside the
        support (:meth:`anchor_support`): a frame of a rare state the flow did not learn to reproduce, so that a
        latent point near it is given the nearest of the state's frames the flow does reproduce. A state whose
        anchors all fall short keeps those with the largest share. Returns how many were dropped."""
        share = self.anchor_support(key, cmap, support, n_steps=n_steps, solver=solver)
        owner = np.asarray(self.classifier.anchor_states[...])
        keep = share >= min_inside
        for k in np.unique(owner):
            mine = owner == k
            if not np.any(keep & mine):
                keep |= mine & (share == share[mine].max())
        self.classifier.keep_anchors(keep)
        return int(np.sum(~keep))

    def sample(self, z: jax.Array, c: jax.Array, *, n_steps: int, solver: str = "heun") -> jax.Array:
        """Features ``[B, dim]`` from noise ``z [B, dim + 1]`` and conditions ``c [B, m]`` (a field with its own
        ``sample``, the chain decoder's, maps its prior sample and repairs the result itself)."""
        x0, cond = self.field_condition(z, c)
        return self._carry(x0, cond, n_steps=n_steps, solver=solver)

    def _carry(self, x0: jax.Array, cond: jax.Array, *, n_steps: int, solver: str) -> jax.Array:
        """The field's prior sample ``x0`` carried to features under ``cond`` (``[c, one-hot state]``)."""
        from lss_jax.decoder.flow import integrate_flow

        if hasattr(self.field, "sample"):
            return self.field.sample(x0, cond, n_steps=n_steps, solver=solver)
        return integrate_flow(self.field, x0, cond, n_steps=n_steps, solver=solver)
