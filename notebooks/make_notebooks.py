"""Build the notebooks from the cell sources below (outputs stripped): python notebooks/make_notebooks.py"""

from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).parent


def notebook(cells):
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src) for kind, src in cells]
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:02d}"  # stable ids: regenerating a notebook changes only what changed
    return nb


FOUR_WELL = [
    ("md", """# The four-well potential: LSS against exact physics

Sidky, Chen & Ferguson (2020), Sec. 3.1 and Fig. 2. Brownian dynamics in a 1-D four-well potential, an
MDN propagator trained at lag τ = 100 steps, and a comparison with the exact Smoluchowski propagator.
`SMALL = True` runs in about a minute on 2 CPU cores; set it to `False` for the paper's protocol (~2.5 min)."""),
    ("code", "SMALL = True"),
    ("code", """import json
import numpy as np
import matplotlib.pyplot as plt
from IPython.display import Image, display

from lss_jax.systems.four_well import four_well_potential
from lss_jax.analysis import smoluchowski_reference
from lss_jax.pipelines.four_well import FourWellConfig, run_four_well"""),
    ("md", "The exact reference: a detailed-balance discretization of the Smoluchowski generator."),
    ("code", """ref = smoluchowski_reference(lambda x: four_well_potential(x, np), x_min=-1.4, x_max=1.4, n_bins=560)
x = ref.centers
fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
ax[0].plot(x, four_well_potential(x, np)); ax[0].set(xlabel="x", ylabel="V(x) / kT", ylim=(0, 10))
ax[1].plot(x, ref.stationary / ref.width); ax[1].set(xlabel="x", ylabel="π(x)")
print("exact implied timescales t1..t3:", ref.timescales[:3])"""),
    ("md", "Simulate, train, generate ≥ 1000 trajectories, and validate (writes metrics and figures to `runs/`)."),
    ("code", """config = FourWellConfig.quick() if SMALL else FourWellConfig()
metrics = run_four_well(config, "runs/notebook-four-well")
print(json.dumps({k: metrics[k] for k in ("free_energy_rmse_kT", "t1_relative_error", "transition_density_l1")}, indent=1))
print(json.dumps(metrics["implied_timescales"], indent=1))"""),
    ("code", """for name in ("stationary_density", "trajectories", "transition_density", "implied_timescales"):
    display(Image(f"runs/notebook-four-well/{name}.png"))"""),
    ("code", """assert metrics["n_trajectories_generated"] >= 1000
assert metrics["t1_relative_error"] < 0.25  # loose: SMALL trains briefly on a short trajectory"""),
]

