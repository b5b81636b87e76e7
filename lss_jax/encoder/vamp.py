"""Covariances and the VAMP-r score, in the reversible (SRV) and non-reversible (VAMP) forms.

All functions are pure, jit-able and have static output shapes: ill-conditioned covariances are
regularized with ``epsilon`` instead of truncating eigenvalues, so the loss runs under ``jit`` and
``grad``.

References:
    H. Wu and F. Noé, J. Nonlinear Sci. 30, 23 (2020) (VAMP).
    W. Chen, H. Sidky, A. L. Ferguson, J. Chem. Phys. 150, 214114 (2019) (state-free reversible VAMPnets).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["Covariances", "covariances", "vamp_score", "vamp_loss", "reversible_eigh"]


class Covariances(NamedTuple):
    """Instantaneous and time-lagged covariances of mean-free data, each ``[m, m]``.

    ``c00 = <x x^T>``, ``c11 = <y y^T>``, ``c01 = <x y^T>`` with ``x = chi_0 - mean``,
    ``y = chi_tau - mean``.

    Example:
        >>> cov = Covariances(jnp.eye(2), jnp.zeros((2, 2)), jnp.eye(2))
        >>> cov.c01.shape
        (2, 2)
    """

    c00: jax.Array
    c01: jax.Array
    c11: jax.Array


def covariances(chi_0: jax.Array, chi_tau: jax.Array, *, reversible: bool = True) -> Covariances:
    """Mean-free covariances of ``chi_0``/``chi_tau``, both ``[n_pairs, m]``.

    With ``reversible=True`` one mean over both halves is removed (the stationary mean under the
    symmetrized estimator); otherwise each half has its own mean removed, as in VAMP.

    Example:
        >>> x = jax.random.normal(jax.random.key(0), (1000, 2))
        >>> cov = covariances(x, x)
        >>> cov.c00.shape, cov.c01.shape, cov.c11.shape
        ((2, 2), (2, 2), (2, 2))
        >>> bool(jnp.allclose(cov.c01, cov.c00))   # identical halves: lagged = instantaneous covariance
        True
    """
    _check_pairs(chi_0, chi_tau)
    if reversible:
        mean = 0.5 * (jnp.mean(chi_0, axis=0, keepdims=True) + jnp.mean(chi_tau, axis=0, keepdims=True))
        x, y = chi_0 - mean, chi_tau - mean
    else:
        x = chi_0 - jnp.mean(chi_0, axis=0, keepdims=True)
        y = chi_tau - jnp.mean(chi_tau, axis=0, keepdims=True)
    n = chi_0.shape[0]
    return Covariances(x.T @ x / n, x.T @ y / n, y.T @ y / n)


def _check_pairs(chi_0, chi_tau):
    if chi_0.ndim != 2 or chi_0.shape != chi_tau.shape:
        raise ValueError(
            f"chi_0 and chi_tau must both be [n_pairs, m] with equal shapes, got {chi_0.shape} and "
            f"{chi_tau.shape}; pass the outputs at t and t+tau of the same lagged pairs."
        )


def _inv_sqrt(c: jax.Array, epsilon: float) -> jax.Array:
    """Symmetric ``(c + eps)^{-1/2}`` with eigenvalues clamped at ``epsilon`` (static shape)."""
    w, v = jnp.linalg.eigh(0.5 * (c + c.T))
    w = jnp.maximum(w, epsilon)
    return (v * jax.lax.rsqrt(w)[None, :]) @ v.T


def reversible_eigh(cov: Covariances, *, epsilon: float = 1e-6) -> tuple[jax.Array, jax.Array]:
    """Solve the SRV generalized eigenproblem ``C1 v = lambda C0 v``.

    ``C0 = (c00 + c11)/2 + epsilon I`` and ``C1 = (c01 + c10)/2``, solved by Cholesky whitening
    ``L^{-1} C1 L^{-T}``.

    Returns:
        ``(eigenvalues [m], eigenvectors [m, m])``, eigenvalues in decreasing order, eigenvectors as
        columns normalized so that ``v^T C0 v = I``.

    Example:
        >>> x = jax.random.normal(jax.random.key(0), (1000, 2))
        >>> values, vectors = reversible_eigh(covariances(x, x))   # identical halves: C1 = C0
        >>> values.shape, vectors.shape
        ((2,), (2, 2))
        >>> bool(jnp.all(values > 0.99))
        True
    """
    m = cov.c00.shape[0]
    c0 = 0.5 * (cov.c00 + cov.c11) + epsilon * jnp.eye(m, dtype=cov.c00.dtype)
    c1 = 0.5 * (cov.c01 + cov.c01.T)
    chol = jnp.linalg.cholesky(c0)
    tmp = jax.scipy.linalg.solve_triangular(chol, c1, lower=True)
    whitened = jax.scipy.linalg.solve_triangular(chol, tmp.T, lower=True)
    whitened = 0.5 * (whitened + whitened.T)
    eigenvalues, u = jnp.linalg.eigh(whitened)
    eigenvalues, u = eigenvalues[::-1], u[:, ::-1]
    vectors = jax.scipy.linalg.solve_triangular(chol.T, u, lower=False)
    return eigenvalues, vectors


def vamp_score(
    chi_0: jax.Array,
    chi_tau: jax.Array,
    *,
    r: float = 2,
    reversible: bool = True,
    epsilon: float = 1e-6,
) -> jax.Array:
    """VAMP-r score ``1 + sum_i |lambda_i|^r`` of network outputs on lagged pairs.

    Args:
        chi_0: ``[n_pairs, m]`` outputs at time t.
        chi_tau: ``[n_pairs, m]`` outputs at time t + tau.
        r: score exponent (2 for VAMP-2, 1 for VAMP-1).
        reversible: ``True`` for the state-free reversible form (eigenvalues of the symmetrized
            generalized eigenproblem), ``False`` for VAMP (singular values of
            ``C00^{-1/2} C01 C11^{-1/2}``).
        epsilon: regularization of the instantaneous covariances.

    Returns:
        Scalar score; the ``1`` accounts for the constant eigenfunction, as in deeptime.

    Example:
        >>> x = jax.random.normal(jax.random.key(0), (1000, 2))
        >>> float(vamp_score(x, x)) > 2.99   # identical halves: both eigenvalues are 1
        True
    """
    cov = covariances(chi_0, chi_tau, reversible=reversible)
    if reversible:
        values, _ = reversible_eigh(cov, epsilon=epsilon)
    else:
        koopman = _inv_sqrt(cov.c00, epsilon) @ cov.c01 @ _inv_sqrt(cov.c11, epsilon)
        values = jnp.linalg.svd(koopman, compute_uv=False)
    return 1.0 + jnp.sum(jnp.abs(values) ** r)


def vamp_loss(chi_0: jax.Array, chi_tau: jax.Array, **kwargs) -> jax.Array:
    """Negative :func:`vamp_score` (minimize it); keyword arguments are passed through.

    Example:
        >>> x = jax.random.normal(jax.random.key(0), (1000, 2))
        >>> float(vamp_loss(x, x)) < -2.99
        True
        >>> float(vamp_loss(x, x, reversible=False)) < -2.99   # VAMP form, same pairs
        True
    """
    return -vamp_score(chi_0, chi_tau, **kwargs)
