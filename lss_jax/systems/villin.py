"""The villin headpiece HP35 as a Cα structure-based (Gō) model: a second folding benchmark, of another fold.

HP35 (chicken villin residues 42–76, 35 residues) is a three-helix bundle (helices 44–51, 55–59, 63–72), the
classic fast folder of simulation studies; Trp-cage is 20 residues of one α-helix packed on a polyproline cage.
The native structure shipped here (``hp35.pdb``, heavy atoms) is the double norleucine mutant K65Nle/K70Nle
(PDB 2F4K); its source is written in the file's REMARK lines. The model is :func:`lss_jax.systems.go.go_model`
of that structure with the defaults, the energy function of Clementi, Nymeyer & Onuchic (2000) that
:mod:`lss_jax.systems.trp_cage` uses: 35 beads, 53 native contacts (|i − j| ≥ 4, heavy atoms within 0.45 nm),
ε = 1 kJ/mol, 100 amu beads, Langevin 1/ps, 10 fs steps, OpenMM ``Reference`` platform (≈ 8 × 10⁴ steps/s on
one core).

Folding temperature, measured with :func:`lss_jax.systems.go.folding_temperature_scan` (30 ns per temperature,
5 ps frames, seed 1; Q cutoffs 0.3/0.7 with hysteresis, :func:`lss_jax.systems.go.core_states`):

=====  ===============  =====  ==============
T*     folded fraction  ⟨Q⟩    heat capacity
=====  ===============  =====  ==============
0.80   1.00             0.77   113
0.85   0.98             0.69   149
0.90   0.75             0.57   165
0.95   0.45             0.51   141
1.00   0.27             0.45   131
1.05   0.16             0.40   113
=====  ===============  =====  ==============

The heat capacity peaks near T* = 0.90; the shipped runs are at T* = 0.93, where folded and unfolded frames are
about equally many. As for Trp-cage's model, Q's histogram has one broad maximum (Q ≈ 0.4–0.6) rather than two
peaks: a marginally cooperative folder at this resolution.

Shipped data (``lss_jax/systems/data``; regenerate with ``benchmarks/data/make_go_data.py villin``: byte for byte on
the OpenMM/CPU/libm build that made them; on another CPU a last-bit libm difference grows through the chaotic
equilibration into another trajectory of the same law):
T* = 0.93, one frame every 20 ps after 1 ns of equilibration, 10 000 frames = 200 ns each, ``.xtc`` (0.001 nm
precision, ≈ 238 bytes a frame), 240 s of OpenMM on one core each:

==============  ====  ===============  =====  =======================  ============
trajectory      seed  folded fraction  ⟨Q⟩    folding / unfolding      file (bytes)
==============  ====  ===============  =====  =======================  ============
``train``       1     0.525            0.520  67 / 68                  2 378 868
``independent`` 2     0.554            0.525  65 / 64                  2 378 456
==============  ====  ===============  =====  =======================  ============

(:data:`SHIPPED_STATS`, tested). A state lasts ≈ 75 frames (1.5 ns) on average; at 5 ps frames the same runs
count about twice the transitions (short excursions across a cutoff are missed at 20 ps).

References:
    C. Clementi, H. Nymeyer, J. N. Onuchic, J. Mol. Biol. 298, 937 (2000).
    J. Kubelka, T. K. Chiu, D. R. Davies, W. A. Eaton, J. Hofrichter, "Sub-microsecond protein folding",
    J. Mol. Biol. 359, 546 (2006) (PDB 2F4K).
"""

from __future__ import annotations

from lss_jax.systems.folding import FoldingSystem, data_path

__all__ = ["SYSTEM", "SHIPPED_STATS", "villin_go_model", "load_villin", "simulate_villin"]

NATIVE_PDB = "hp35.pdb"
SHIPPED = {"train": ("villin-go-seed1.xtc", 1), "independent": ("villin-go-seed2.xtc", 2)}
SHIPPED_TEMPERATURE = 0.93  # reduced, k_B T / epsilon
SHIPPED_FRAME_PS = 20.0
SHIPPED_EQUILIBRATION_PS = 1000.0
SHIPPED_N_FRAMES = 10_000
# per shipped run: folded fraction, mean Q, (folding, unfolding) transitions, Q cutoffs 0.3/0.7 (tested)
SHIPPED_STATS = {"train": (0.525, 0.520, 67, 68), "independent": (0.554, 0.525, 65, 64)}


def villin_go_model():
    """The Cα Gō model of HP35: :func:`lss_jax.systems.go.go_model` of the shipped ``hp35.pdb`` with the defaults.

    Example:
        >>> go = villin_go_model()
        >>> go.n_beads, len(go.contacts.pairs)
        (35, 53)
    """
    from lss_jax.systems.go import go_model

    return go_model(data_path(NATIVE_PDB))


SYSTEM = FoldingSystem(name="villin", native_pdb=NATIVE_PDB, ca_pdb="hp35-ca.pdb", shipped=SHIPPED,
                       build=villin_go_model, temperature=SHIPPED_TEMPERATURE, frame_ps=SHIPPED_FRAME_PS,
                       equilibration_ps=SHIPPED_EQUILIBRATION_PS, n_frames=SHIPPED_N_FRAMES)
"""The shipped benchmark as a :class:`lss_jax.systems.folding.FoldingSystem` (files, loading, simulation, folding)."""


def load_villin(which: str = "train", *, stride: int = 1):
    """A shipped trajectory, ``"train"`` (seed 1) or ``"independent"`` (seed 2), as an ``mdtraj.Trajectory``
    ``[n_frames, 35, 3]`` (nm, ``time`` in ps): :meth:`lss_jax.systems.folding.FoldingSystem.load`.

    Example:
        >>> traj = load_villin("train", stride=1000)
        >>> traj.n_atoms, float(traj.timestep) == 1000 * SHIPPED_FRAME_PS
        (35, True)
    """
    return SYSTEM.load(which, stride=stride)


def simulate_villin(n_frames: int, *, seed: int = 1, progress: bool = True, **protocol):
    """More runs of the shipped protocol (needs the ``md`` extra: OpenMM), cached:
    :meth:`lss_jax.systems.folding.FoldingSystem.simulate` (``protocol``: ``temperature``, ``frame_interval_ps``,
    ``equilibration_ps``, ``platform``, ``out`` to change it)."""
    return SYSTEM.simulate(n_frames, seed=seed, progress=progress, **protocol)