ALA2 = [
    ("md", """# Alanine dipeptide end to end

Featurize MD with mdtraj, choose the lag from implied timescales, train the three networks (SRV encoder,
MDN propagator, and the decoder: conditional flow matching on internal coordinates by default, the paper's
cWGAN-GP with `decoder="wgan"`), generate new trajectories, and validate them against an independent MD
trajectory, with the decoder's own error (decode(encode(MD))) shown beside the full LSS. `SMALL = True` runs
in a few minutes on 2 CPU cores."""),
    ("code", "SMALL = True"),
    ("code", """import jax
import numpy as np
import mdtraj as md
import matplotlib.pyplot as plt
from IPython.display import Image, display

import lss_jax
from lss_jax.datasets import load_alanine_dipeptide
from lss_jax.data.featurize import FeatureSpec, featurize, standardizer_fit
from lss_jax.config import EncoderConfig
from lss_jax.encoder import srv_lag_scan
from lss_jax.analysis.plots import implied_timescales_vs_lag, report_figures
from lss_jax.analysis.molecular import run_validation
from lss_jax.analysis.torsions import phi_psi

train = load_alanine_dipeptide("train")              # 50 ns, one frame per 2 ps (integrator seed 1)
independent = load_alanine_dipeptide("independent")  # another 50 ns, seed 2: never trained on
print(train, train.timestep, "ps per frame")"""),
    ("md", "## Choosing the lag: SRV implied timescales against the lag"),
    ("code", """features = featurize(train, FeatureSpec())
z = standardizer_fit(features).transform(features)
lags = [1, 2, 5, 10] if SMALL else [1, 2, 3, 5, 8, 10, 15, 20]
its = srv_lag_scan(jax.random.key(0), [z], lags, 2, config=EncoderConfig(epochs=5 if SMALL else 30), progress=False)
implied_timescales_vs_lag(lags, its, frame_time=train.timestep, unit="ps");"""),
    ("md", "The slowest timescale (the ψ transition, ~9 ps) levels off from a lag of about 10 ps: we use 5 frames."),
    ("code", """config = lss_jax.LSSConfig(lag=5, encoder=lss_jax.EncoderConfig(latent_dim=2))
if SMALL:  # shorter training; the other fields of each section keep their values
    config = config.replace(encoder={"epochs": 10}, propagator={"epochs": 15}, decoder={"epochs": 40})
model = lss_jax.LSS(config=config).fit(train)
model.info["srv_timescales_ps"], model.info["wall_seconds"]"""),
    ("code", """psi = model.encode(train)
fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
pp = phi_psi(train)
sc = ax[0].scatter(pp[::5, 0], pp[::5, 1], c=psi[::5, 0], s=2, cmap="coolwarm"); ax[0].set(xlabel="φ", ylabel="ψ", title="ψ₁ on the Ramachandran plane")
fig.colorbar(sc, ax=ax[0])
ax[1].hist2d(psi[:, 0], psi[:, 1], bins=60, cmap="viridis"); ax[1].set(xlabel="ψ₁", ylabel="ψ₂", title="latent space");"""),
    ("md", "## Generate and validate"),
    ("code", """key = jax.random.key(1)
n_traj, n_steps = (50, 500) if SMALL else (1000, 1000)
latent = model.generate(key, n_traj, n_steps, latent_only=True)
lss = md.Trajectory(model.decode(jax.random.fold_in(key, 1), latent).reshape(-1, len(model.atom_indices), 3),
                    model.decoded_topology)
validation = run_validation(model, independent, lss, latent, train_trajs=train)
report_figures("runs/notebook-ala2", validation, model)  # the figures of `lss-jax report`
metrics = validation.metrics
{k: metrics[k] for k in ("free_energy_phi_psi", "implied_timescales_ps")}"""),
    ("code", """for name in ("free_energy_phi_psi", "free_energy_psi1_timescales", "structures", "tica", "conformers"):
    display(Image(f"runs/notebook-ala2/{name}.png"))"""),
    ("md", """Which network is at fault? The decoder alone, decode(encode(MD)), against MD and the full LSS: F(φ, ψ),
bond-length and angle deviations, per-atom fluctuations. An error the round trip shows is the decoder's; one
only the full LSS shows comes from the propagator."""),
    ("code", """d = metrics["decoder"]
print({k: round(d[k]["free_energy_phi_psi"]["rmse_kT"], 2) for k in ("round_trip", "lss")},
      "bond MAD %:", round(100 * d["round_trip"]["geometry"]["bond_length_mad_relative"], 2),
      "(MD", round(100 * d["round_trip"]["geometry"]["reference_bond_length_mad_relative"], 2), ")")
display(Image("runs/notebook-ala2/decoder.png"))"""),
    ("md", "Decoded structures can be written as a multi-model PDB for any viewer:"),
    ("code", """lss[:: max(1, lss.n_frames // 20)].save_pdb("runs/notebook-ala2/decoded_models.pdb")
assert metrics["n_lss_frames"] == n_traj * n_steps"""),
]

