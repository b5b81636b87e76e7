"""The nested configuration: one section per part, validated where it is defined; the flat form of earlier lss_jax
(dicts, TOML files, saved models, ``LSS`` keywords) read with a warning that names the new spelling; unknown keys
refused with the valid ones. No training here (tests/test_molecular.py trains from a flat TOML file and loads flat
saved models; tests/test_cli_smoke.py trains from the tables)."""

import ast
import hashlib
import json
import tomllib
import warnings
from argparse import Namespace
from pathlib import Path

import pytest

import lss_jax
from lss_jax.cli.config import _apply_config, _write_resolved
from lss_jax.cli.parser import build_parser
from lss_jax.config import (
    DataConfig,
    DecoderConfig,
    EncoderConfig,
    FlatConfigWarning,
    LSSConfig,
    PropagatorConfig,
)
from lss_jax.model.facade import LSS

# what lss_jax before the nesting stored for LSSConfig.from_dict(FLAT) (its to_dict, in the lss.json of format 2)
FLAT = {"lag": 2, "latent_dim": 2, "encoder_epochs": 2, "propagator_epochs": 2, "decoder_iterations": 20, "seed": 3}
FLAT_STORED = {
    "lag": 2, "latent_dim": 2, "max_latent_dim": 4, "torsions": ["phi", "psi", "chi"], "distances": "heavy",
    "atom_selection": "not element H", "val_fraction": 0.1, "seed": 3, "encoder_fraction": 1.0,
    "encoder_hidden": [100, 100], "encoder_batch_norm": True, "encoder_learning_rate": 0.001,
    "encoder_batch_size": 2000, "encoder_epochs": 2, "encoder_patience": 5, "encoder_linear_floor": False,
    "n_components": 24, "propagator_hidden": [100, 100], "propagator_learning_rate": 0.001,
    "propagator_batch_size": 1024, "propagator_epochs": 2, "propagator_patience": 30, "scale_floor": 0.001,
    "boundary": "reflect", "ensemble_size": 0, "decoder": "flow", "decoder_coordinates": "internal",
    "decoder_hidden": None, "decoder_learning_rate": None, "decoder_batch_size": 256, "decoder_epochs": None,
    "decoder_iterations": 20, "decoder_patience": 30, "decoder_max_steps": 60000, "decoder_lr_decay": None,
    "flow_steps": 10, "decoder_states": 16, "noise_dim": 50, "critic_hidden": None, "decoder_condition": "input",
    "n_critic": 5, "gp_weight": 10.0, "decoder_redraws": 8, "decoder_support_margin": 0.9, "decoder_neighbours": 20,
    "decoder_max_frames": 100000, "decoder_temperature": None,
}
# sha256 of json.dumps(FLAT_STORED, sort_keys=True), as LSSModel.fingerprint hashed the configuration before
FLAT_SHA256 = "565ea5b7c880fe99fc27254f0b903a7bd8e9c94389bdaeb692302bfc0b3ea2ad"
NESTED = LSSConfig(lag=2, encoder=EncoderConfig(latent_dim=2, epochs=2), propagator=PropagatorConfig(epochs=2),
                   decoder=DecoderConfig(iterations=20), seed=3)


def _read_flat(data, **kwargs):
    with pytest.warns(FlatConfigWarning) as caught:
        config = LSSConfig.from_dict(data, **kwargs)
    assert len(caught) == 1
    return config, str(caught[0].message)


# ---------------------------------------------------------------- the nested form
def test_sections_hold_the_settings_of_their_part():
    config = LSSConfig(lag=5)
    assert (config.data, config.encoder, config.propagator, config.decoder) == (
        DataConfig(), EncoderConfig(), PropagatorConfig(), DecoderConfig())
    assert config.encoder.n_outputs == 4 and EncoderConfig(latent_dim=2).n_outputs == 2
    assert config.feature_spec == config.data.feature_spec
    assert lss_jax.decoder.DecoderConfig is DecoderConfig and lss_jax.DecoderConfig is DecoderConfig
    hash(NESTED)  # static metadata of a model: hashable


