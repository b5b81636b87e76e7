"""Every benchmark script still imports against the package and parses its command line (`--help`): a refactor that
moves a name the benchmarks use fails here, not weeks later when someone reruns a measurement. The scripts import
only public lss_jax names and never each other, and every `benchmarks/...` path the docs and scripts name exists."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted((ROOT / "benchmarks").rglob("*.py"))
KINDS = ("perf", "studies", "data")  # speed and memory, accuracy studies, data generators


def test_benchmarks_are_filed_by_kind():
    assert BENCHMARKS
    misfiled = [str(p.relative_to(ROOT)) for p in BENCHMARKS if p.parent.parent.name != "benchmarks"
                or p.parent.name not in KINDS]
    assert not misfiled, f"benchmark scripts outside benchmarks/{{{','.join(KINDS)}}}/: {misfiled}"


@pytest.mark.parametrize("script", BENCHMARKS, ids=[str(p.relative_to(ROOT / "benchmarks")) for p in BENCHMARKS])
def test_benchmark_script_imports_and_shows_its_help(script):
    """Run as documented: `python benchmarks/KIND/NAME.py --help` from the repository root."""
    done = subprocess.run([sys.executable, str(script.relative_to(ROOT)), "--help"], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage" in done.stdout.lower()


def problems(source: str, scripts: set[str]) -> list[str]:
    """What a benchmark script must not do: import a private lss_jax module or name, import another benchmark
    script, or touch ``sys.path``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [(node.module or "", [alias.name for alias in node.names])]
        elif isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", None) == "sys":
            found.append(f"line {node.lineno}: sys.path")
            continue
        else:
            continue
        for module, names in modules:
            parts = module.split(".")
            if parts[0] == "lss_jax" and any(p.startswith("_") for p in parts + names):
                found.append(f"line {node.lineno}: private import from {module}: {names or module}")
            if parts[0] in scripts:
                found.append(f"line {node.lineno}: imports the benchmark script {parts[0]}")
    return found


def test_the_import_check_sees_what_it_must():
    source = ("import sys\nsys.path.insert(0, 'x')\nfrom lss_jax.analysis._common import check_int\nimport lss_jax.analysis._common\n"
              "from lss_jax.cli.config import _toml_value\nfrom decoders import heavy\n"
              "from lss_jax.benchmarking import write_results\n")
    assert len(problems(source, {"decoders"})) == 5


@pytest.mark.parametrize("script", BENCHMARKS, ids=[str(p.relative_to(ROOT / "benchmarks")) for p in BENCHMARKS])
def test_benchmark_script_imports_only_public_names(script):
    found = problems(script.read_text(encoding="utf-8"), {p.stem for p in BENCHMARKS})
    assert not found, f"{script.relative_to(ROOT)}: {found}"


def test_named_benchmark_paths_exist():
    """The files under `benchmarks/` (scripts, results, READMEs) that the docs, the README, the notebooks, the
    package's docstrings and the scripts themselves (usage lines, gpu.sh) name exist: a move that leaves a path
    behind fails here."""
    texts = [ROOT / "README.md", *ROOT.glob("docs/**/*.md"), *ROOT.glob("notebooks/*"), *ROOT.glob("lss_jax/**/*.py"),
             *ROOT.glob("benchmarks/**/*.py"), *ROOT.glob("benchmarks/**/*.sh"), *ROOT.glob("benchmarks/*.md")]
    missing = {}
    for path in texts:
        if not path.is_file():
            continue
        for named in re.findall(r"benchmarks/[\w/.-]+\.(?:py|sh|json|md)\b", path.read_text(encoding="utf-8", errors="replace")):
            if not (ROOT / named).exists():
                missing.setdefault(str(path.relative_to(ROOT)), []).append(named)
    assert not missing, f"paths under benchmarks/ that do not exist: {missing}"


def test_fit_or_load_reuses_a_saved_model_only_for_its_own_configuration(tiny_alanine_model, tmp_path, monkeypatch):
    import lss_jax.model
    from lss_jax.benchmarking import fit_or_load

    model, data = tiny_alanine_model
    fits = []
    monkeypatch.setattr(lss_jax.model, "fit_lss", lambda *args, **kwargs: fits.append(args) or model)
    path = tmp_path / "models" / "seed3"  # its parent does not exist yet
    fit_or_load(3, data, model.config, path, progress=False)
    loaded = fit_or_load(3, data, model.config, path, progress=False)
    assert len(fits) == 1 and loaded.config == model.config  # fitted and saved once, then loaded
    with pytest.raises(ValueError, match=r"lag = 2 \(asked for 3\)"):
        fit_or_load(3, data, model.config.replace(lag=3), path, progress=False)


def test_throughput_model_reuses_its_saved_model_only_for_its_own_size(tiny_alanine_model, tmp_path, monkeypatch):
    """The speed benchmarks' model goes through :func:`fit_or_load`: saved once, loaded after, and a saved quick model
    is not taken for the full one."""
    import lss_jax.model
    from lss_jax.benchmarking import throughput_model

    model, _ = tiny_alanine_model
    fits = []
    monkeypatch.setattr(lss_jax.model, "fit_lss",
                        lambda key, data, config, **kwargs: fits.append(config) or model.replace(config=config))
    path = tmp_path / "model"
    first, info = throughput_model(quick=True, model_dir=path)
    assert info["saved_to"] == str(path) and info["config"]["lag"] == 1 and first.config.lag == 1
    again, info = throughput_model(quick=True, model_dir=path)
    assert info == {"loaded_from": str(path)} and len(fits) == 1 and again.config == first.config
    with pytest.raises(ValueError, match=r"lag = 1 \(asked for 5\)"):
        throughput_model(quick=False, model_dir=path)


def test_refit_decoder_reproduces_the_models_decoder_and_applies_changes(tiny_alanine_model):
    """What the decoder studies rest on: refit_decoder with no changes is the model's own decoder bit for bit (same
    frames, latent points and key as fit_lss), and a change (another kind, another seed) gives another decoder."""
    import chex
    import jax
    import numpy as np

    from lss_jax.benchmarking import refit_decoder

    model, data = tiny_alanine_model
    same = refit_decoder(model, data, progress=False)
    chex.assert_trees_all_equal(jax.tree_util.tree_leaves(same), jax.tree_util.tree_leaves(model.decoder))
    mean_flow = refit_decoder(model, data, progress=False, kind="meanflow")
    assert (mean_flow.kind, mean_flow.flow_steps) == ("meanflow", 2)
    other_seed = refit_decoder(model, data, progress=False, seed=4)
    assert not np.array_equal(jax.tree_util.tree_leaves(other_seed.network)[0],
                              jax.tree_util.tree_leaves(model.decoder.network)[0])