SCALE = [
    ("md", """# Batched generation at scale

One `lax.scan` advances all trajectories together; per-trajectory keys make trajectory *b* independent of
the batch it runs in, and chunks continue exactly where the previous one stopped. The table at the end is
the checked-in benchmark (`python benchmarks/perf/rollout.py`)."""),
    ("code", "SMALL = True"),
    ("code", """import json, time
from pathlib import Path
import jax, jax.numpy as jnp, numpy as np
from flax import nnx
from lss_jax import MDN, mdn_apply_fn, rollout

graphdef, params = nnx.split(MDN(3, 24, (100, 100), rngs=nnx.Rngs(0)))  # the paper's Trp-cage propagator size
fn = mdn_apply_fn(graphdef)"""),
    ("code", """rows = []
for batch in ([1, 64, 1024] if SMALL else [1, 64, 1024, 8192]):
    n_steps = 200 if SMALL else 2000
    x0 = jax.random.uniform(jax.random.key(1), (batch, 3))
    run = lambda: rollout(jax.random.key(2), fn, params, x0, n_steps=n_steps).block_until_ready()
    t0 = time.perf_counter(); run(); first = time.perf_counter() - t0
    t0 = time.perf_counter(); run(); second = time.perf_counter() - t0
    rows.append((batch, first - second, batch * n_steps / second))
    print(f"B={batch:>5}  compile ~{first - second:.2f} s   {batch * n_steps / second:,.0f} latent steps/s")"""),
    ("md", "Chunked generation is bitwise identical to one long call:"),
    ("code", """x0 = jax.random.uniform(jax.random.key(3), (16, 3))
full = rollout(jax.random.key(4), fn, params, x0, n_steps=100)
a = rollout(jax.random.key(4), fn, params, x0, n_steps=40)
b = rollout(jax.random.key(4), fn, params, a[:, -1], n_steps=60, start_step=40)
assert np.array_equal(np.asarray(full), np.concatenate([a, b], axis=1))
print("chunked == single call")"""),
    ("md", """## Streamed, resumable generation of decoded frames

`lss_jax.generation.simulate.generate_to_directory` rolls out, decodes and writes one chunk at a time, so memory is set
by the chunk and not by the trajectory length; rerunning it after an interruption continues after the last
complete chunk. Below: a small alanine dipeptide LSS, generated with two chunk sizes (bitwise the same
output), and the same trajectories sharded over all devices (`devices=jax.devices()`; one on this CPU)."""),
    ("code", """import tempfile
from lss_jax import LSS
from lss_jax.datasets import load_alanine_dipeptide
from lss_jax.generation.simulate import generate_to_directory, load_generated

model = LSS(lag=5, encoder={"latent_dim": 2, "epochs": 3}, propagator={"epochs": 5},
            decoder={"iterations": 200 if SMALL else None}).fit(load_alanine_dipeptide("train", stride=2), progress=False)
work = Path(tempfile.mkdtemp())
n_traj, n_steps = (8, 1000) if SMALL else (100, 100_000)
for chunk in (250, 1000):
    summary = generate_to_directory(jax.random.key(0), model, work / f"chunk{chunk}", n_traj, n_steps,
                                    chunk_steps=chunk, devices=jax.devices(), progress=False)
    print(f"chunk_steps={chunk}: {summary.n_trajectories * summary.n_frames:,} frames in {summary.seconds:.1f} s")
a, b = load_generated(work / "chunk250"), load_generated(work / "chunk1000")
assert np.array_equal(a.xyz, b.xyz) and np.array_equal(a.latent, b.latent)
print("chunk sizes 250 and 1000 give bitwise the same frames:", a.xyz.shape)"""),
    ("code", """import matplotlib.pyplot as plt
fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
ax[0].plot(a.times / 1000, a.latent[0, :, 0], lw=0.5)
ax[0].set(xlabel="time (ns)", ylabel="$\\psi_1$", title="one generated trajectory")
traj = a.trajectory([0])
import mdtraj as md
ax[1].hist(md.compute_rg(traj), bins=40)
ax[1].set(xlabel="$R_g$ (nm)", title="decoded heavy atoms")
plt.tight_layout()"""),
    ("code", """import lss_jax
path = Path(lss_jax.__file__).parent.parent / "benchmarks" / "results" / "rollout-cpu.json"
bench = json.loads(path.read_text())
print(f"matmul peak {bench['matmul_peak']['gflops']:.0f} GFLOP/s on {bench['machine']['cpu_count']} CPUs")
for r in bench["results"]:
    print(f"B={r['batch']:>5}  {r['latent_steps_per_second']:.3g} steps/s  {r['gflops']:.1f} GFLOP/s  ({r['fraction_of_matmul_peak']:.0%} of peak)")"""),
]

