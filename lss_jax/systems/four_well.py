"""The paper's 1-D four-well potential and a jitted Brownian-dynamics integrator.

References:
    H. Sidky, W. Chen, A. L. Ferguson, Chem. Sci. 11, 9459 (2020), Sec. 3.1, Eq. (9).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["FourWellDynamics", "four_well_potential", "four_well_force", "brownian_dynamics", "well_boundaries",
           "wells_visited"]


def four_well_potential(x, xp=jnp):
    """``V(x) = 2 (x^8 + 0.8 e^{-80 x^2} + 0.2 e^{-80 (x-0.5)^2} + 0.5 e^{-40 (x+0.5)^2})`` (units of kT).

    Args:
        x: positions, any shape.
        xp: array namespace (``jax.numpy`` by default, ``numpy`` for float64 references).

    Example:
        >>> round(float(four_well_potential(jnp.array(0.0))), 3)   # top of the central barrier
        1.6
        >>> four_well_potential(np.array([0.0, 1.0]), xp=np).dtype
        dtype('float64')
    """
    return 2.0 * (
        x**8 + 0.8 * xp.exp(-80.0 * x**2) + 0.2 * xp.exp(-80.0 * (x - 0.5) ** 2) + 0.5 * xp.exp(-40.0 * (x + 0.5) ** 2)
    )


def four_well_force(x):
    """``-dV/dx`` of :func:`four_well_potential`, elementwise.

    Example:
        >>> x = jnp.array([-0.3, 0.2, 0.7])
        >>> minus_grad = -jax.vmap(jax.grad(four_well_potential))(x)
        >>> bool(jnp.allclose(four_well_force(x), minus_grad, atol=1e-4))
        True
    """
    return -2.0 * (
        8.0 * x**7
        - 128.0 * x * jnp.exp(-80.0 * x**2)
        - 32.0 * (x - 0.5) * jnp.exp(-80.0 * (x - 0.5) ** 2)
        - 40.0 * (x + 0.5) * jnp.exp(-40.0 * (x + 0.5) ** 2)
    )


METHODS = ("leimkuhler_matthews", "euler_maruyama")


def brownian_dynamics(
    key: jax.Array,
    x0: jax.Array,
    force_fn: Callable[[jax.Array], jax.Array] = four_well_force,
    *,
    n_steps: int,
    dt: float,
    diffusion: float = 1.0,
    kT: float = 1.0,
    save_every: int = 1,
    method: str = "leimkuhler_matthews",
    start_step: int = 0,
) -> jax.Array:
    """Integrate overdamped Langevin dynamics ``dx = (D/kT) F(x) dt + sqrt(2 D) dW`` for independent walkers.

    Two schemes, both one force evaluation per step:

    * ``"leimkuhler_matthews"`` (default):
      ``x_{n+1} = x_n + (D dt/kT) F(x_n) + sqrt(2 D dt) (xi_n + xi_{n+1}) / 2``.
      Its stationary distribution is exact to second order in ``dt`` (Euler-Maruyama: first order),
      which for the four-well potential at ``dt = 1e-3`` means 0.006 kT instead of 0.056 kT error in
      the free energy (measured against the exact Smoluchowski density).
    * ``"euler_maruyama"``: ``x_{n+1} = x_n + (D dt/kT) F(x_n) + sqrt(2 D dt) xi_n``.

    The noise is addressable: the normals of block ``b`` (``save_every`` steps) come from
    ``fold_in(key, b + 1)``, block ``-1`` (``fold_in(key, 0)``) seeds the first ``xi``. A run split
    into chunks, each continuing from the last frame with ``start_step`` advanced, is therefore
    bitwise identical to one call.

    Args:
        key: PRNG key.
        x0: ``[B]`` start positions.
        force_fn: elementwise force ``F(x) = -V'(x)``.
        n_steps: number of integration steps, a multiple of ``save_every``.
        dt: time step.
        diffusion: diffusion constant ``D``.
        kT: thermal energy.
        save_every: keep every ``save_every``-th position.
        method: ``"leimkuhler_matthews"`` or ``"euler_maruyama"``.
        start_step: global index of the first step (a multiple of ``save_every``).

    Returns:
        ``[B, n_steps // save_every]`` positions after ``save_every, 2 save_every, ...`` steps.

    References:
        B. Leimkuhler and C. Matthews, Appl. Math. Res. Express 2013, 34 (2013).

    Example:
        >>> traj = brownian_dynamics(jax.random.key(0), jnp.zeros(4), n_steps=100, dt=1e-3, save_every=10)
        >>> traj.shape
        (4, 10)
        >>> first = brownian_dynamics(jax.random.key(0), jnp.zeros(4), n_steps=50, dt=1e-3, save_every=10)
        >>> rest = brownian_dynamics(jax.random.key(0), first[:, -1], n_steps=50, dt=1e-3, save_every=10,
        ...                          start_step=50)
        >>> bool(jnp.array_equal(jnp.concatenate([first, rest], axis=1), traj))   # chunks == one call
        True
    """
    if n_steps < 1 or save_every < 1 or n_steps % save_every or start_step % save_every:
        raise ValueError(
            f"n_steps ({n_steps}) must be a positive multiple of save_every ({save_every}), and start_step "
            f"({start_step}) a multiple too."
        )
    if dt <= 0 or diffusion <= 0 or kT <= 0:
        raise ValueError(f"dt, diffusion and kT must be positive, got {dt}, {diffusion}, {kT}.")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    x0 = jnp.atleast_1d(jnp.asarray(x0, jnp.float32))
    return _bd(
        key, x0, start_step // save_every, force_fn, n_steps // save_every, save_every, float(dt), float(diffusion),
        float(kT), method,
    )


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6, 7, 8, 9))
def _bd(key, x0, first_block, force_fn, n_saved, save_every, dt, diffusion, kT, method):
    drift = diffusion * dt / kT
    noise_scale = np.sqrt(2.0 * diffusion * dt)
    block_noise = lambda b: jax.random.normal(jax.random.fold_in(key, b + 1), (save_every, x0.shape[0]), x0.dtype)  # noqa: E731
    leimkuhler_matthews = method == "leimkuhler_matthews"

    def block(carry, b):
        noise = block_noise(b)

        def step(carry, xi):
            x, xi_prev = carry
            kick = 0.5 * (xi_prev + xi) if leimkuhler_matthews else xi
            return (x + drift * force_fn(x) + noise_scale * kick, xi), None

        carry, _ = jax.lax.scan(step, carry, noise)
        return carry, carry[0]

    xi_start = block_noise(first_block - 1)[-1]
    _, frames = jax.lax.scan(block, (x0, xi_start), first_block + jnp.arange(n_saved))
    return frames.T


def well_boundaries(x_range: tuple[float, float] = (-1.4, 1.4), n_points: int = 28_001) -> np.ndarray:
    """Barrier tops (local maxima of the four-well potential) that separate its four basins.

    Example:
        >>> well_boundaries().round(3).tolist()
        [-0.502, 0.0, 0.502]
    """
    x = np.linspace(*x_range, n_points)
    v = four_well_potential(x, np)
    peaks = np.flatnonzero((v[1:-1] > v[:-2]) & (v[1:-1] > v[2:])) + 1
    return x[peaks]


def wells_visited(x, boundaries: Sequence[float] | None = None) -> list[int]:
    """Indices (0 = left-most) of the basins that frames ``x`` (any shape) entered.

    Example:
        >>> wells_visited(np.array([-0.8, -0.3, -0.6]))
        [0, 1]
        >>> wells_visited(np.array([-0.8, 0.01]))
        [0, 2]
    """
    b = well_boundaries() if boundaries is None else np.asarray(boundaries)
    return np.unique(np.digitize(np.asarray(x).ravel(), b)).tolist()


@dataclasses.dataclass(frozen=True)
class FourWellDynamics:
    """Brownian dynamics in the four-well potential, its lag and the grids of its exact reference: the settings
    the four-well validation (:class:`lss_jax.pipelines.four_well.FourWellConfig`) and the adaptive-sampling
    experiment (:class:`lss_jax.adaptive.four_well.AdaptiveConfig`) share.

    ``dt = 1e-3`` with ``D = kT = 1`` and the Leimkuhler-Matthews integrator keeps the bias of the stationary
    density at 0.006 kT against the exact density (Euler-Maruyama at the same ``dt``: 0.056 kT).

    Example:
        >>> FourWellDynamics().lag_time, FourWellDynamics().lag_frames
        (0.1, 10)
    """

    dt: float = 1e-3
    diffusion: float = 1.0
    kT: float = 1.0
    integrator: str = "leimkuhler_matthews"
    save_every: int = 10
    lag_steps: int = 100
    # exact reference grid and analysis bins
    x_range: tuple[float, float] = (-1.4, 1.4)
    n_grid: int = 560
    n_bins: int = 80

    def __post_init__(self):
        for name in ("save_every", "lag_steps", "n_grid", "n_bins"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.lag_steps % self.save_every:
            raise ValueError(f"lag_steps ({self.lag_steps}) must be a multiple of save_every ({self.save_every}).")
        if self.n_grid % self.n_bins:
            raise ValueError(f"n_grid ({self.n_grid}) must be a multiple of n_bins ({self.n_bins}).")

    @property
    def lag_time(self) -> float:
        return self.lag_steps * self.dt

    @property
    def lag_frames(self) -> int:
        return self.lag_steps // self.save_every

    def exact_reference(self):
        """The exact Smoluchowski reference of these dynamics on ``n_grid`` cells of ``x_range``."""
        from lss_jax.analysis.smoluchowski import smoluchowski_reference

        return smoluchowski_reference(lambda x: four_well_potential(x, np), x_min=self.x_range[0],
                                      x_max=self.x_range[1], n_bins=self.n_grid, diffusion=self.diffusion, kT=self.kT)
