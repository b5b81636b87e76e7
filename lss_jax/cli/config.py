"""``--config FILE`` for every command: TOML keys become option defaults (checked against the options'
types, unknown keys named with the closest valid one), and the resolved options are written next to the
outputs (``lss-jax-COMMAND.toml``) so that a run can be repeated with ``--config`` alone.

``train`` also reads the :class:`lss_jax.LSSConfig` tables ``[data]``, ``[encoder]``, ``[propagator]`` and
``[decoder]`` (their fields checked here, their values by the configuration), and the flat keys of earlier
lss_jax (``encoder_epochs = 2``), which :meth:`lss_jax.LSSConfig.from_dict` translates with a one-line warning
that names the new spelling; the resolved file is written in the nested form."""

from __future__ import annotations

import sys

from lss_jax.cli.parser import _lag, _positive_int
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

    from lss_jax.config import _flat_target
    from lss_jax.engine.io import atomic_path

    out = Path(args.out)
    where = out if out.is_dir() else out.parent
    name = f"lss-jax-{args.command}.toml" if out.is_dir() else f"{out.with_suffix('').name}.lss-jax-{args.command}.toml"
    skip = {"command", "config", "debug", "version", "lss_config", "start_time"}
    values = {k: v for k, v in vars(args).items() if k not in skip and v is not None}
    tables = {}
    for key, value in (extra or {}).items():  # LSSConfig tables; flat keys of earlier lss_jax go into theirs
        target = None if isinstance(value, dict) else _flat_target(key)
        if isinstance(value, dict):
            tables.setdefault(key, {}).update(value)
        elif target is not None:  # (a key given in both forms is refused before: LSSConfig.from_dict)
            tables.setdefault(target[0], {})[target[1]] = value
        else:
            values[key] = value
    text = f"# resolved options of `lss-jax {args.command}`; rerun with --config this-file\n"
    text += "".join(f"{k} = {_toml_value(v)}\n" for k, v in values.items())
    for section, table in tables.items():  # after every top-level key, as TOML wants
        text += f"\n[{section}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in table.items())
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
        base = {_positive_int: "positive int", _lag: "lag", int: "int", float: "float"}.get(action.type, "str")
        kinds[dest] = "bool" if action.nargs == 0 else f"list[{base}]" if action.nargs in ("+", "*") else base
    sections, flat = {}, {}  # train: the LSSConfig tables, and the flat keys of earlier lss_jax in the file
    if command == "train":
        from lss_jax.config import _SECTIONS, _flat_target

        types = {"int": "int", "float": "float", "bool": "bool", "str": "str", "tuple[str, ...]": "list[str]",
                 "tuple[int, ...]": "list[int]"}
        sections = {name: {f.name: types.get(str(f.type).replace(" | None", "")) for f in dataclasses.fields(cls)}
                    for name, cls in _SECTIONS.items()}
        for key, value in data.items():
            dest = key.replace("-", "_")
            target = None if dest in kinds or isinstance(value, dict) else _flat_target(dest)
            if target is not None:  # decoder = "wgan" is flat, a [decoder] table is not
                flat[key] = (dest, sections[target[0]][target[1]])
    valid = sorted(kinds)
    unknown = [k for k in data if k.replace("-", "_") not in kinds and k not in sections and k not in flat]
    if unknown:
        from lss_jax.config import _flat_name

        # a misspelled flat key of earlier lss_jax is suggested in its new spelling
        spelled = {_flat_name(s, f): f"{s}.{f}" for s, fields in sections.items() for f in fields}
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k.replace("-", "_"), valid + list(sections) + list(spelled), n=1)
            hints.append(f"{k!r}" + (f" (did you mean {spelled.get(close[0], close[0])!r}?)" if close else ""))
        tables = f", and the tables {', '.join(f'[{s}]' for s in sections)} (lss_jax.LSSConfig)" if sections else ""
        raise ValueError(f"unknown key(s) {', '.join(hints)} in config file {config}; valid keys: {', '.join(valid)}"
                         f"{tables}.")
    for name, table in data.items():
        if name not in sections or name in flat:
            continue
        if not isinstance(table, dict):
            raise ValueError(f"config file {config}: {name} must be a table ([{name}] with one `key = value` per line "
                             f"under it), got {table!r}; correct it in the file.")
        wrong = [k for k in table if k not in sections[name]]
        if wrong:
            hints = []
            for k in wrong:
                close = difflib.get_close_matches(k, list(sections[name]), n=1)
                hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ValueError(f"unknown key(s) {', '.join(hints)} in [{name}] of config file {config}; valid [{name}] "
                             f"keys: {', '.join(sections[name])}.")

    def matches(value, kind):
        if kind is None:
            return True
        if kind == "lag":  # --lag: a positive integer or "auto"
            return value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)
        if kind.startswith("list["):
            return isinstance(value, list) and all(matches(v, kind[5:-1]) for v in value)
        if isinstance(value, bool) or kind == "bool":
            return kind == "bool" and isinstance(value, bool)
        if kind in ("int", "positive int"):
            return isinstance(value, int) and (kind == "int" or value >= 1)
        return isinstance(value, (int, float)) if kind == "float" else isinstance(value, str)

    described = {"bool": "true or false", "int": "an integer", "positive int": "a positive integer", "float": "a number",
                 "str": "a quoted string", "lag": 'a positive integer or "auto"'}
    toml_types = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array",
                  dict: "a table"}

    def check(key, value, kind):
        if not matches(value, kind):
            want = (f"an array of {described[kind[5:-1]].split(' ', 1)[1]}s" if kind.startswith("list[")
                    else described[kind])
            got = toml_types.get(type(value), type(value).__name__)
            raise ValueError(f"config file {config}: {key} must be {want}, got {value!r} ({got}); correct it in the file.")

    defaults, extras = {}, {}
    for key, value in data.items():
        dest = key.replace("-", "_")
        if dest in kinds:
            kind = kinds[dest]
            if kind.startswith("list[") and not isinstance(value, list):
                value = [value]  # one file for an option that takes several
            check(key, value, kind)
            defaults[dest] = value
            actions[dest].required = False
        elif key in flat:  # read by LSSConfig.from_dict, which warns and names the new spelling
            dest, kind = flat[key]
            check(key, value, kind)
            extras[dest] = value
        else:  # an LSSConfig table
            for name, item in value.items():
                check(f"{key}.{name}", item, sections[key][name])
            extras[key] = dict(value)
    sub.set_defaults(**defaults)
    return argv, extras