@pytest.mark.parametrize("make,message", [
    (lambda: LSSConfig(lag=0), "lag must be a positive integer, got 0."),
    (lambda: DataConfig(val_fraction=0.7), "val_fraction must be in (0, 0.5), got 0.7."),
    (lambda: DataConfig(encoder_fraction=0.0), "encoder_fraction must be in (0, 1]"),
    (lambda: EncoderConfig(batch_size=0), "encoder.batch_size must be a positive integer, got 0."),
    (lambda: EncoderConfig(latent_dim=0), "encoder.latent_dim must be a positive integer or None, got 0."),
    (lambda: EncoderConfig(linear_floor="yes"), "encoder.linear_floor must be true or false, got 'yes'."),
    (lambda: PropagatorConfig(n_components=0), "propagator.n_components must be a positive integer, got 0."),
    (lambda: PropagatorConfig(ensemble_size=1), "propagator.ensemble_size must be 0 (no ensemble) or an integer >= 2"),
    (lambda: DecoderConfig(kind="gan"), "decoder must be 'flow' (conditional flow matching)"),
    (lambda: DecoderConfig(coordinates="xyz"), "decoder coordinates must be 'internal'"),
    (lambda: LSSConfig(lag=5, decoder="knn"), "decoder must be a DecoderConfig (LSSConfig(lag, decoder=DecoderConfig"),
    (lambda: DecoderConfig(flow_solver="dopri5"),
     "decoder flow_solver must be one of 'heun', 'midpoint', 'euler', 'rk4', got 'dopri5'."),
    (lambda: DecoderConfig(distill_steps=-1), "decoder distill_steps must be an integer >= 0"),
    (lambda: DecoderConfig(kind="knn", distill_steps=1), "the 'knn' decoder samples in one pass already: set distill_steps = 0"),
    (lambda: DecoderConfig(distill_iterations=0), "decoder distill_iterations must be a positive integer, got 0."),
])
def test_each_section_checks_its_own_fields(make, message):
    with pytest.raises(ValueError) as err:
        make()
    assert message in str(err.value)


