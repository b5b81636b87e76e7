"""Folding benchmarks shipped with the package: a Cα Gō model, its trajectories, and folding against MD.

A :class:`FoldingSystem` is one benchmark: the native structure (:mod:`lss_jax.systems.go` builds the model from
it), the shipped training and independent trajectories, and the protocol that simulated them (reduced temperature,
frame interval, equilibration, seeds), so that more runs of the same protocol can be made with OpenMM. The shipped
systems are :data:`lss_jax.systems.trp_cage.SYSTEM` (Trp-cage, 20 residues, α-helix and polyproline cage) and
:data:`lss_jax.systems.villin.SYSTEM` (the villin headpiece HP35, 35 residues, three-helix bundle).

:func:`folding_metrics` compares generated Cα trajectories with MD on any Gō model: folded fraction and
folding/unfolding transitions (Q with the hysteresis states of :func:`lss_jax.systems.go.core_states`), the RMSD of
folded frames to the native structure, virtual bonds and close pairs (the paper's Sec. 3.2 observables).
"""

from __future__ import annotations

import dataclasses
import functools
from importlib import resources
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from lss_jax.systems import go as _go

__all__ = ["FoldingSystem", "folding_metrics"]

_DATA = "lss_jax.systems"


def data_path(name: str) -> Path:
    """Path of a file shipped in ``lss_jax/systems/data``."""
    return Path(str(resources.files(_DATA).joinpath("data", name)))


@dataclasses.dataclass(frozen=True, eq=False)
class FoldingSystem:
    """A shipped Gō-model folding benchmark.

    Attributes:
        name: the name on the command line (``lss-jax demo --system NAME``).
        native_pdb: file name (in ``lss_jax/systems/data``) of the native structure the model is built from.
        ca_pdb: file name of its Cα atoms: the topology of the trajectories, for the command line.
        shipped: ``{which: (file name, seed)}`` of the shipped trajectories (``"train"``, ``"independent"``).
        build: the :class:`lss_jax.systems.go.GoModel` of the native structure (called once; cached).
        temperature: reduced temperature k_B T/ε of the shipped runs.
        frame_ps: time between shipped frames (ps).
        equilibration_ps: dynamics discarded before the first frame (ps).
        n_frames: frames of each shipped run.
        platform: OpenMM platform of the shipped runs (``Reference`` is deterministic: the files are reproduced).

    Example:
        >>> from lss_jax.systems import villin
        >>> system = villin.SYSTEM
        >>> sorted(system.files()), system.go_model().n_beads, system.matches(system.native_structure().topology)
        (['ca_pdb', 'independent', 'pdb', 'train'], 35, True)
        >>> system.fraction_native_contacts(system.native_structure()).tolist()
        [1.0]
    """

    name: str
    native_pdb: str
    ca_pdb: str
    shipped: Mapping[str, tuple[str, int]]
    build: Callable[[], _go.GoModel]
    temperature: float
    frame_ps: float
    equilibration_ps: float
    n_frames: int
    platform: str = "Reference"

    def files(self) -> dict[str, Path]:
        """Paths of the shipped files: ``pdb`` (the native structure), ``ca_pdb`` (its Cα atoms) and the trajectories
        (``train``, ``independent``)."""
        files = {"pdb": data_path(self.native_pdb), "ca_pdb": data_path(self.ca_pdb)}
        files.update({which: data_path(f) for which, (f, _) in self.shipped.items()})
        return files

    def go_model(self) -> _go.GoModel:
        """The Gō model (built once; the value is immutable)."""
        return _cached_model(self.build)

    def native_structure(self):
        """The native structure as a Cα model: ``mdtraj.Trajectory`` ``[1, n_beads, 3]`` (nm), bonds along the chain."""
        return self.go_model().native_structure()

    def matches(self, topology) -> bool:
        """Whether ``topology`` is this model's: one CA atom per residue, with the native structure's sequence."""
        go = self.go_model()
        residues = list(topology.residues)
        if topology.n_atoms != go.n_beads or len(residues) != go.n_beads:
            return False
        codes = "".join(r.code or "X" for r in residues)
        return codes == go.sequence and all(a.name == "CA" for a in topology.atoms)

    def load(self, which: str = "train", *, stride: int = 1):
        """A shipped trajectory (``"train"`` or ``"independent"``) as an ``mdtraj.Trajectory`` (Cα atoms, nm, ``time``
        in ps), every ``stride``-th frame."""
        import mdtraj as md

        if which not in self.shipped:
            raise ValueError(f"unknown shipped trajectory {which!r}; choose one of {sorted(self.shipped)}.")
        if int(stride) != stride or stride < 1:
            raise ValueError(f"stride must be a positive integer, got {stride}.")
        return md.load(str(self.files()[which]), top=self.native_structure().topology, stride=int(stride))

    def simulate(self, n_frames: int, *, seed: int = 1, temperature: float | None = None,
                 frame_interval_ps: float | None = None, equilibration_ps: float | None = None,
                 platform: str | None = None, out: str | Path | None = None, progress: bool = True):
        """Simulate the model with the shipped protocol (the arguments left ``None``) through
        :func:`lss_jax.systems.go.simulate_go` (needs the ``md`` extra: OpenMM); cached in
        :func:`lss_jax.systems.cache_dir` unless ``out`` is given. Returns the ``mdtraj.Trajectory`` read back."""
        from lss_jax.systems import cache_dir

        temperature = self.temperature if temperature is None else temperature
        frame_interval_ps = self.frame_ps if frame_interval_ps is None else frame_interval_ps
        equilibration_ps = self.equilibration_ps if equilibration_ps is None else equilibration_ps
        platform = self.platform if platform is None else platform
        if out is None:
            stem = self.shipped["train"][0].split("-seed")[0]
            out = cache_dir() / (f"{stem}-T{temperature:g}-seed{seed}-{n_frames}x{frame_interval_ps:g}ps-"
                                 f"eq{equilibration_ps:g}ps-{platform}.xtc")
        return _go.simulate_go(self.go_model(), n_frames, temperature=temperature, seed=seed,
                               frame_interval_ps=frame_interval_ps, equilibration_ps=equilibration_ps,
                               platform=platform, out=out, progress=progress, desc=f"OpenMM {self.name} Go seed {seed}")

    def fraction_native_contacts(self, traj) -> np.ndarray:
        """Q of each frame (:func:`lss_jax.systems.go.fraction_native_contacts` of this model)."""
        return _go.fraction_native_contacts(self.go_model(), traj)

    def report_metrics(self, md_xyz, lss_xyz, *, md_frame_time: float, lss_frame_time: float,
                       n_blocks: int = 5) -> dict:
        """The validation report's hook (``system_metrics`` of :func:`lss_jax.analysis.molecular.run_validation`):
        ``{"folding": folding_metrics(...)}`` on this model."""
        return {"folding": folding_metrics(self.go_model(), md_xyz, lss_xyz, md_frame_time=md_frame_time,
                                           lss_frame_time=lss_frame_time, n_blocks=n_blocks)}


