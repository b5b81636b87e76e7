"""``--config FILE`` for every command: TOML keys become option defaults (checked against the options'
types, unknown keys named with the closest valid one), and the resolved options are written next to the
outputs (``lss-jax-COMMAND.toml``) so that a run can be repeated with ``--config`` alone."""

from __future__ import annotations

import sys

from lss_jax.cli.parser import _positive_int
from lss_jax.config import _toml_value


def _load_config(path) -> dict:
    import tomllib
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        raise ValueError(f"config {p} is a directory; give a TOML file (e.g. one written as lss-jax-COMMAND.toml).")
    if not p.is_file():
        raise FileNotFoundError(f"config file not found: {p}; check the --config path.")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"config file {p} is not valid TOML ({err}); write one `key = value` per line, "
                         'strings in quotes (e.g. top = "system.pdb").') from err
    except UnicodeDecodeError as err:
        raise ValueError(f"config file {p} is not UTF-8 text; give a TOML file.") from err


def _write_resolved(args, extra: dict | None = None) -> None:
    """Write the resolved options (and config extras) as TOML next to the command's outputs."""
    from pathlib import Path

    from lss_jax._io import atomic_path

    out = Path(args.out)
    where = out if out.is_dir() else out.parent
    name = f"lss-jax-{args.command}.toml" if out.is_dir() else f"{out.with_suffix('').name}.lss-jax-{args.command}.toml"
    skip = {"command", "config", "debug", "version", "lss_config", "start_time"}
    values = {k: v for k, v in vars(args).items() if k not in skip and v is not None}
    values.update(extra or {})
    text = f"# resolved options of `lss-jax {args.command}`; rerun with --config this-file\n"
    text += "".join(f"{k} = {_toml_value(v)}\n" for k, v in values.items())
    with atomic_path(where / name) as tmp:
        tmp.write_text(text)


def _apply_config(parser, argv):
    """Pre-read --config of the subcommand: its keys become option defaults (and satisfy required options)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--config" not in argv and not any(a.startswith("--config=") for a in argv):
        return argv, {}
    command = next((a for a in argv if a in parser.subcommands), None)
    config = None
    for i, a in enumerate(argv):
        if a == "--config" and i + 1 < len(argv):
            config = argv[i + 1]
        elif a.startswith("--config="):
            config = a.split("=", 1)[1]
    if command is None or config is None:
        return argv, {}
    import dataclasses
    import difflib

    data = _load_config(config)
    sub = parser.subcommands[command]
    actions = {a.dest: a for a in sub._actions if a.dest not in ("config", "help")}
    kinds = {}  # key -> expected TOML type: "bool", "int", "positive int", "float", "str" or "list[...]" of one
    for dest, action in actions.items():
        base = {_positive_int: "positive int", int: "int", float: "float"}.get(action.type, "str")
        kinds[dest] = "bool" if action.nargs == 0 else f"list[{base}]" if action.nargs in ("+", "*") else base
    fields = {}
    if command == "train":  # other keys are LSSConfig fields
        from lss_jax.lss import LSSConfig

        types = {"int": "int", "float": "float", "bool": "bool", "str": "str", "tuple[str, ...]": "list[str]",
                 "tuple[int, ...]": "list[int]"}
        fields = {f.name: types.get(str(f.type).replace(" | None", "")) for f in dataclasses.fields(LSSConfig)}
    valid = sorted(set(kinds) | set(fields))
    unknown = [k for k in data if k.replace("-", "_") not in valid]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k.replace("-", "_"), valid, n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError(f"unknown key(s) {', '.join(hints)} in config file {config}; valid keys: {', '.join(valid)}.")

    def matches(value, kind):
        if kind is None:
            return True
        if kind.startswith("list["):
            return isinstance(value, list) and all(matches(v, kind[5:-1]) for v in value)
        if isinstance(value, bool) or kind == "bool":
            return kind == "bool" and isinstance(value, bool)
        if kind in ("int", "positive int"):
            return isinstance(value, int) and (kind == "int" or value >= 1)
        return isinstance(value, (int, float)) if kind == "float" else isinstance(value, str)

    described = {"bool": "true or false", "int": "an integer", "positive int": "a positive integer", "float": "a number",
                 "str": "a quoted string"}
    toml_types = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array",
                  dict: "a table"}
    defaults, extras = {}, {}
    for key, value in data.items():
        dest = key.replace("-", "_")
        kind = kinds.get(dest, fields.get(dest))
        if kind and kind.startswith("list[") and dest in kinds and not isinstance(value, list):
            value = [value]  # one file for an option that takes several
        if not matches(value, kind):
            want = (f"an array of {described[kind[5:-1]].split(' ', 1)[1]}s" if kind.startswith("list[")
                    else described[kind])
            got = toml_types.get(type(value), type(value).__name__)
            raise ValueError(f"config file {config}: {key} must be {want}, got {value!r} ({got}); correct it in the file.")
        if dest in kinds:
            defaults[dest] = value
            actions[dest].required = False
        else:
            extras[dest] = value
    sub.set_defaults(**defaults)
    return argv, extras
