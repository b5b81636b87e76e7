"""Property-based tests (hypothesis) of the pure core: invariances and bounds."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lss_jax import gaussian_mixture_log_prob, vamp_score

SETTINGS = settings(max_examples=25, deadline=None)


def _pairs(seed, n, m):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, m))
    y = 0.7 * x @ rng.normal(size=(m, m)) / np.sqrt(m) + rng.normal(size=(n, m))
    return x, y


def _well_conditioned(seed, m):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(m, m)))
    return q * rng.uniform(0.3, 3.0, size=m)  # condition number <= 10


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), m=st.integers(1, 5), reversible=st.booleans(), r=st.sampled_from([1, 2]))
def test_score_invariant_under_invertible_linear_maps(seed, m, reversible, r):
    # A VAMP score depends on the span of the features only: chi -> chi A + b leaves it unchanged.
    x, y = _pairs(seed, 600, m)
    a, b = _well_conditioned(seed + 1, m), np.random.default_rng(seed).normal(size=m)
    with jax.enable_x64(True):
        s0 = vamp_score(jnp.asarray(x), jnp.asarray(y), r=r, reversible=reversible, epsilon=1e-12)
        s1 = vamp_score(jnp.asarray(x @ a + b), jnp.asarray(y @ a + b), r=r, reversible=reversible, epsilon=1e-12)
    np.testing.assert_allclose(float(s1), float(s0), rtol=1e-8)


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), m=st.integers(1, 5), reversible=st.booleans())
def test_vamp2_score_bounds(seed, m, reversible):
    # singular values / reversible eigenvalues of a correlation lie in [0, 1] (|.| <= 1): 1 <= score <= 1 + m
    x, y = _pairs(seed, 400, m)
    s = float(vamp_score(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), reversible=reversible))
    assert 1.0 - 1e-5 <= s <= 1.0 + m + 1e-4


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), c=st.integers(1, 8), m=st.integers(1, 3))
def test_mixture_log_prob_invariant_under_component_permutation(seed, c, m):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(4, m))
    logits, means = rng.normal(size=(4, c)), rng.normal(size=(4, c, m))
    scales = rng.uniform(0.1, 2.0, size=(4, c, m))
    perm = rng.permutation(c)
    lp = gaussian_mixture_log_prob(*(jnp.asarray(a, jnp.float32) for a in (y, logits, means, scales)))
    lp_perm = gaussian_mixture_log_prob(
        *(jnp.asarray(a, jnp.float32) for a in (y, logits[:, perm], means[:, perm], scales[:, perm]))
    )
    np.testing.assert_allclose(np.asarray(lp_perm), np.asarray(lp), rtol=1e-5, atol=1e-5)