def test_from_dict_to_dict_and_replace():
    data = {"lag": 2, "seed": 3, "encoder": {"latent_dim": 2, "epochs": 2}, "propagator": {"epochs": 2},
            "decoder": {"iterations": 20}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the nested form reads without a warning
        assert LSSConfig.from_dict(data) == NESTED
        assert LSSConfig.from_dict(NESTED.to_dict()) == NESTED
    stored = json.loads(json.dumps(NESTED.to_dict()))  # what lss.json holds
    assert list(stored) == ["lag", "seed", "data", "encoder", "propagator", "decoder"]
    assert stored["encoder"]["hidden"] == [100, 100] and stored["decoder"]["kind"] == "flow"
    # replace: a mapping changes those fields of the section and keeps the others; an object replaces the section
    changed = NESTED.replace(encoder={"epochs": 5}, decoder=DecoderConfig(kind="knn"), seed=4)
    assert changed.encoder == EncoderConfig(latent_dim=2, epochs=5) and changed.decoder == DecoderConfig(kind="knn")
    assert changed.seed == 4 and changed.propagator == NESTED.propagator and NESTED.encoder.epochs == 2
    assert LSS(lag=2, config=NESTED, encoder={"epochs": 5}).config.encoder == changed.encoder
    assert LSSConfig.from_dict({"lag": 3, "data": {"torsions": ["ca"]}}).data.torsions == ("ca",)


def test_unknown_keys_name_the_key_and_the_valid_ones():
    with pytest.raises(ValueError) as err:
        LSSConfig.from_dict({"lag": 2, "n_componets": 3})
    assert str(err.value).startswith("unknown configuration key(s) 'n_componets' (did you mean "
                                     "'propagator.n_components'?); valid keys: lag, seed and the sections data, "
                                     "encoder, propagator, decoder")
    with pytest.raises(ValueError) as err:
        LSSConfig.from_dict({"lag": 2, "encoder": {"hiden": [8]}})
    assert str(err.value) == ("unknown encoder key(s) 'hiden' (did you mean 'hidden'?); valid encoder keys "
                              "(EncoderConfig): latent_dim, max_latent_dim, min_latent_dim, hidden, batch_norm, learning_rate, "
                              "batch_size, epochs, patience, linear_floor.")
    with pytest.raises(ValueError, match="unknown propagator key.*valid propagator keys"):
        NESTED.replace(propagator={"components": 3})
    with pytest.raises(ValueError, match="encoder must be an EncoderConfig or a mapping of its fields"):
        LSSConfig.from_dict({"lag": 2, "encoder": 3})
    with pytest.raises(ValueError, match="no lag"):
        LSSConfig.from_dict({"encoder": {}})


# ---------------------------------------------------------------- the flat form of earlier lss_jax
def test_a_flat_dict_is_translated_with_one_warning_naming_the_new_spelling():
    config, message = _read_flat(FLAT, source="tiny.toml")
    assert config == NESTED
    assert "\n" not in message and message == (
        "tiny.toml: flat configuration keys are deprecated, each setting now lives in its section: latent_dim -> "
        "encoder.latent_dim, encoder_epochs -> encoder.epochs, propagator_epochs -> propagator.epochs, "
        "decoder_iterations -> decoder.iterations (TOML: [encoder] latent_dim = ...; Python: LSSConfig(lag, "
        "encoder=EncoderConfig(latent_dim=...))).")
    config, message = _read_flat({"lag": 2, "decoder": "knn", "n_components": 3, "encoder_fraction": 0.5})
    assert (config.decoder.kind, config.propagator.n_components, config.data.encoder_fraction) == ("knn", 3, 0.5)
    assert "decoder -> decoder.kind, n_components -> propagator.n_components, encoder_fraction -> " \
           "data.encoder_fraction" in message
    with pytest.raises(ValueError, match="encoder_epochs and encoder.epochs are the same setting, given twice"):
        LSSConfig.from_dict({"lag": 2, "encoder": {"epochs": 3}, "encoder_epochs": 2})


def test_a_stored_flat_configuration_reads_back_and_keeps_the_model_fingerprint():
    """The lss.json of model format 2 (every flat field): the same configuration, and the fingerprint's input
    (LSSModel.fingerprint hashes _flat_dict) is byte for byte what lss_jax hashed before the nesting."""
    config, message = _read_flat(FLAT_STORED, source="m/lss.json")
    # stored with the linear floor off (then the default; now on): read back as stored
    assert config == NESTED.replace(encoder={"linear_floor": False}) and "and 37 more" in message
    assert config._flat_dict() == FLAT_STORED
    assert hashlib.sha256(json.dumps(config._flat_dict(), sort_keys=True).encode()).hexdigest() == FLAT_SHA256


def test_a_saved_configuration_keeps_the_sampler_it_was_trained_with():
    """A model saved before the few-step decoder (no flow_solver, distill_steps) reads back with the sampler it was
    trained with, whatever today's defaults, and keeps its fingerprint; a configuration typed by a user gets the
    defaults."""
    stored = NESTED.to_dict()
    for name in ("flow_solver", "distill_steps", "distill_iterations"):
        del stored["decoder"][name]
    saved = LSSConfig.from_saved(stored)
    assert saved.decoder.sampler == (10, "heun") and saved.decoder.distill_steps == 0
    assert saved._flat_dict() == NESTED._flat_dict()
    distilled = NESTED.replace(decoder={"distill_steps": 1})
    assert distilled.decoder.sampler == (1, "euler")
    assert distilled._flat_dict()["decoder_distill_steps"] == 1  # a distilled model has another name
    assert LSSConfig.from_saved(distilled.to_dict()) == distilled
    # a model saved before the encoder's linear floor existed was trained without it, whatever today's default
    del stored["encoder"]["linear_floor"]
    assert NESTED.encoder.linear_floor and not LSSConfig.from_saved(stored).encoder.linear_floor
    assert LSSConfig.from_dict(stored).encoder.linear_floor  # typed by a user: the default


def test_the_facade_and_the_trp_cage_protocol_read_flat_keywords():
    with pytest.warns(FlatConfigWarning, match="latent_dim -> encoder.latent_dim, decoder_iterations -> "):
        lss = LSS(lag=5, latent_dim=2, decoder_iterations=2000)
    assert lss.config == LSSConfig(lag=5, encoder=EncoderConfig(latent_dim=2), decoder=DecoderConfig(iterations=2000))
    from lss_jax.systems import trp_cage

    with pytest.warns(FlatConfigWarning, match="decoder -> decoder.kind"):
        old = trp_cage.lss_config(decoder="flow", encoder_epochs=2)
    assert old == trp_cage.lss_config(decoder={"kind": "flow"}, encoder={"epochs": 2})
    assert old.encoder.latent_dim == 3 and old.data.encoder_fraction == 0.3  # the protocol's own, kept


# ---------------------------------------------------------------- TOML (lss-jax train --config)
def _train_config(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    argv, extras = _apply_config(build_parser(), ["train", "--config", str(path)])
    return extras


def test_toml_tables_and_flat_toml_give_the_same_configuration(tmp_path):
    tables = _train_config(tmp_path, "[encoder]\nlatent_dim = 2\nepochs = 2\n[propagator]\nepochs = 2\n"
                                     "[decoder]\niterations = 20\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert LSSConfig.from_dict({**tables, "lag": 2, "seed": 3}) == NESTED  # lag, seed: options of train
    flat = _train_config(tmp_path, "seed = 3\nlatent_dim = 2\nencoder_epochs = 2\npropagator_epochs = 2\n"
                                   "decoder_iterations = 20\n")
    # latent_dim and seed are options of train (--latent-dim, --seed): only the other three are flat
    assert flat == {"encoder_epochs": 2, "propagator_epochs": 2, "decoder_iterations": 20}
    config, message = _read_flat({**flat, "lag": 2, "seed": 3, "encoder": {"latent_dim": 2}})
    assert config == NESTED and "encoder_epochs -> encoder.epochs" in message
    assert _train_config(tmp_path, 'decoder = "wgan"\n') == {"decoder": "wgan"}  # flat: the kind
    assert _train_config(tmp_path, '[decoder]\nkind = "wgan"\n') == {"decoder": {"kind": "wgan"}}


@pytest.mark.parametrize("text,message", [
    ("n_componets = 3\n", "unknown key(s) 'n_componets' (did you mean 'propagator.n_components'?) in config file"),
    ("[propagator]\nn_componets = 3\n", "unknown key(s) 'n_componets' (did you mean 'n_components'?) in [propagator] "
                                        "of config file"),
    ("[encoder]\nhidden = [\"16\"]\n", "encoder.hidden must be an array of integers, got ['16'] (an array)"),
    ("encoder_hidden = [\"16\"]\n", "encoder_hidden must be an array of integers, got ['16'] (an array)"),
    ("encoder = 3\n", "encoder must be a table ([encoder] with one `key = value` per line under it), got 3"),
])
def test_toml_errors_name_the_key_and_the_valid_ones(tmp_path, text, message):
    with pytest.raises(ValueError) as err:
        _train_config(tmp_path, text)
    assert message in str(err.value)
    if "unknown" in message and "[propagator]" in message:
        assert str(err.value).endswith("valid [propagator] keys: n_components, hidden, scale_floor, learning_rate, "
                                       "batch_size, epochs, patience, boundary, ensemble_size.")
    elif "unknown" in message:
        assert "valid keys: checkpoint_every, " in str(err.value) and str(err.value).endswith(
            ", and the tables [data], [encoder], [propagator], [decoder] (lss_jax.LSSConfig).")


def test_the_resolved_options_are_written_nested(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    args = Namespace(command="train", out=str(out), lag=2, latent_dim=2, seed=3, config="c.toml", lss_config={})
    _write_resolved(args, {"encoder_epochs": 2, "decoder": "wgan", "propagator": {"epochs": 2}})
    resolved = tomllib.loads((out / "lss-jax-train.toml").read_text())
    assert resolved == {"out": str(out), "lag": 2, "latent_dim": 2, "seed": 3, "encoder": {"epochs": 2},
                        "decoder": {"kind": "wgan"}, "propagator": {"epochs": 2}}


def test_the_configuration_module_imports_no_network_code():
    """lss_jax.config is imported by the networks (DecoderConfig, EncoderConfig, ...), never the other way round."""
    tree = ast.parse((Path(lss_jax.__file__).parent / "config.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert {m for m in imported if m.startswith("lss_jax")} == {"lss_jax.data.featurize", "lss_jax.data.checks"}


def test_min_latent_dim_is_checked_and_old_models_keep_their_choice():
    with pytest.raises(ValueError, match=r"encoder.min_latent_dim \(5\) is above encoder.max_latent_dim \(4\)"):
        EncoderConfig(min_latent_dim=5)
    with pytest.raises(ValueError, match="min_latent_dim must be a positive integer"):
        EncoderConfig(min_latent_dim=0)
    # a model saved before the field existed chose its dimension from 1 on: it loads with 1, and the field does not
    # enter the flat dict (the model fingerprint) at that value
    saved = LSSConfig(lag=2).to_dict()
    del saved["encoder"]["min_latent_dim"]
    assert LSSConfig.from_saved(saved).encoder.min_latent_dim == 1
    assert not [k for k in LSSConfig(lag=2)._flat_dict() if "min_latent_dim" in k]
    flat = LSSConfig(lag=2, encoder=EncoderConfig(min_latent_dim=2))._flat_dict()
    assert [v for k, v in flat.items() if "min_latent_dim" in k] == [2]


@pytest.mark.parametrize("fields, message", [
    ({"kind": "flow", "prior": "gaussian"}, "decoder prior applies to the chain decoder"),
    ({"kind": "chain", "prior": "harmonic"}, "is 'chain' or 'gaussian', got prior = 'harmonic'"),
    ({"kind": "flow", "self_condition": True}, "self_condition applies to the chain decoder only"),
    ({"kind": "chain", "self_condition": "yes"}, "self_condition must be true or false"),
    ({"kind": "chain", "self_condition": True, "distill_steps": 2}, "distilled into one step"),
    ({"kind": "chain", "guidance": 2.0}, "needs the unconditional velocity of a field trained with condition dropout"),
    ({"kind": "flow", "condition_dropout": 0.1}, "apply to the chain decoder"),
    ({"kind": "chain", "condition_dropout": 1.0}, r"condition_dropout must be a number in \[0, 1\)"),
    ({"kind": "chain", "condition_dropout": 0.1, "guidance": -1.0}, r"guidance must be a number in \[0, 10\)"),
])
def test_chain_decoder_settings_are_checked(fields, message):
    with pytest.raises(ValueError, match=message):
        DecoderConfig(**fields)
    assert DecoderConfig(kind="chain").resolved().prior == "gaussian"  # the chain's default: a fitted Gaussian
    assert DecoderConfig().resolved().prior is None and DecoderConfig().resolved().self_condition is None