@functools.lru_cache(maxsize=16)
def _cached_model(build: Callable[[], _go.GoModel]) -> _go.GoModel:
    return build()


def _states_and_events(go: _go.GoModel, trajs, stride: int = 1):
    """Per trajectory: Q, core states and transitions, at every ``stride``-th frame."""
    out = []
    for xyz in trajs:
        q = _go.fraction_native_contacts(go, np.asarray(xyz)[::stride])
        out.append((q, _go.core_states(q), _go.folding_transitions(q)))
    return out


def _rates(per_traj, frame_time: float) -> dict:
    """Folded fraction and transition counts/rates (per µs) over a set of trajectories."""
    states = np.concatenate([s for _, s, _ in per_traj])
    assigned = states[states >= 0]
    n_fold = sum(t.n_folding for _, _, t in per_traj)
    n_unfold = sum(t.n_unfolding for _, _, t in per_traj)
    time_us = sum(len(q) for q, _, _ in per_traj) * frame_time * 1e-6
    return {"folded_fraction": float(np.mean(assigned == 1)) if len(assigned) else float("nan"),
            "n_folding": int(n_fold), "n_unfolding": int(n_unfold), "time_us": time_us,
            "transitions_per_us": (n_fold + n_unfold) / time_us if time_us > 0 else float("nan"),
            "mean_q": float(np.mean(np.concatenate([q for q, _, _ in per_traj])))}