ADAPT = [
    ("md", """# Uncertainty and adaptive sampling

An ensemble of propagators, trained in one vmapped run on bootstrap resamples, says where the learned
kinetics are uncertain; `lss_jax.adaptive` turns that, and where the MD data are thinnest (least counts; or,
with `beta=1`, thinnest relative to the model's stationary density), into seeds for new MD. With `SMALL = True` everything is tiny; the measured comparisons are in
docs/adaptive_sampling.md (`benchmarks/studies/adaptive_four_well.py`, `benchmarks/studies/adaptive_ala2.py`)."""),
    ("code", "SMALL = True"),
    ("code", """import jax, numpy as np, matplotlib.pyplot as plt
from lss_jax import LSS
from lss_jax.adaptive import select_seeds
from lss_jax.analysis.molecular import validate
from lss_jax.analysis.torsions import phi_psi
from lss_jax.analysis.plots import uncertainty_map
from lss_jax.datasets import load_alanine_dipeptide

train = load_alanine_dipeptide("train", stride=2 if SMALL else 1)
model = LSS(lag=2 if SMALL else 5, encoder={"latent_dim": 2, "epochs": 5 if SMALL else 50},
            propagator={"ensemble_size": 4, "epochs": 10 if SMALL else 60},
            decoder={"iterations": 200 if SMALL else None}).fit(train, progress=False)
uncertainty_map(model);"""),
    ("md", "The report repeats the analysis with every ensemble member; the spread of the slowest implied timescale:"),
    ("code", """lss, latent = model.generate(jax.random.key(0), 50, 200, return_latent=True, progress=False)
m = validate(model, load_alanine_dipeptide("independent", stride=2), lss, latent)
its, ens = m["implied_timescales_ps"], m["ensemble"]["t1_ps"]
f = lambda v: "nan" if v is None else f"{v:.2f}"
print(f"t1 (ps): MD {f(its['md'][0])} +- {f(its['md_se'][0])} | LSS {f(its['lss'][0])} | "
      f"ensemble {f(ens['mean'])} +- {f(ens['std'])}")"""),
    ("md", "Where would the model run MD next? The seeds on the Ramachandran plane of the training data:"),
    ("code", """sel = select_seeds(jax.random.key(1), model, train, 10, max_candidates=5000)
pp = phi_psi(train)
plt.figure(figsize=(5, 4.5))
plt.hist2d(pp[:, 0], pp[:, 1], bins=60, cmap="Greys", cmin=1)
plt.scatter(pp[sel.indices, 0], pp[sel.indices, 1], c="C3", s=40, label="seeds")
plt.xlabel("phi"); plt.ylabel("psi"); plt.legend();"""),
    ("md", """## The four-well experiment (one repeat, quick settings)

Adaptive rounds against plain continuation of the same BD budget. The full experiment (3 seeds, 12 rounds)
misses its target; docs/adaptive_sampling.md says why."""),
    ("code", """import tempfile
from IPython.display import Image
from lss_jax.adaptive.four_well import AdaptiveConfig, run_adaptive_four_well

cfg = AdaptiveConfig.quick(n_rounds=2) if SMALL else AdaptiveConfig()
out = tempfile.mkdtemp()
m = run_adaptive_four_well(cfg, out, progress=False)
print("adaptive:", [f"{s:,} steps: {r:.2f} kT" for s, r in zip(m["adaptive"]["md_steps"], m["adaptive"]["rmse"])])
print("plain:   ", [f"{s:,} steps: {r:.2f} kT" for s, r in zip(m["plain"]["md_steps"], m["plain"]["rmse"])][:4])
Image(filename=f"{out}/adaptive_four_well.png")"""),
]


