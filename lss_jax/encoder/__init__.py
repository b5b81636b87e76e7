"""The SRV encoder: a state-free reversible VAMPnet that learns the slowest eigenfunctions.

An MLP ``chi: features -> R^k`` is trained to maximize the reversible VAMP-2 score of
``(chi(x_t), chi(x_{t+tau}))``. After training, the generalized eigenproblem ``C1 v = lambda C0 v``
is solved once over all data in float64; the eigenfunctions ``psi_i = (chi - mean) . v_i`` have unit
variance, are mutually uncorrelated, and come in decreasing order of eigenvalue, i.e. of implied
timescale ``t_i = -tau / ln lambda_i``. Their signs are fixed so that each ``psi_i`` has positive
skewness (a deterministic, data-defined choice).

References:
    W. Chen, H. Sidky, A. L. Ferguson, J. Chem. Phys. 150, 214114 (2019).
    H. Sidky, W. Chen, A. L. Ferguson, Chem. Sci. 11, 9459 (2020), Sec. 2.1.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.linalg
from flax import nnx

from lss_jax.config import EncoderConfig
from lss_jax.data.pairs import lagged_pairs, split_trajectories
from lss_jax.encoder.vamp import vamp_loss
from lss_jax.engine.train import TrainHistory, fit

__all__ = [
    # the network and its training
    "SRVNet", "srv_loss", "fit_srv", "linear_floor", "below_floor", "resolved_processes",
    # the eigenfunction projection fitted once after training
    "SRVProjection", "srv_projection", "reversible_decomposition", "srv_transform",
    # timescales and the choice of the latent dimension
    "implied_timescales", "choose_latent_dim", "srv_lag_scan",
]


class SRVNet(nnx.Module):
    """MLP ``[..., n_features] -> [..., n_outputs]`` (paper: 2 x 100 tanh with batch norm).

    With ``linear=True`` the output is a linear map of the features plus the MLP's correction,
    ``chi(x) = W x + b + MLP(x)``, and the MLP's last layer starts at zero: :func:`fit_srv` sets ``W, b`` to TICA's
    projection, so the untrained network is TICA and training starts from it (the linear floor).

    Example:
        >>> net = SRVNet(n_features=3, n_outputs=2, hidden=(8,), rngs=nnx.Rngs(0))
        >>> net(jax.random.normal(jax.random.key(0), (64, 3))).shape
        (64, 2)
        >>> residual = SRVNet(n_features=3, n_outputs=2, hidden=(8,), linear=True, rngs=nnx.Rngs(0))
        >>> x = jax.random.normal(jax.random.key(0), (64, 3))
        >>> bool(jnp.allclose(residual(x), residual.linear(x)))   # the MLP's correction starts at zero
        True
    """

    def __init__(
        self,
        n_features: int,
        n_outputs: int,
        hidden: Sequence[int] = (100, 100),
        *,
        activation: Callable = jnp.tanh,
        batch_norm: bool = True,
        linear: bool = False,
        rngs: nnx.Rngs,
    ):
        if n_outputs < 1 or n_outputs > n_features:
            raise ValueError(
                f"the encoder cannot output {n_outputs} coordinates from {n_features} features; choose a "
                f"latent dimension between 1 and {n_features}."
            )
        sizes = (n_features, *hidden)
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])
        # momentum 0.9 (flax default 0.99): running statistics must settle within a few hundred updates,
        # or the eval-mode network used for the eigen-decomposition lags far behind the trained one.
        self.norms = nnx.List([nnx.BatchNorm(b, momentum=0.9, rngs=rngs) for b in hidden]) if batch_norm else None
        zero = nnx.initializers.zeros_init()
        self.head = nnx.Linear(sizes[-1], n_outputs, kernel_init=zero, rngs=rngs) if linear else nnx.Linear(
            sizes[-1], n_outputs, rngs=rngs)
        self.linear = nnx.Linear(n_features, n_outputs, rngs=rngs) if linear else None
        self.activation = activation

    def __call__(self, x: jax.Array) -> jax.Array:
        h = x
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if self.norms is not None:
                h = self.norms[i](h)
            h = self.activation(h)
        return self.head(h) if self.linear is None else self.linear(x) + self.head(h)


def srv_loss(model: SRVNet, batch, *, epsilon: float = 1e-6) -> jax.Array:
    """Negative reversible VAMP-2 score of a batch of lagged pairs ``(x_0 [B, d], x_tau [B, d])``.

    Both halves go through the network in one call so that batch-norm statistics are shared.

    Example:
        >>> net = SRVNet(3, 2, hidden=(8,), rngs=nnx.Rngs(0))
        >>> x = jax.random.normal(jax.random.key(0), (64, 3))
        >>> loss = srv_loss(net, (x[:-1], x[1:]))
        >>> loss.shape, float(loss) <= -1.0   # VAMP-2 score >= 1 (the constant eigenfunction)
        ((), True)
    """
    x0, xt = batch
    chi = model(jnp.concatenate([x0, xt], axis=0))
    return vamp_loss(chi[: x0.shape[0]], chi[x0.shape[0] :], r=2, reversible=True, epsilon=epsilon)


class SRVProjection(NamedTuple):
    """Float64 linear map from network outputs to eigenfunctions.

    Attributes:
        mean: ``[k]`` stationary mean of the network outputs.
        vectors: ``[k, k]`` generalized eigenvectors (columns), ``v^T C0 v = I``.
        eigenvalues: ``[k]`` in decreasing order.
        lag: lag in frames used for the decomposition.

    Example:
        >>> SRVProjection(np.zeros(2), np.eye(2), np.array([0.9, 0.5]), lag=1).eigenvalues.tolist()
        [0.9, 0.5]
    """

    mean: np.ndarray
    vectors: np.ndarray
    eigenvalues: np.ndarray
    lag: int


def _network_outputs(model, features_list, batch: int = 65536) -> list[np.ndarray]:
    model.eval()
    graphdef, state = nnx.split(model)
    apply = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
    return [
        np.concatenate([np.asarray(apply(state, jnp.asarray(f[i : i + batch])), np.float64) for i in range(0, len(f), batch)])
        for f in features_list
    ]


def reversible_decomposition(data_list, lag: int, *, epsilon: float = 1e-10) -> SRVProjection:
    """Float64 reversible (symmetrized) eigen-decomposition of time series ``[n_frames, k]``.

    Solves ``C1 v = lambda C0 v`` with ``C0 = (C00 + C11)/2``, ``C1 = (C01 + C10)/2`` over the lagged
    pairs of all trajectories (joint mean removed). Applied to network outputs it is the SRV
    projection; applied to raw features it is TICA. Eigenvectors satisfy ``v^T C0 v = I`` (unit
    variance) and are signed so that each projection has positive skewness.

    Example:
        Two independent AR(1) processes with autocorrelations 0.9 and 0.5 (TICA of raw data):

        >>> rng = np.random.default_rng(0)
        >>> x = np.zeros((20000, 2))
        >>> for t in range(1, len(x)):
        ...     x[t] = np.array([0.9, 0.5]) * x[t - 1] + rng.normal(size=2)
        >>> projection = reversible_decomposition([x], lag=1)
        >>> projection.eigenvalues.round(1).tolist(), projection.vectors.shape
        ([0.9, 0.5], (2, 2))
    """
    data_list = [np.asarray(d, np.float64) for d in data_list]
    x0, xt = lagged_pairs(data_list, lag)
    mean = 0.5 * (x0.mean(0) + xt.mean(0))
    x0, xt = x0 - mean, xt - mean
    n = len(x0)
    c0 = 0.5 * (x0.T @ x0 + xt.T @ xt) / n
    c1 = 0.5 * (x0.T @ xt + xt.T @ x0) / n
    c0 += epsilon * np.trace(c0) / len(c0) * np.eye(len(c0))
    eigenvalues, vectors = scipy.linalg.eigh(c1, c0)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, vectors = eigenvalues[order], vectors[:, order]
    proj = np.concatenate(data_list) @ vectors - mean @ vectors
    skew = np.mean(proj**3, axis=0)
    vectors = vectors * np.where(skew < 0, -1.0, 1.0)[None, :]
    return SRVProjection(mean, vectors, eigenvalues, lag)


def srv_projection(model: SRVNet, features_list, lag: int, *, epsilon: float = 1e-10) -> SRVProjection:
    """Solve the SRV eigenproblem once over all (standardized) data in float64.

    Example:
        >>> net = SRVNet(3, 2, hidden=(8,), rngs=nnx.Rngs(0))
        >>> x = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
        >>> projection = srv_projection(net, [x], lag=1)
        >>> projection.vectors.shape, projection.lag
        ((2, 2), 1)
    """
    return reversible_decomposition(_network_outputs(model, features_list), lag, epsilon=epsilon)


def srv_transform(model: SRVNet, projection: SRVProjection, features, latent_dim: int | None = None) -> np.ndarray:
    """Eigenfunctions ``psi [n_frames, latent_dim]`` (float64) of standardized features ``[n_frames, d]``.

    Example:
        >>> net = SRVNet(3, 2, hidden=(8,), rngs=nnx.Rngs(0))
        >>> x = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
        >>> psi = srv_transform(net, srv_projection(net, [x], lag=1), x, latent_dim=1)
        >>> psi.shape, psi.dtype
        ((100, 1), dtype('float64'))
    """
    k = projection.vectors.shape[1] if latent_dim is None else latent_dim
    chi = _network_outputs(model, [features])[0]
    return (chi - projection.mean[None, :]) @ projection.vectors[:, :k]


def implied_timescales(eigenvalues, lag_time: float) -> np.ndarray:
    """``t_i = -lag_time / ln(lambda_i)``; eigenvalues outside ``(0, 1)`` give ``nan``.

    Example:
        >>> implied_timescales([1.0, np.exp(-1.0), np.exp(-0.5), -0.2], lag_time=2.0).round(6).tolist()
        [nan, 2.0, 4.0, nan]
    """
    lam = np.asarray(eigenvalues, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -lag_time / np.log(lam)
    return np.where((lam > 0) & (lam < 1), t, np.nan)


def choose_latent_dim(timescales, max_dim: int | None = None, min_dim: int = 1) -> int:
    """Latent dimension at the largest timescale gap: ``argmax_i t_i / t_{i+1}`` (1-based) over ``i >= min_dim``,
    ``nan`` last; ``min_dim`` when there are not more timescales than that.

    Example:
        >>> choose_latent_dim([100.0, 90.0, 10.0, 9.0])   # gap between t_2 and t_3
        2
        >>> choose_latent_dim([100.0, 90.0, 10.0, 9.0], max_dim=2)
        1
        >>> choose_latent_dim([576.0, 232.0, 126.0, 112.0]), choose_latent_dim([576.0, 232.0, 126.0, 112.0], min_dim=2)
        (1, 2)
    """
    t = np.asarray(timescales, np.float64)[: max_dim]
    t = t[np.isfinite(t)]
    if len(t) <= min_dim:
        return max(1, min(int(min_dim), len(t)))
    return int(np.argmax(t[min_dim - 1:-1] / t[min_dim:]) + min_dim)


def linear_floor(model: SRVNet, features_list, lag: int, *, val_fraction: float = 0.1,
                 max_pairs: int = 200_000, n_blocks: int = 20, n_bootstrap: int = 200, n_folds: int = 5) -> dict:
    """The encoder against TICA on the same features, lag and split: reversible VAMP-2, and the eigenvalues of the
    slow processes on pairs TICA was not fitted to.

    TICA (:func:`reversible_decomposition` of the features) is fitted on the training part, and both encoders are
    scored with as many outputs as the network has, the network in eval mode:

    * ``*_vamp2``: reversible VAMP-2 (:func:`lss_jax.encoder.vamp.vamp_loss`, r = 2) on all training pairs and on
      all validation pairs (evenly spaced, at most ``max_pairs``), as in the train summary. On the training pairs
      TICA's is in sample: with many features it is biased up (Trp-cage's 224 features: 2.42 in sample, TICA's
      slowest timescale 309 ps in sample against 238 ps out of sample), so :func:`below_floor` does not read it.
    * ``*_eigenvalues``: the eigenvalues of the whitened reversible time-lagged covariance of each encoder's
      outputs, largest first (the processes its outputs span; VAMP-2 is one plus the sum of their squares), where
      TICA is out of sample: on the validation pairs (``val``), and on the training part cross-fitted (``train``):
      every trajectory's training part cut into ``n_folds`` contiguous pieces, TICA fitted on the others and both
      encoders scored on each piece's pairs, the eigenvalues averaged over the pieces. The SRV is in sample on the
      training part, so a shortfall there is a process it did not learn, not noise it did not fit.

    Every SRV-minus-TICA difference comes with its standard error (``diff_se_*`` for VAMP-2,
    ``eigenvalue_diff_se_*`` per process): a block bootstrap over contiguous blocks of pairs (``n_blocks`` on each
    split, shared among the pieces of the training part; ``n_bootstrap`` replicates, a fixed seed), both encoders
    scored on the same resampled pairs.

    Returns:
        dict with ``srv_train_vamp2``, ``tica_train_vamp2``, ``diff_se_train``, ``srv_train_eigenvalues``,
        ``tica_train_eigenvalues``, ``eigenvalue_diff_se_train`` (and the same for ``val``) and
        ``tica_eigenvalues`` (of TICA on all the frames, as the SRV projection's; leading ``k``).

    Example:
        >>> x = np.random.default_rng(0).normal(size=(400, 3)).astype(np.float32)
        >>> net, _, _ = fit_srv(jax.random.key(0), [x], 1, 2, config=EncoderConfig(hidden=(4,), batch_size=64, epochs=1),
        ...                     progress=False)
        >>> scores = linear_floor(net, [x], 1)
        >>> len(scores["srv_val_eigenvalues"]), len(scores["tica_train_eigenvalues"]), scores["diff_se_val"] > 0
        (2, 2, True)
    """
    k = model.head.out_features
    train, val = split_trajectories(features_list, val_fraction)
    tica = reversible_decomposition(train, lag)
    rng = np.random.default_rng(0)
    model.eval()

    def scored(part, fitted, blocks):  # both encoders on the lagged pairs of part: block moments of each
        x0, xt = lagged_pairs(part, lag)
        keep = np.linspace(0, len(x0) - 1, min(len(x0), max_pairs)).astype(int)
        x0, xt = x0[keep], xt[keep]
        y0, yt = (jnp.asarray((np.asarray(x, np.float64) - fitted.mean) @ fitted.vectors[:, :k], jnp.float32)
                  for x in (x0, xt))
        chi = model(jnp.concatenate([jnp.asarray(x0), jnp.asarray(xt)]))  # one pass, as srv_loss makes it
        chi0, chit = chi[: len(x0)], chi[len(x0):]
        as64 = lambda a: np.asarray(a, np.float64)  # noqa: E731
        moments = (_pair_block_moments(as64(chi0), as64(chit), blocks), _pair_block_moments(as64(y0), as64(yt), blocks))
        return (chi0, chit), (y0, yt), moments

    def eigenvalues(moments):  # whole, and the bootstrap's SRV - TICA replicates
        n = len(moments[0][0])
        counts = rng.multinomial(n, np.full(n, 1 / n), n_bootstrap)
        srv, ref = (_reversible_eigenvalues(m, np.ones((1, n)))[0] for m in moments)
        return srv, ref, _reversible_eigenvalues(moments[0], counts) - _reversible_eigenvalues(moments[1], counts)

    out, split_moments = {}, {}
    for part_name, part in (("train", train), ("val", val)):
        (chi0, chit), (y0, yt), moments = scored(part, tica, n_blocks)
        split_moments[part_name] = moments
        out[f"srv_{part_name}_vamp2"] = -float(vamp_loss(chi0, chit, r=2, reversible=True, epsilon=1e-6))
        out[f"tica_{part_name}_vamp2"] = -float(vamp_loss(y0, yt, r=2, reversible=True))
        n = len(moments[0][0])
        counts = rng.multinomial(n, np.full(n, 1 / n), n_bootstrap)
        diff = _reversible_vamp2(moments[0], counts) - _reversible_vamp2(moments[1], counts)
        out[f"diff_se_{part_name}"] = float(np.std(diff, ddof=1))
    pieces = []  # (TICA fitted without the piece, the piece)
    for f in range(n_folds):
        held, rest = [], []
        for x in train:
            edges = np.linspace(0, len(x), n_folds + 1).astype(int)
            held.append(x[edges[f]:edges[f + 1]])
            rest += [seg for seg in (x[:edges[f]], x[edges[f + 1]:]) if len(seg) > lag]
        if sum(max(len(h) - lag, 0) for h in held) >= 2 * k + 2 and rest:
            pieces.append((reversible_decomposition(rest, lag), [h for h in held if len(h) > lag]))
    for part_name, moments_list in (
            ("train", [scored(piece, fitted, max(2, n_blocks // n_folds))[2] for fitted, piece in pieces]),
            ("val", [split_moments["val"]])):  # TICA of the training part is out of sample there already
        results = [eigenvalues(moments) for moments in moments_list]
        if not results:  # a training part too short to cut: nothing to compare there
            out[f"srv_{part_name}_eigenvalues"] = out[f"tica_{part_name}_eigenvalues"] = []
            out[f"eigenvalue_diff_se_{part_name}"] = []
            continue
        srv, ref, diff = (np.mean([r[i] for r in results], axis=0) for i in range(3))
        out[f"srv_{part_name}_eigenvalues"], out[f"tica_{part_name}_eigenvalues"] = srv.tolist(), ref.tolist()
        out[f"eigenvalue_diff_se_{part_name}"] = np.std(diff, axis=0, ddof=1).tolist()
    out["tica_eigenvalues"] = reversible_decomposition(features_list, lag).eigenvalues[:k]
    return out


def below_floor(scores: dict, tolerance: float = 0.1, n_se: float = 2.0) -> bool:
    """Whether :func:`linear_floor` scores put the encoder below TICA: on the training part (TICA cross-fitted) or
    on the validation pairs, a process TICA resolves there (its implied timescale at least the lag) is more than
    ``tolerance`` shorter in the encoder (its ``i``-th implied timescale against TICA's ``i``-th), by an eigenvalue
    difference of more than ``n_se`` standard errors (``eigenvalue_diff_se_*``).

    The rule guards what the linear floor exists for: a slow process TICA finds and the network loses (on the rare-state
    system the plain SRV loses 11-50 % of a timescale on held-out pairs where it fails, and the issue's alanine
    dipeptide 80 %). Processes faster than the lag are left out (a model at that lag does not resolve them), and so
    is a timescale a few per cent short where both encoders find the same process (10 % is the project's accuracy
    target for t1). docs/encoder.md has the measurements.

    Example:
        >>> scores = dict(srv_train_eigenvalues=[0.60, 0.1], tica_train_eigenvalues=[0.80, 0.3],
        ...               eigenvalue_diff_se_train=[0.02, 0.02], srv_val_eigenvalues=[0.7, 0.1],
        ...               tica_val_eigenvalues=[0.7, 0.3], eigenvalue_diff_se_val=[0.02, 0.02])
        >>> below_floor(scores), below_floor({**scores, "srv_train_eigenvalues": [0.79, 0.1]})
        (True, False)
    """
    def timescale(eigenvalue):  # in lags: -1 / ln(lambda); a process with lambda <= 0 has none
        return -1.0 / np.log(eigenvalue) if 0 < eigenvalue < 1 else (np.inf if eigenvalue >= 1 else 0.0)

    return any(tica - srv > n_se * se and timescale(srv) < (1 - tolerance) * timescale(tica)
               for part in ("train", "val") for srv, tica, se in resolved_processes(scores, part))


def resolved_processes(scores: dict, part: str = "train") -> list[tuple[float, float, float]]:
    """``(SRV eigenvalue, TICA eigenvalue, SE of their difference)`` of the processes TICA resolves on ``part``
    (``"train"``, cross-fitted, or ``"val"``) of :func:`linear_floor` scores: those with an implied timescale of at
    least the lag (eigenvalue >= 1/e), the ones :func:`below_floor` judges.

    Example:
        >>> resolved_processes(dict(srv_train_eigenvalues=[0.7, 0.1], tica_train_eigenvalues=[0.8, 0.3],
        ...                         eigenvalue_diff_se_train=[0.02, 0.05]))
        [(0.7, 0.8, 0.02)]
    """
    return [(srv, tica, se) for srv, tica, se in zip(scores.get(f"srv_{part}_eigenvalues", []),
                                                     scores.get(f"tica_{part}_eigenvalues", []),
                                                     scores.get(f"eigenvalue_diff_se_{part}", []))
            if tica >= np.exp(-1.0)]


def _pair_block_moments(y0: np.ndarray, yt: np.ndarray, n_blocks: int):
    """Per contiguous block of lagged pairs: ``(n [b], s [b, k], m [b, k, k], c [b, k, k])``, the block's pair count,
    the sum of both halves, ``y0' y0 + yt' yt`` and ``y0' yt + yt' y0``: the reversible covariances of any
    resampling of the blocks follow from them."""
    edges = np.linspace(0, len(y0), min(n_blocks, len(y0)) + 1).astype(int)
    parts = [(y0[a:b], yt[a:b]) for a, b in zip(edges[:-1], edges[1:]) if b > a]
    return (np.array([len(a) for a, _ in parts], np.float64), np.array([a.sum(0) + b.sum(0) for a, b in parts]),
            np.array([a.T @ a + b.T @ b for a, b in parts]), np.array([a.T @ b + b.T @ a for a, b in parts]))


def _reversible_vamp2(blocks, counts: np.ndarray, epsilon: float = 1e-10) -> np.ndarray:
    """Reversible VAMP-2 (``1 + ||C0^-1/2 C1 C0^-1/2||_F^2``, covariances symmetrized about the pairs' joint mean)
    of the pairs resampled with ``counts [R, b]`` of each block: ``[R]``."""
    return 1 + np.sum(_reversible_eigenvalues(blocks, counts, epsilon) ** 2, axis=1)


def _reversible_eigenvalues(blocks, counts: np.ndarray, epsilon: float = 1e-10) -> np.ndarray:
    """Eigenvalues of ``C0^-1/2 C1 C0^-1/2`` (covariances symmetrized about the pairs' joint mean) of the pairs
    resampled with ``counts [R, b]`` of each block, largest first: ``[R, k]``."""
    n, s, m00, m01 = blocks
    total = counts @ n
    mean = (counts @ s) / (2 * total)[:, None]
    c0 = np.einsum("rb,bij->rij", counts, m00) / (2 * total)[:, None, None] - mean[:, :, None] * mean[:, None, :]
    c1 = np.einsum("rb,bij->rij", counts, m01) / (2 * total)[:, None, None] - mean[:, :, None] * mean[:, None, :]
    w, v = np.linalg.eigh(c0)
    inv_sqrt = np.einsum("rij,rj,rkj->rik", v, 1 / np.sqrt(np.maximum(w, epsilon)), v)
    return np.linalg.eigvalsh(inv_sqrt @ c1 @ inv_sqrt)[:, ::-1]


def fit_srv(
    key: jax.Array,
    features_list,
    lag: int,
    n_outputs: int,
    *,
    config: EncoderConfig = EncoderConfig(),
    val_fraction: float = 0.1,
    tica_path: bool = False,
    progress: bool = True,
    checkpoint=None,
) -> tuple[SRVNet, SRVProjection, TrainHistory]:
    """Train an SRV on standardized features and solve its eigenproblem.

    With ``tica_path=True`` (the linear floor) the network is ``TICA projection + MLP correction``
    (:class:`SRVNet` with ``linear=True``): the linear part starts as TICA of the training pairs (the leading
    ``n_outputs`` eigenvectors of :func:`reversible_decomposition`), the correction at zero, and the untrained network
    is a candidate of early stopping. The encoder then never ends below TICA's validation VAMP-2 on the same
    features, lag and split: what minibatches that rarely hold a rare state's frames, or a validation block that
    never visits it, would otherwise lose, the linear path keeps.

    With ``config.linear_floor=True`` (the default) the plain SRV is trained first and kept unless it loses a slow
    process TICA finds on the same features, lag and split (:func:`linear_floor`, :func:`below_floor`); then the
    network is trained again, with the same key, from TICA with the residual linear path.

    Args:
        key: PRNG key (initialization and shuffling).
        features_list: list of ``[n_frames, n_features]`` arrays, one per trajectory.
        lag: lag in frames.
        n_outputs: number of network outputs (eigenfunctions learned; :attr:`lss_jax.config.EncoderConfig.n_outputs`
            in :func:`lss_jax.fit_lss`).
        config: the architecture (``hidden``, ``batch_norm``), Adam and early stopping on the validation VAMP-2
            score (``learning_rate``, ``batch_size``, ``epochs``, ``patience``) and ``linear_floor`` (above); its
            ``latent_dim`` and ``max_latent_dim`` are not read here (``n_outputs`` is).
        val_fraction: trailing fraction of every trajectory held out for validation.
        tica_path: start from TICA with a residual linear path (above).
        checkpoint: optional :class:`lss_jax.engine.checkpoint.Checkpointer` (see :func:`lss_jax.engine.train.fit`).

    Returns:
        ``(model, projection, history)``.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32)
        >>> model, projection, history = fit_srv(jax.random.key(0), [x], 1, 2,
        ...                                      config=EncoderConfig(hidden=(), batch_size=64, epochs=1), progress=False)
        >>> projection.vectors.shape, projection.eigenvalues.shape, history.epochs_run
        ((2, 2), (2,), 1)
    """
    k_init, k_fit = jax.random.split(key)
    train, val = split_trajectories(features_list, val_fraction)
    train_pairs, val_pairs = lagged_pairs(train, lag), lagged_pairs(val, lag)
    batch_size = min(config.batch_size, len(train_pairs[0]))
    if batch_size < 2 * n_outputs + 2:
        raise ValueError(
            f"only {len(train_pairs[0])} lagged training pairs at lag {lag}: too few to estimate "
            f"{n_outputs}x{n_outputs} covariances; use a shorter lag or more data."
        )
    model = SRVNet(features_list[0].shape[1], n_outputs, config.hidden, batch_norm=config.batch_norm, linear=tica_path,
                   rngs=nnx.Rngs(k_init))
    if tica_path:
        tica = reversible_decomposition(train, lag)
        w = tica.vectors[:, :n_outputs]
        model.linear.kernel.value = jnp.asarray(w, jnp.float32)
        model.linear.bias.value = jnp.asarray(-tica.mean @ w, jnp.float32)
    learning_rate = config.learning_rate
    model, history = fit(
        k_fit, model, srv_loss, train_pairs, val_pairs, optimizer=optax.adam(learning_rate),
        batch_size=batch_size, max_epochs=config.epochs, patience=config.patience, progress=progress,
        desc="SRV encoder", checkpoint=checkpoint, run_id=f"srv adam lr={learning_rate!r} lag={lag}",
        keep_initial=tica_path,
    )
    if config.linear_floor and not tica_path and below_floor(linear_floor(model, features_list, lag,
                                                                          val_fraction=val_fraction)):
        # deterministic, so an interrupted run repeats it to the same bits; no checkpoint of its own
        return fit_srv(key, features_list, lag, n_outputs, config=config, val_fraction=val_fraction, tica_path=True,
                       progress=progress)
    return model, srv_projection(model, features_list, lag), history


def srv_lag_scan(
    key: jax.Array, features_list, lags: Sequence[int], n_outputs: int, *, frame_time: float = 1.0, **fit_kwargs
) -> np.ndarray:
    """Implied timescales ``[len(lags), n_outputs]`` (units of ``frame_time``) of SRVs trained at each lag
    (``fit_kwargs``: :func:`fit_srv`'s ``config``, ``val_fraction``, ``progress``, ...).

    Converged timescales (flat in the lag) indicate a lag long enough for Markovian latent dynamics.

    Example:
        >>> x = np.cumsum(np.random.default_rng(0).normal(size=(200, 2)), axis=0).astype(np.float32)
        >>> x = (x - x.mean(0)) / x.std(0)
        >>> timescales = srv_lag_scan(jax.random.key(0), [x], [1, 2], 1, frame_time=0.5,
        ...                           config=EncoderConfig(hidden=(), batch_size=64, epochs=1), progress=False)
        >>> timescales.shape
        (2, 1)
    """
    out = []
    for i, lag in enumerate(lags):
        _, proj, _ = fit_srv(jax.random.fold_in(key, i), features_list, int(lag), n_outputs, **fit_kwargs)
        out.append(implied_timescales(proj.eigenvalues, lag * frame_time))
    return np.array(out)