def folding_metrics(go: _go.GoModel, md_xyz, lss_xyz, *, md_frame_time: float, lss_frame_time: float,
                    n_blocks: int = 5) -> dict:
    """Folding of generated Cα trajectories of a Gō model against MD: the paper's Sec. 3.2 observables.

    Args:
        go: the :class:`lss_jax.systems.go.GoModel` (native contacts, native structure).
        md_xyz: MD trajectories, a list of ``[n_frames, n_beads, 3]`` (nm).
        lss_xyz: generated trajectories ``[B, n_frames, n_beads, 3]`` (nm), frames ``lss_frame_time`` apart.
        md_frame_time: time between MD frames (ps).
        lss_frame_time: time between generated frames (ps); MD is also analysed at this spacing
            (every ``lss_frame_time / md_frame_time``-th frame), because a state assignment sees fewer short
            excursions in coarser frames.
        n_blocks: contiguous MD blocks for standard errors.

    Returns:
        ``folded_fraction``, ``transitions_per_us`` (folding + unfolding events per µs), ``mean_q``, with MD block
        standard errors, both at the LSS frame spacing (``md``; ``md_full_resolution`` beside it); ``events``;
        ``rmsd_to_native_folded_nm`` (Cα RMSD to the native structure of the frames in the folded state, mean and
        sd); ``virtual_bonds`` (mean Cα–Cα (i, i+1) distance, fraction of frames with one more than 10 % from its MD
        mean); ``close_pairs`` (the smallest Cα–Cα distance and the fraction of frames with one below 0.3 nm, over
        pairs ``|i - j| >= 4``, those with excluded volume in the model, and ``>= 2``); each for MD and LSS.

    Example:
        >>> from lss_jax.systems import villin
        >>> md = [villin.load_villin("train", stride=5).xyz]
        >>> out = folding_metrics(villin.villin_go_model(), md, md[0][None, ::2], md_frame_time=100.0,
        ...                       lss_frame_time=200.0)
        >>> out["folded_fraction"]["md"] == out["folded_fraction"]["lss"], out["md_stride"]
        (True, 2)
    """
    import mdtraj as md

    stride = int(round(lss_frame_time / md_frame_time))
    if stride < 1 or abs(stride * md_frame_time - lss_frame_time) > 1e-6 * lss_frame_time:
        raise ValueError(f"the LSS frame time ({lss_frame_time} ps) must be a whole multiple of the MD frame time "
                         f"({md_frame_time} ps).")
    n = go.n_beads
    md_xyz = [np.asarray(x, np.float32) for x in md_xyz]
    lss_xyz = np.asarray(lss_xyz, np.float32)
    md_coarse = _states_and_events(go, md_xyz, stride)
    lss_per = _states_and_events(go, list(lss_xyz))
    out = {"lss_frame_time_ps": lss_frame_time, "md_frame_time_ps": md_frame_time, "md_stride": stride}
    md_rates, lss_rates = _rates(md_coarse, lss_frame_time), _rates(lss_per, lss_frame_time)
    full = _rates(_states_and_events(go, md_xyz), md_frame_time)
    blocks = [_rates(_states_and_events(go, [b], stride), lss_frame_time)
              for x in md_xyz for b in np.array_split(x, max(1, n_blocks // len(md_xyz)))]

    def se(key):
        return float(np.std([b[key] for b in blocks], ddof=1) / np.sqrt(len(blocks))) if len(blocks) > 1 else np.nan

    for key in ("folded_fraction", "transitions_per_us", "mean_q"):
        out[key] = {"md": md_rates[key], "md_se": se(key), "lss": lss_rates[key], "md_full_resolution": full[key]}
    out["events"] = {"md": {k: md_rates[k] for k in ("n_folding", "n_unfolding", "time_us")},
                     "lss": {k: lss_rates[k] for k in ("n_folding", "n_unfolding", "time_us")}}
    native = go.native_structure()

    def rmsd_folded(xyz_list, per):
        values = []
        for xyz, (_, states, _) in zip(xyz_list, per):
            folded = xyz[states == 1]
            if len(folded):
                values.append(md.rmsd(md.Trajectory(folded, native.topology), native))
        v = np.concatenate(values) if values else np.array([np.nan])
        return [float(np.mean(v)), float(np.std(v))]

    md_strided = [x[::stride] for x in md_xyz]
    out["rmsd_to_native_folded_nm"] = {"md": rmsd_folded(md_strided, md_coarse),
                                       "lss": rmsd_folded(list(lss_xyz), lss_per)}
    md_all, lss_all = np.concatenate(md_xyz), lss_xyz.reshape(-1, n, 3)

    def bond(x):
        return np.linalg.norm(x[:, 1:] - x[:, :-1], axis=-1)

    mean_bond = bond(md_all).mean(0)

    def off(x):
        return float(np.mean(np.any(np.abs(bond(x) / mean_bond - 1) > 0.1, axis=1)))

    out["virtual_bonds"] = {"md_mean_nm": float(mean_bond.mean()),
                            "mad_relative": {"md": float(np.mean(np.abs(bond(md_all) / mean_bond - 1))),
                                             "lss": float(np.mean(np.abs(bond(lss_all) / mean_bond - 1)))},
                            "fraction_frames_off_10pct": {"md": off(md_all), "lss": off(lss_all)}}

    def closest(x, separation):
        i, j = np.triu_indices(n, k=separation)
        d = np.linalg.norm(x[:, i] - x[:, j], axis=-1).min(axis=1)
        return {"min_nm": float(d.min()), "fraction_frames_below_0.3nm": float(np.mean(d < 0.3))}

    # |i - j| >= 4: the pairs with excluded volume in the model (a clash); |i - j| >= 2 for comparison (the
    # model has no non-bonded term below 4, and its soft angles let MD itself bring i, i + 2 within 0.16 nm)
    out["close_pairs"] = {f"separation_{s}": {"md": closest(md_all, s), "lss": closest(lss_all, s)} for s in (4, 2)}
    return out