TRP_CAGE = [
    ("md", """# Trp-cage: the paper's protein protocol on a Cα structure-based model

Sidky, Chen & Ferguson (2020), Sec. 3.2, on data we can make here: a Cα Gō model of Trp-cage built from its
NMR structure (PDB 1L2Y; `lss_jax.systems.trp_cage`), simulated with OpenMM near its folding temperature.
Two 140 ns trajectories ship with the package (training and independent, 5 ps frames). The protocol: Cα
distances and Cα pseudo-torsions as features, a 3-D latent space, an MDN with 24 kernels, a decoder on the Cα
atoms (the chain decoder: flow matching on the Cartesian Cα chain with a transformer over residues, each frame's
map of native contacts drawn first from ψ), the encoder and the propagator cross-fitted (the SRV on the leading 30 %
of the run, the MDN on the rest); folding followed with Q, the fraction of native contacts. `SMALL = True` trains
briefly on every second frame (a few minutes on 2 CPU cores); `False` runs the defaults (`lss-jax demo --system
trp-cage`: the chain decoder trains 300 epochs and decodes 280 000 frames, about an hour on 2 CPU cores)."""),
    ("code", "SMALL = True"),
    ("code", """import jax, numpy as np, matplotlib.pyplot as plt
from IPython.display import Image, display
from lss_jax import LSS
from lss_jax.systems import trp_cage as tc

train, independent = tc.load_trp_cage("train"), tc.load_trp_cage("independent")
q = tc.fraction_native_contacts(train)
events = tc.folding_transitions(q)
print(f"training run: {train.n_frames} frames ({train.time[-1] / 1000:.0f} ns), folded fraction {tc.folded_fraction(q):.2f}, "
      f"{events.n_folding} folding / {events.n_unfolding} unfolding transitions")
fig, ax = plt.subplots(1, 2, figsize=(11, 3.2))
ax[0].plot(train.time[:4000] / 1000, q[:4000], lw=0.5)
ax[0].axhline(tc.Q_FOLDED, color="k", ls=":"); ax[0].axhline(tc.Q_UNFOLDED, color="k", ls=":")
ax[0].set(xlabel="time (ns)", ylabel="Q", title="fraction of native contacts (first 20 ns)")
ax[1].hist(q, bins=21, density=True)
ax[1].set(xlabel="Q", title="Q histogram")
plt.tight_layout()"""),
    ("code", """settings = dict(encoder={"epochs": 5}, propagator={"epochs": 10}, decoder={"iterations": 300}) if SMALL else {}
stride = 2 if SMALL else 1
config = tc.lss_config(lag=tc.DEFAULT_LAG // stride, **settings)
model = LSS(config=config).fit(train[::stride], progress=False)
c = model.info["consistency"]
print("SRV timescales (ps):", np.round(model.info["srv_timescales_ps"], 1))
print("propagator timescales from rollouts (ps):", np.round(c["propagator_timescales"], 1), "| warnings:", c["warnings"])
print("SRV timescales on the propagator's frames, which the SRV never saw (ps):", np.round(c["srv_heldout_timescales"], 1))"""),
    ("code", """n_traj, n_steps = (20, 500) if SMALL else (100, train.n_frames // config.lag)
lss, latent = model.generate(jax.random.key(1), n_traj, n_steps, return_latent=True, progress=False)
folding = tc.folding_metrics([independent.xyz], lss.xyz.reshape(n_traj, n_steps, 20, 3),
                             md_frame_time=5.0, lss_frame_time=model.lag_time)
for key in ("folded_fraction", "transitions_per_us"):
    f = folding[key]
    print(f"{key:20s} MD {f['md']:.3f} ± {f['md_se']:.3f}   LSS {f['lss']:.3f}")
print("RMSD to native in the folded state (nm): MD", folding["rmsd_to_native_folded_nm"]["md"],
      "LSS", np.round(folding["rmsd_to_native_folded_nm"]["lss"], 3))
print("frames with a Cα pair |i - j| >= 4 closer than 0.3 nm: LSS",
      folding["close_pairs"]["separation_4"]["lss"]["fraction_frames_below_0.3nm"])"""),
    ("md", """Are the structures new? The same latent trajectories decoded by retrieval (`with_retrieval`: every frame
one of the 20 training frames nearest in latent space) isolate the decoder: what retrieval gets wrong is the encoder's
and the propagator's. Novelty is the median Cα-RMSD of a decoded frame to its nearest training frame, beside the same
figure for frames of the independent MD run; retrieval's is zero by construction (`lss-jax report --retrieval` prints
the whole report side by side)."""),
    ("code", """import mdtraj as md
from lss_jax.analysis.structure import nearest_frame_rmsd

m = model.fetch_model()
retrieval = m.with_retrieval(train[::stride])
xyz_knn = retrieval.decode_unit(jax.random.key(1), retrieval.to_unit(latent))
folding_knn = tc.folding_metrics([independent.xyz], xyz_knn, md_frame_time=5.0, lss_frame_time=model.lag_time)
for key in ("folded_fraction", "transitions_per_us"):
    print(f"{key:20s} MD {folding[key]['md']:.3f}   chain decoder {folding[key]['lss']:.3f}   "
          f"retrieval {folding_knn[key]['lss']:.3f}")
knn_frames = md.Trajectory(np.asarray(xyz_knn).reshape(-1, 20, 3), lss.topology)
novelty = {name: float(np.median(nearest_frame_rmsd(frames, train, max_generated=300)))
           for name, frames in [("chain decoder", lss), ("retrieval", knn_frames), ("independent MD", independent)]}
print("novelty, median Cα-RMSD to the nearest training frame (nm):", {k: round(v, 3) for k, v in novelty.items()})"""),
    ("code", """import tempfile
from pathlib import Path
from lss_jax.analysis.molecular import run_validation
from lss_jax.analysis.plots import report_figures

out = Path(tempfile.mkdtemp())
validation = run_validation(model, independent, lss, latent, system_metrics=tc.report_metrics)  # folding
report_figures(out, validation, model)
metrics = validation.metrics
print(f"F(psi1) RMSE {metrics['free_energy_psi1']['rmse_kT']:.2f} kT, "
      f"F(TIC1) RMSE {metrics['tica']['free_energy_tic1']['rmse_kT']:.2f} kT "
      f"(MD half vs half {metrics['tica']['free_energy_tic1']['md_half_vs_half_rmse_kT']:.2f} kT)")
for name in ("folding.png", "tica.png", "free_energy_psi1_timescales.png"):
    display(Image(filename=str(out / name)))"""),
    ("md", """## A second protein, with the protocol and the lag chosen from the data

The villin headpiece HP35 (35 residues, a three-helix bundle; PDB 2F4K) as the same kind of Cα Gō model
(`lss_jax.systems.villin`), two 200 ns runs shipped (20 ps frames). Nothing is set by hand this time: the protocol
comes from the topology (`lss_jax.protocols.choose_protocol`) and the lag from the training features
(`lss_jax.analysis.lagchoice.choose_lag`), as `lss-jax train --lag auto` and `lss-jax demo --system villin` do
(measured at these defaults in docs/trp_cage.md, "A second protein")."""),
    ("code", """from lss_jax.analysis.lagchoice import choose_lag, format_lag_table
from lss_jax.data.stream import training_data
from lss_jax.protocols import choose_protocol, protocol_config
from lss_jax.systems import villin

v_train, v_independent = villin.load_villin("train"), villin.load_villin("independent")
choice = choose_protocol(v_train.topology)
print("protocol:", choice.name, "-", choice.reason)
v_config = protocol_config(choice.name, 1, settings)
lag = choose_lag(training_data(v_train, v_config).features)
print(format_lag_table(lag, float(v_train.timestep), "ps"))
print("chosen:", lag.reason)"""),
    ("code", """v_model = LSS(config=v_config.replace(lag=lag.lag)).fit(v_train, progress=False)
print("latent dimension (largest timescale gap):", v_model.latent_dim,
      "| SRV timescales (ps):", np.round(v_model.info["srv_timescales_ps"], 0))
v_steps = 500 if SMALL else v_train.n_frames // lag.lag
v_lss = v_model.generate(jax.random.key(1), n_traj, v_steps, progress=False)
v_folding = villin.SYSTEM.report_metrics([v_independent.xyz], v_lss.xyz.reshape(n_traj, v_steps, 35, 3),
                                         md_frame_time=float(v_train.timestep), lss_frame_time=v_model.lag_time)["folding"]
for key in ("folded_fraction", "transitions_per_us"):
    f = v_folding[key]
    print(f"{key:20s} MD {f['md']:.3f} ± {f['md_se']:.3f}   LSS {f['lss']:.3f}")"""),
]

NOTEBOOKS = {"01_four_well": FOUR_WELL, "02_alanine_dipeptide": ALA2, "03_generation_at_scale": SCALE,
             "04_uncertainty_and_adaptive_sampling": ADAPT, "05_trp_cage": TRP_CAGE}


if __name__ == "__main__":
    for name, cells in NOTEBOOKS.items():
        nbf.write(notebook(cells), HERE / f"{name}.ipynb")
        print("wrote", HERE / f"{name}.ipynb")
