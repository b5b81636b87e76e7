"""Every command's ``--help`` against the options the command really has and reads.

The parser (``lss_jax/cli/parser.py``) and the command functions (``lss_jax/cli/commands.py``) are written
apart, so they drift: an option that no command reads is a setting that silently does nothing, a help text that
names a module or a decoder that is not there sends the user the wrong way. Each check below reads the source
(``ast``) or the real parser, never a list written for the test.
"""

import ast
import importlib
import inspect
import re

import pytest

from lss_jax import decoder
from lss_jax.cli import commands, main
from lss_jax.cli.parser import build_parser

PARSER = build_parser()
# Read by main() for every command (lss_jax/cli/__init__.py), not by the command functions themselves.
READ_BY_MAIN = {"config", "debug", "version", "command", "model", "out"}
# Set by main() on the namespace before the command runs.
SET_BY_MAIN = {"lss_config", "start_time"}


def _args_attributes(function, seen=None) -> set[str]:
    """Names ``X`` of every ``args.X`` read in ``function`` and in the commands-module helpers it passes ``args`` to."""
    seen = set() if seen is None else seen
    if function.__name__ in seen:
        return set()
    seen.add(function.__name__)
    tree = ast.parse(inspect.getsource(function))
    names = {n.attr for n in ast.walk(tree)
             if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "args"}
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        passes_args = any(isinstance(a, ast.Name) and a.id == "args" for a in call.args)
        helper = getattr(commands, call.func.id, None) if isinstance(call.func, ast.Name) else None
        if passes_args and inspect.isfunction(helper):
            names |= _args_attributes(helper, seen)
    return names


def _dests(subparser) -> set[str]:
    return {a.dest for a in subparser._actions if a.dest != "help"}


@pytest.mark.parametrize("name", sorted(commands.COMMANDS))
def test_command_reads_exactly_its_options(name):
    """Every option of the command is read (by it or by main), and it reads no option it does not have."""
    dests = _dests(PARSER.subcommands[name])
    read = _args_attributes(commands.COMMANDS[name])
    assert read - dests - SET_BY_MAIN - {"debug"} == set(), f"{name} reads options its parser does not define"
    assert dests - read - READ_BY_MAIN == set(), f"{name} defines options that nothing reads"


def test_every_parser_command_has_a_handler():
    assert set(PARSER.subcommands) == set(commands.COMMANDS)


@pytest.mark.parametrize("name", sorted(commands.COMMANDS))
def test_help_lists_every_option(name, capsys):
    """``lss-jax NAME --help`` (the real entry point) prints every option string of the command."""
    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for action in PARSER.subcommands[name]._actions:
        for option in action.option_strings:
            assert re.search(rf"(^|[\s,\[]){re.escape(option)}\b", text), f"{option} missing from {name} --help"


def _help_texts():
    for name, sub in PARSER.subcommands.items():
        yield name, sub.description or ""
        for action in sub._actions:
            yield f"{name} {'/'.join(action.option_strings)}", action.help or ""


@pytest.mark.parametrize("where,text", [(w, t) for w, t in _help_texts() if "lss_jax." in t])  # texts with a reference
def test_help_references_exist(where, text):
    """Every ``lss_jax.a.b`` a help text points to is a module or an attribute that exists."""
    for ref in re.findall(r"lss_jax(?:\.[A-Za-z_]\w*)+", text):
        parts = ref.split(".")
        for cut in range(len(parts), 0, -1):  # the longest importable prefix, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ModuleNotFoundError:
                continue
            for attr in parts[cut:]:
                assert hasattr(obj, attr), f"{where}: help names {ref}, which does not exist"
                obj = getattr(obj, attr)
            break


def test_train_help_names_every_decoder_kind():
    """The train description names every decoder kind (it once said it trains 'the cWGAN-GP decoder')."""
    text = PARSER.subcommands["train"].description
    for kind in decoder.DECODERS:
        assert kind in text, f"train's description does not mention decoder {kind!r}"


@pytest.mark.parametrize("value,error,expected", [
    (9.361, 0.0221, "9.36 ± 0.022"),
    (float("nan"), float("nan"), "not estimated (too little data)"),  # printed 'nan ± nan' before
    (None, None, "not estimated (too little data)"),  # JSON null, as metrics.json stores a NaN estimate
    (7.57, float("nan"), "7.57 (no error estimate)"),
])
def test_summary_says_in_words_when_an_estimate_is_missing(value, error, expected):
    assert commands._value_with_error(value, error) == expected
