"""The lag chosen from the data: the shortest lag at which the leading implied timescales level off within their
errors (float64 NumPy; what ``lss-jax train --lag auto`` runs).

The measurement is that of ``lss-jax lagscan`` (implied timescales against the lag), made with linear TICA on the
standardized features instead of one SRV per lag, because it has to come with error bars and run before training:
TICA at twelve lags with a 100-replicate block bootstrap takes seconds (0.4 s for alanine dipeptide, 10 s for the
224 features of Trp-cage, one core) where one SRV per lag takes seconds to minutes (8 s on alanine dipeptide)
and a bootstrap of SRVs a hundred times that, and it is deterministic. Both are variational estimates of the
same eigenvalues, the SRV's over a richer function class that holds TICA's; where the features' linear span misses
the slow coordinate TICA's timescales keep rising with the lag longer than the SRV's, which typically delays the
level-off: the rule errs towards a longer lag rather than a shorter one than an SRV scan would show.

The rule (:func:`choose_lag`):

1. Candidate lags: a geometric ladder (:data:`DEFAULT_LAGS`), keeping a lag only if it leaves at least
   ``min_pairs`` lagged pairs in all and is at most a quarter of a bootstrap block (so that each block holds its
   own pairs). Fewer than ``n_later + 1`` candidates: refused.
2. At each lag, the leading ``n_processes`` implied timescales ``t_i`` (frames) of the reversible TICA estimate on
   all the data, and their standard errors: the standard deviation over ``n_bootstrap`` resamples of ``n_blocks``
   contiguous blocks of the trajectories (whole trajectories when there are at least ``n_blocks`` of them; the same
   resample at every lag), times ``sqrt(B / (B - 1))`` for B blocks (resampling B blocks gives ``(B - 1) / B`` of
   the variance). On the test system of tests/test_lag_choice.py these errors were within 10-20 % of the spread of
   40 independent runs (from below before the factor).
3. The lag is the shortest ``lag_j`` at which every checked process agrees with itself at later lags within
   ``n_sigma`` combined standard errors, ``|t_i(j) - t_i(k)| <= n_sigma sqrt(se_i(j)^2 + se_i(k)^2)``: t1 at the
   next ``n_later`` lags and at every later lag at which it is resolved (``t1(k) >= lag_k`` and above the noise
   floor, below; a slow drift that adjacent lags cannot see is caught over the whole range where the process is
   measurable); t2, ... only if
   resolved at ``lag_j`` and the next ``n_later`` lags, and then at every later lag at which they are resolved
   (else they are skipped, which the reason says).
4. Refused, rather than a guess, when no lag levels off; when the longest t1 measured at any lag (above the noise
   floor, with a relative error below ``max_relative_error``) is longer than a fifth of a bootstrap block (``max_timescale_fraction``:
   fewer than about 2.5 relaxations per block, about 25 in all, too few for an honest error; the longest, because a
   linear estimate is low at short lags: with noisy features and few transitions the short-lag values are low
   enough, and their errors large enough, to look flat); or when t1 at the chosen lag has a relative error above
   ``max_relative_error``.

Where the features cannot express the slow eigenfunction exactly, a linear estimate approaches the true timescale
like ``t1 / (1 + c t1 / lag)`` (the overlap ``c`` does not decay with the lag): the rule then accepts a lag whose
timescale is within about ``n_sigma`` combined standard errors of that at the longest lag where t1 is still
resolved, which is itself still low. Where the projected dynamics become Markovian at a finite lag, the estimate is
exact from there on, and the rule finds that lag (tests/test_lag_choice.py).

Why "resolved" asks for more than ``t >= lag``: a process that has decayed within the lag should read ``t < lag``,
but the estimate has a noise floor. With ``d`` whitened features and ``N`` lagged pairs the largest eigenvalue of
the symmetrized cross-correlation of pure noise is about ``sqrt(2 d / N)`` (the edge of a Wigner semicircle); near
``e^-1`` every long lag then reads ``t ~ lag``, rising with the lag. On the shipped villin headpiece (659 Cα
features, 10 000 frames; floor 0.36) t1 read 1.02 lag from lag 50 on, and a rule that counted those lags as
measurements refused the data. A timescale counts as measured (for the comparisons and for the refusal) only where
it exceeds the floor's timescale ``-lag / ln sqrt(2 d / N)`` by ``n_sigma`` standard errors; with few features the
floor is far below the lag (Trp-cage's 224 features, 28 000 frames: 0.13; alanine dipeptide: 0.06) and nothing
changes (tests/test_lag_choice.py has the floor on a known answer).

References:
    Swope, W. C., Pitera, J. W. & Suits, F. "Describing protein folding kinetics by molecular dynamics
    simulations. 1. Theory", J. Phys. Chem. B 108, 6571 (2004) (implied timescales against the lag).
    Perez-Hernandez, G. et al., J. Chem. Phys. 139, 015102 (2013) (TICA).
    Kunsch, H. R. "The jackknife and the bootstrap for general stationary observations", Ann. Stat. 17, 1217
    (1989) (block bootstrap).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

from lss_jax.analysis._common import as_series_list, check_int, check_positive

__all__ = ["DEFAULT_LAGS", "LagChoice", "tica_timescales_with_errors", "paired_tica_timescale", "choose_lag",
           "format_lag_table"]

#: The candidate lags in frames, a roughly geometric ladder (each about 1.5 times the last).
DEFAULT_LAGS = (1, 2, 3, 5, 8, 12, 20, 30, 50, 80, 120, 200)

#: How the timescales and their errors are measured, for the record.
METHOD = "linear TICA (reversible estimate) on the standardized features; errors: block bootstrap"


class LagChoice(NamedTuple):
    """The lag chosen from the data and the evidence.

    Attributes:
        lag: the chosen lag (frames).
        lags: the candidate lags measured (frames).
        timescales: ``[len(lags), n_processes]`` leading implied timescales (frames; ``nan`` where not estimated).
        errors: ``[len(lags), n_processes]`` their block-bootstrap standard errors (frames).
        reason: the criterion's evidence, in words.
        n_blocks: bootstrap blocks used.
        block_frames: mean frames per block.
    """

    lag: int
    lags: tuple
    timescales: np.ndarray
    errors: np.ndarray
    reason: str
    n_blocks: int = 0
    block_frames: float = 0.0

    def as_info(self, frame_time: float = 1.0) -> dict:
        """JSON-ready record (``model.info["lag_choice"]``): lags in frames, timescales and errors in frames and in
        the time unit of ``frame_time`` (``nan`` as ``None``)."""
        def rows(a, scale=1.0):
            return [[None if not math.isfinite(v) else float(v) * scale for v in row] for row in np.asarray(a)]

        return {"lag": int(self.lag), "lag_time": float(self.lag * frame_time), "lags": [int(v) for v in self.lags],
                "frame_time": float(frame_time), "timescales_frames": rows(self.timescales),
                "errors_frames": rows(self.errors), "timescales": rows(self.timescales, frame_time),
                "errors": rows(self.errors, frame_time), "reason": self.reason, "method": METHOD,
                "n_blocks": int(self.n_blocks), "block_frames": float(self.block_frames)}


def _whiten(features: list[np.ndarray], cutoff: float = 1e-6) -> list[np.ndarray]:
    """Features centred and whitened over all frames, directions with variance below ``cutoff`` times the largest
    dropped (constant or collinear features would make the TICA eigenproblem singular)."""
    allx = np.concatenate(features)
    mean = allx.mean(0)
    std = allx.std(0)
    keep = std > 1e-12 * max(float(std.max()), 1e-300)
    if not keep.any():
        raise ValueError("every feature is constant: the data do not move, so there is no lag to choose.")
    z = (allx[:, keep] - mean[keep]) / std[keep]
    s, v = np.linalg.eigh(z.T @ z / len(z))
    good = s > cutoff * s.max()
    w = v[:, good] / np.sqrt(s[good])
    return [((f[:, keep] - mean[keep]) / std[keep]) @ w for f in features]


def _blocks(lengths: Sequence[int], n_blocks: int) -> list[tuple[int, int, int]]:
    """``(trajectory, start, stop)`` of the bootstrap blocks: whole trajectories when there are at least ``n_blocks``
    of them, else each trajectory cut into contiguous blocks in proportion to its length (at least one)."""
    if len(lengths) >= n_blocks:
        return [(i, 0, n) for i, n in enumerate(lengths)]
    total = sum(lengths)
    out = []
    for i, n in enumerate(lengths):
        k = max(1, round(n_blocks * n / total))
        edges = np.linspace(0, n, k + 1).round().astype(int)
        out += [(i, int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]
    return out


def _block_moments(x: list[np.ndarray], blocks, lag: int):
    """Per block: pair count, sums of x0 and xt, and the sums of x0 x0^T + xt xt^T and x0 xt^T + xt x0^T over the
    lagged pairs whose first frame lies in the block."""
    d = x[0].shape[1]
    n = np.zeros(len(blocks))
    s = np.zeros((len(blocks), d))
    c0 = np.zeros((len(blocks), d, d))
    c1 = np.zeros((len(blocks), d, d))
    for b, (i, start, stop) in enumerate(blocks):
        stop = min(stop, len(x[i]) - lag)
        if stop <= start:
            continue
        x0, xt = x[i][start:stop], x[i][start + lag : stop + lag]
        n[b] = len(x0)
        s[b] = x0.sum(0) + xt.sum(0)
        c0[b] = x0.T @ x0 + xt.T @ xt
        cross = x0.T @ xt
        c1[b] = cross + cross.T
    return n, s, c0, c1


def _timescales_from_moments(weights: np.ndarray, moments, lag: int, k: int, epsilon: float = 1e-10) -> np.ndarray:
    """Leading ``k`` implied timescales ``[n_weights, k]`` (frames) of the reversible estimate from block moments
    summed with ``weights [n_weights, n_blocks]``."""
    n, s, c0, c1 = moments
    npairs = weights @ n  # [R]
    mean = (weights @ s) / (2 * npairs)[:, None]  # [R, d]
    outer = mean[:, :, None] * mean[:, None, :]
    a0 = np.einsum("rb,bij->rij", weights, c0) / (2 * npairs)[:, None, None] - outer
    a1 = np.einsum("rb,bij->rij", weights, c1) / (2 * npairs)[:, None, None] - outer
    d = a0.shape[-1]
    a0 = a0 + epsilon * np.trace(a0, axis1=1, axis2=2)[:, None, None] / d * np.eye(d)
    lam = np.full((len(a0), k), np.nan)
    for r in range(len(a0)):  # a resample can leave out the only blocks in which a direction varies
        try:
            inv = np.linalg.inv(np.linalg.cholesky(a0[r]))
        except np.linalg.LinAlgError:
            continue  # no estimate from this resample (counted as such)
        lam[r] = np.linalg.eigvalsh(inv @ a1[r] @ inv.T)[::-1][:k]  # descending
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -lag / np.log(lam)
    return np.where((lam > 0) & (lam < 1), t, np.nan)


def tica_timescales_with_errors(features, lags: Sequence[int], *, n_processes: int = 2, n_blocks: int = 10,
                                n_bootstrap: int = 100, seed: int = 0):
    """Leading TICA implied timescales at each lag and their block-bootstrap standard errors.

    Args:
        features: ``[n_frames, n_features]`` or a list of such arrays (one per trajectory).
        lags: lags in frames.
        n_processes: timescales kept per lag.
        n_blocks: bootstrap blocks (whole trajectories when there are at least this many).
        n_bootstrap: bootstrap replicates (the same resample of blocks at every lag).
        seed: seed of the resampling.

    Returns:
        ``(timescales [len(lags), n_processes], errors [len(lags), n_processes], blocks)`` in frames; a timescale
        whose eigenvalue is not in (0, 1) is ``nan``, an error with more than 10 % such replicates is ``inf``;
        ``blocks`` lists ``(trajectory, start, stop)``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = np.zeros((20000, 1))
        >>> for t in range(1, len(x)):
        ...     x[t] = 0.9 * x[t - 1] + rng.normal()
        >>> ts, se, _ = tica_timescales_with_errors([x], [1, 2], n_processes=1)
        >>> ts.shape, bool((abs(ts - 9.49) < 3 * se).all())  # exact: -1 / ln 0.9 = 9.49 frames at every lag
        ((2, 1), True)
    """
    features = [np.asarray(f, np.float64) for f in as_series_list(features, "features", ndim=2)]
    k = check_int(n_processes, "n_processes")
    n_blocks = check_int(n_blocks, "n_blocks", 2)
    n_bootstrap = check_int(n_bootstrap, "n_bootstrap", 2)
    lags = [check_int(v, "lag") for v in lags]
    x = _whiten(features)
    k_eff = min(k, x[0].shape[1])
    blocks = _blocks([len(f) for f in x], n_blocks)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(blocks), np.full(len(blocks), 1.0 / len(blocks)), size=n_bootstrap).astype(float)
    # resampling B blocks gives (B - 1) / B of the variance of a mean over B independent blocks
    inflate = math.sqrt(len(blocks) / (len(blocks) - 1)) if len(blocks) > 1 else math.inf
    ts = np.full((len(lags), k), np.nan)
    se = np.full((len(lags), k), np.inf)
    for j, lag in enumerate(lags):
        moments = _block_moments(x, blocks, lag)
        if moments[0].sum() < 2:
            continue
        ts[j, :k_eff] = _timescales_from_moments(np.ones((1, len(blocks))), moments, lag, k_eff)[0]
        ok = weights @ moments[0] >= 2  # a replicate made only of blocks without pairs has no estimate
        boot = _timescales_from_moments(weights[ok], moments, lag, k_eff)
        finite = np.isfinite(boot)
        for i in range(k_eff):
            if finite[:, i].sum() >= max(2, 0.9 * n_bootstrap):
                se[j, i] = float(np.std(boot[finite[:, i], i], ddof=1)) * inflate
    return ts, se, blocks


def paired_tica_timescale(a, b, lag: int, *, n_bootstrap: int = 200, seed: int = 0) -> dict:
    """The slowest TICA implied timescale of two sets of trajectories made from the same paths (two decoders of the
    same latent trajectories, say), each with its error and the error of their difference, from one bootstrap over
    whole trajectories that takes the same trajectories from both sets, so what the paths share cancels.

    Args:
        a, b: lists of ``[n_frames, n_features]`` arrays, the ``i``-th of ``a`` and of ``b`` made from the same path
            (feature counts may differ between the sets).
        lag: the lag in frames.
        n_bootstrap: resamples of the trajectories.
        seed: seed of the resampling.

    Returns:
        ``{"a", "b", "difference", "a_se", "b_se", "difference_se"}`` in frames (``difference = a - b``); the errors
        are the bootstrap standard deviations times ``sqrt(n / (n - 1))`` for ``n`` trajectories (``inf`` with
        more than 10 % of resamples without an estimate).

    Example:
        Two AR(1) sets on shared innovations, autocorrelations 0.9 and 0.85 (exact: 9.49 and 6.15 frames):

        >>> rng = np.random.default_rng(0)
        >>> e = rng.normal(size=(20, 2000))
        >>> def ar(phi):
        ...     x = np.zeros_like(e)
        ...     for t in range(1, e.shape[1]):
        ...         x[:, t] = phi * x[:, t - 1] + e[:, t]
        ...     return [row[:, None] for row in x]
        >>> r = paired_tica_timescale(ar(0.9), ar(0.85), 1)
        >>> bool(abs(r["difference"] - 3.34) < 3 * r["difference_se"]), bool(r["difference_se"] < r["a_se"])
        (True, True)
    """
    sets = [[np.asarray(f, np.float64) for f in as_series_list(x, name, ndim=2)] for x, name in ((a, "a"), (b, "b"))]
    n = len(sets[0])
    if n != len(sets[1]) or n < 2:
        raise ValueError(f"a and b must hold the same number (at least 2) of trajectories made from the same paths, "
                         f"got {len(sets[0])} and {len(sets[1])}.")
    if [len(x) for x in sets[0]] != [len(x) for x in sets[1]]:
        raise ValueError("a and b must hold trajectories of the same lengths, one pair per path.")
    lag = check_int(lag, "lag")
    n_bootstrap = check_int(n_bootstrap, "n_bootstrap", 2)
    weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=n_bootstrap).astype(float)
    blocks = [(i, 0, len(x)) for i, x in enumerate(sets[0])]
    whole, boot = [], []
    for x in sets:
        moments = _block_moments(_whiten(x), blocks, lag)
        whole.append(float(_timescales_from_moments(np.ones((1, n)), moments, lag, 1)[0, 0]))
        boot.append(_timescales_from_moments(weights, moments, lag, 1)[:, 0])
    inflate = math.sqrt(n / (n - 1))

    def se(values):
        ok = np.isfinite(values)
        return float(np.std(values[ok], ddof=1)) * inflate if ok.sum() >= max(2, 0.9 * n_bootstrap) else math.inf

    return {"a": whole[0], "b": whole[1], "difference": whole[0] - whole[1], "a_se": se(boot[0]), "b_se": se(boot[1]),
            "difference_se": se(boot[0] - boot[1])}


def _floor_timescale(lag: int, n_features: int, n_pairs: int) -> float:
    """The timescale (frames) that pure noise reads at ``lag`` with ``n_features`` whitened features and ``n_pairs``
    lagged pairs: ``-lag / ln sqrt(2 n_features / n_pairs)`` (``inf`` when the floor reaches 1).

    Example:
        >>> round(_floor_timescale(200, 659, 9800), 1)  # the villin headpiece's Cα features: t ~ lag at every lag
        199.4
    """
    edge = math.sqrt(2.0 * n_features / max(n_pairs, 1))
    return math.inf if edge >= 1.0 else -lag / math.log(edge)


def choose_lag(features, lags: Sequence[int] | None = None, *, n_processes: int = 2, n_later: int = 2,
               n_sigma: float = 2.0, n_blocks: int = 10, n_bootstrap: int = 100, min_pairs: int = 1000,
               max_timescale_fraction: float = 0.2, max_relative_error: float = 0.3, seed: int = 0) -> LagChoice:
    """The shortest lag at which the leading implied timescales level off within their errors (the rule in this
    module's docstring), or a :class:`ValueError` saying why the data cannot decide.

    Args:
        features: featurized trajectories, ``[n_frames, n_features]`` or a list of them (any scaling: TICA is
            invariant to it; they are standardized and whitened here).
        lags: candidate lags in frames (default :data:`DEFAULT_LAGS`); those leaving too few pairs are dropped.
        n_processes: leading processes compared (t1 always; t2, ... while resolved).
        n_later: how many following lags each timescale must agree with.
        n_sigma: agreement within this many combined standard errors.
        n_blocks: bootstrap blocks; n_bootstrap: replicates; seed: their seed.
        min_pairs: a candidate lag must leave at least this many lagged pairs (all trajectories together).
        max_timescale_fraction: refuse when t1 at the chosen lag exceeds this fraction of a bootstrap block.
        max_relative_error: refuse when t1's standard error at the chosen lag exceeds this fraction of it.

    Returns:
        :class:`LagChoice`.

    Raises:
        ValueError: "the data are too short to choose a lag: ..." with the reason and what to do.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> s = np.cumprod(np.where(rng.random(100_000) < 0.02, -1.0, 1.0))  # two states, t1 = 24.5 frames
        >>> x = np.stack([s, rng.normal(size=len(s))], axis=1)  # the slow coordinate itself and a noise feature
        >>> choice = choose_lag([x], n_processes=1)  # exact at every lag: the shortest is chosen
        >>> choice.lag, bool(abs(choice.timescales[0, 0] - 24.5) < 2 * choice.errors[0, 0])
        (1, True)
    """
    features = [np.asarray(f, np.float64) for f in as_series_list(features, "features", ndim=2)]
    k = check_int(n_processes, "n_processes")
    n_later = check_int(n_later, "n_later")
    n_sigma = check_positive(n_sigma, "n_sigma")
    n_blocks = check_int(n_blocks, "n_blocks", 2)
    min_pairs = check_int(min_pairs, "min_pairs")
    lengths = [len(f) for f in features]
    candidates = sorted({check_int(v, "lag") for v in (DEFAULT_LAGS if lags is None else lags)})
    blocks = _blocks(lengths, n_blocks)
    block_frames = sum(lengths) / len(blocks)
    too_short = "the data are too short to choose a lag: "
    fix = "; give the lag yourself (--lag N; `lss-jax lagscan` shows the timescales against the lag)"
    usable = [lag for lag in candidates if sum(max(n - lag, 0) for n in lengths) >= min_pairs
              and lag <= block_frames / 4]
    if len(usable) < n_later + 1:
        raise ValueError(f"{too_short}{sum(lengths):,} frames in {len(lengths)} trajectories leave only "
                         f"{len(usable)} of the candidate lags {', '.join(map(str, candidates))} with at least "
                         f"{min_pairs:,} lagged pairs and at most a quarter of a bootstrap block ({block_frames:.0f} "
                         f"frames); {n_later + 1} are needed to see the timescales level off{fix}.")
    ts, se, blocks = tica_timescales_with_errors(features, usable, n_processes=k, n_blocks=n_blocks,
                                                 n_bootstrap=n_bootstrap, seed=seed)

    def fmt(i, j):
        return f"t{i + 1}(lag {usable[j]}) = {ts[j, i]:.3g} ± {se[j, i]:.2g} frames"

    # the estimator's noise floor at each lag: with d whitened features and N lagged pairs, the largest eigenvalue
    # of the symmetrized cross-correlation of two independent white series is about sqrt(2 d / N) (the edge of a
    # Wigner semicircle with entry variance 1 / 2N); a process read at or below it is noise, whatever t says
    d = _whiten(features)[0].shape[1]
    floor = [_floor_timescale(lag, d, sum(max(n - lag, 0) for n in lengths)) for lag in usable]

    def above_floor(i, m):  # an estimate, an error, and a timescale above the noise floor by n_sigma errors
        return bool(np.isfinite(ts[m, i]) and np.isfinite(se[m, i]) and ts[m, i] - n_sigma * se[m, i] > floor[m])

    def resolved(i, m):  # process i is measured at lag m: above the floor, and not decayed within the lag
        return above_floor(i, m) and ts[m, i] >= usable[m]

    # the slowest process the data show at any lag (a linear estimate is low at short lags, so the longest
    # measured t1 with a usable error is the best estimate of it) decides whether the data resolve it at all
    measured = [j for j in range(len(usable)) if above_floor(0, j) and se[j, 0] <= max_relative_error * ts[j, 0]]
    if measured:
        longest = max(measured, key=lambda j: ts[j, 0])
        if ts[longest, 0] > max_timescale_fraction * block_frames:
            raise ValueError(f"{too_short}{fmt(0, longest)}, longer than {max_timescale_fraction:g} of a "
                             f"bootstrap block ({block_frames:.0f} frames of {sum(lengths):,}): too few transitions of "
                             f"the slowest process to estimate its error{fix}.")

    failures = []
    for j in range(len(usable) - n_later):
        later = range(j + 1, j + n_later + 1)
        missing = [m for m in (j, *later) if not (np.isfinite(ts[m, 0]) and np.isfinite(se[m, 0]))]
        if missing:  # an infinite error would make the comparison pass whatever the timescales
            failures.append(f"at lag {usable[j]}: t1 at lag {usable[missing[0]]} has no estimate or no error "
                            "(its eigenvalue is not in (0, 1) in the data or in over 10 % of the resamples)")
            continue
        # t1 against the next n_later lags and every later lag at which it is still resolved; t2, ... only if
        # resolved at the next n_later lags, then against those and every later lag at which they are resolved
        compared = {0: sorted({*later, *(m for m in range(j + n_later + 1, len(usable)) if resolved(0, m))})}
        for i in range(1, k):
            if resolved(i, j) and all(resolved(i, m) for m in later):
                compared[i] = [m for m in range(j + 1, len(usable)) if resolved(i, m)]
        worst, where = 0.0, None
        for i, ms in compared.items():
            for m in ms:
                z = abs(ts[j, i] - ts[m, i]) / math.hypot(se[j, i], se[m, i])
                if not np.isfinite(z):
                    z = math.inf
                if z > worst or where is None:
                    worst, where = z, (i, m)
        if worst > n_sigma:
            i, m = where
            failures.append(f"at lag {usable[j]}: {fmt(i, j)} vs {fmt(i, m)} ({worst:.1f} SE)")
            continue
        if se[j, 0] > max_relative_error * ts[j, 0]:
            raise ValueError(f"{too_short}{fmt(0, j)}: its error is more than {max_relative_error:.0%} of "
                             f"it, so its levelling off says nothing{fix}.")
        reason = "; ".join(f"t{i + 1} at lag {usable[j]} agrees with lags {', '.join(str(usable[m]) for m in ms)}"
                           for i, ms in compared.items())
        reason += f" within {n_sigma:g} combined standard errors (largest difference {worst:.1f} SE)"
        skipped = [f"t{i + 1}" for i in range(1, k) if i not in compared]
        if skipped:
            reason += f"; {', '.join(skipped)} not compared (shorter than the lags)"
        if failures:
            reason += f"; the shorter lag {failures[-1]}"
        return LagChoice(usable[j], tuple(usable), ts, se, reason, len(blocks), block_frames)
    last = f" (last: {failures[-1]})" if failures else ""
    raise ValueError(f"{too_short}the leading implied timescales do not level off within {n_sigma:g} combined "
                     f"standard errors at any of the lags {', '.join(map(str, usable))}{last}{fix}.")


def format_lag_table(choice: LagChoice, frame_time: float = 1.0, unit: str = "ps") -> str:
    """The evidence as text: one line per lag (frames and time), ``t_i ± error`` in ``unit``, the choice marked.

    Example:
        >>> c = LagChoice(2, (1, 2, 3), np.array([[5.0], [8.0], [8.1]]), np.array([[0.1], [0.2], [0.3]]), "flat")
        >>> print(format_lag_table(c, frame_time=2.0))
          lag (frames)  lag (ps)  t1 (ps)
                     1         2  10 ± 0.2
                     2         4  16 ± 0.4  <- chosen
                     3         6  16.2 ± 0.6
    """
    k = choice.timescales.shape[1]
    lines = ["  lag (frames)  lag (ps)  " + "  ".join(f"t{i + 1} ({unit})" for i in range(k))]
    lines[0] = lines[0].replace("(ps)", f"({unit})", 1)
    for lag, row, err in zip(choice.lags, choice.timescales, choice.errors):
        cells = []
        for t, e in zip(row, err):
            if not np.isfinite(t):
                cells.append("not estimated")
            elif not np.isfinite(e):
                cells.append(f"{t * frame_time:.3g} (no error)")
            else:
                cells.append(f"{t * frame_time:.3g} ± {e * frame_time:.2g}")
        mark = "  <- chosen" if lag == choice.lag else ""
        lines.append(f"  {lag:>12}  {lag * frame_time:>8g}  " + "  ".join(cells) + mark)
    return "\n".join(lines)
