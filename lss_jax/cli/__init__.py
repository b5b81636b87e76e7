"""The ``lss-jax`` command line: :func:`main` (errors, exit codes, partial outputs), the parser
(:mod:`~lss_jax.cli.parser`), ``--config`` files (:mod:`~lss_jax.cli.config`) and the commands
(:mod:`~lss_jax.cli.commands`)."""

from __future__ import annotations

import contextlib
import sys
import time
import warnings

from lss_jax.cli import commands
from lss_jax.cli.config import _apply_config, _write_resolved
from lss_jax.cli.parser import build_parser

__all__ = ["main", "build_parser"]


def main(argv=None) -> int:
    """Run the command line; errors are one line on stderr (exit 1; 2 for usage errors), tracebacks only with --debug."""
    import re
    from pathlib import Path

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if a in parser.subcommands), None)
    prefix = f"lss-jax {command}" if command else "lss-jax"
    debug = "--debug" in (argv[: argv.index(command)] if command else argv)

    def one_line(err: BaseException) -> str:
        text = " ".join([*str(err).split(), *" ".join(getattr(err, "__notes__", [])).split()])
        if isinstance(err, (ValueError, OSError, FloatingPointError, RuntimeError)) or not text:
            hint = ""
            if type(err).__name__ == "ModelFormatError" and "Upgrade" not in text:
                hint = " Retrain with `lss-jax train` or copy the complete model directory again."
            return (text or type(err).__name__) + hint
        first = str(err).strip().splitlines()[0]
        return f"unexpected {type(err).__name__}: {first} (rerun with --debug for the traceback, and report it)"

    class UsageError(Exception):
        pass

    def usage_error(p):
        names = {"_positive_int": "a positive integer", "int": "an integer", "float": "a number"}

        def error(message):
            message = re.sub(r"invalid (\w+) value: (.*)", lambda m: f"expected {names.get(m[1], m[1])}, got {m[2]}", message)
            raise UsageError(f"{p.prog}: error: {message}; see `{p.prog} --help`.")

        return error

    for p in (parser, *parser.subcommands.values()):
        p.error = usage_error(p)  # argparse would print the usage block too: keep errors on one line
    try:
        argv, extras = _apply_config(parser, argv)
        args = parser.parse_args(argv)
    except UsageError as err:  # no traceback even with --debug: it would only show argparse
        print(err, file=sys.stderr)
        return 2
    except Exception as err:
        if debug:
            raise
        print(f"{prefix}: error: {one_line(err)}", file=sys.stderr)
        return 1
    args.lss_config = extras
    if args.version:
        from lss_jax import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    handlers = commands.COMMANDS
    # One writer per output: --out is locked before anything is written (lss_jax.engine.io.exclusive_output); a second
    # command writing the same path is refused at once and removes nothing. With `generate --distributed` each
    # process owns only its process-PPP/ share (generate_to_directory locks it).
    from lss_jax.engine import io as _io

    out = Path(args.out) if getattr(args, "out", None) and not getattr(args, "distributed", False) else None
    owned = (_io.exclusive_output(out, what="--out", how_to_fix="wait for it to finish, or give another --out")
             if out is not None and out.absolute().parent.is_dir() else contextlib.nullcontext())  # else: the command says so
    from lss_jax.config import FlatConfigWarning

    def note(message, category, filename, lineno, file=None, line=None):
        # one line, like the errors: locks, and a config file or model in the flat form of earlier lss_jax
        if issubclass(category, (_io.StaleLockWarning, _io.UnlockedOutputWarning, FlatConfigWarning)):
            kind = "note" if issubclass(category, _io.StaleLockWarning) else "warning"
            print(f"lss-jax {args.command}: {kind}: {message}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    try:
        with warnings.catch_warnings():  # restores showwarning and the filters afterwards
            shown = warnings.showwarning
            warnings.showwarning = note
            warnings.simplefilter("always", _io.StaleLockWarning)
            warnings.simplefilter("always", FlatConfigWarning)  # a DeprecationWarning: hidden by default
            with owned:
                return _run(args, extras, handlers, one_line)
    except Exception as err:  # the lock: held by another process, or its file could not be created
        if args.debug:
            raise
        print(f"lss-jax {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 1


def _run(args, extras, handlers, one_line) -> int:
    """Run the command; on failure remove the partial output it created (the caller holds the output's lock)."""
    import shutil
    from pathlib import Path

    from lss_jax.engine.io import OutputLockedError, ResourceLimitError

    # No partial output: on failure remove what train/report/lagscan created under --out (generate keeps its
    # chunks on purpose, so that a rerun continues; it checks its inputs before writing anything).
    out = Path(args.out) if args.command in ("train", "report", "lagscan") else None
    out_existed = out is not None and (out.exists() or out.is_symlink())
    before = set(out.iterdir()) if out_existed and out.is_dir() else set()

    def remove_partial_output():
        if out is None:
            return
        try:
            if not out_existed:
                targets = [out] if out.exists() or out.is_symlink() else []
            else:
                targets = sorted(set(out.iterdir()) - before) if out.is_dir() and args.command != "train" else []
            for t in targets:
                shutil.rmtree(t) if t.is_dir() and not t.is_symlink() else t.unlink()
        except OSError:
            pass

    args.start_time = time.perf_counter()
    try:
        if getattr(args, "model", None) and not Path(args.model).is_dir():
            raise FileNotFoundError(f"model directory not found: {args.model}; give the directory that "
                                    "`lss-jax train --out` wrote.")
        code = handlers[args.command](args)
        if code == 0:
            _write_resolved(args, extras)
        return code
    except KeyboardInterrupt:
        remove_partial_output()
        print(f"lss-jax {args.command}: interrupted", file=sys.stderr)
        return 130
    except OutputLockedError:
        raise  # another process owns an output: nothing here is ours to remove
    except Exception as err:
        remove_partial_output()
        if args.debug:
            raise
        print(f"lss-jax {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 2 if isinstance(err, ResourceLimitError) else 1


if __name__ == "__main__":
    sys.exit(main())
