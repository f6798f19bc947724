"""``python -m advparity``: parse, load, call a function, print.

Exit codes: 0 ok; 1 a library disagrees or a regression check fails; 2 bad input or usage (including a
baseline that cannot be checked on this machine); 3 advparity itself failed — an unexpected error, a
bug or a broken environment, with the traceback — so CI can tell a broken tool from a failed check;
130 interrupted (Ctrl-C): finished cells are kept and a rerun of the same command resumes.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence

# Foolbox imports GitPython, which raises at import time on machines without a git executable.
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

from advparity.harness import commands  # noqa: E402
from advparity.harness.arguments import DEFAULT_BASELINE, DEFAULT_BASELINE_PRESET, build_parser  # noqa: E402
from advparity.harness.exits import (  # noqa: E402
    EXIT_BAD_INPUT,
    EXIT_DISAGREE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
)

# Re-exported: the exit codes and the default baseline are the command line's public contract.
__all__ = [
    "DEFAULT_BASELINE",
    "DEFAULT_BASELINE_PRESET",
    "EXIT_BAD_INPUT",
    "EXIT_DISAGREE",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "build_parser",
    "main",
]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    # ART logs a success rate and its layer inference at INFO for every attack call: noise between
    # our progress bars, and its "success rate" is not the harness's own judgement.
    logging.getLogger("art").setLevel(logging.WARNING)
    # The original AutoAttack logs "setting parameters for standard version" whenever one is built.
    logging.getLogger("auto-attack").setLevel(logging.WARNING)
    try:
        return _dispatch(args)
    # Every bad-input error in advparity is a ValueError subclass.
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as err:
        # A path the user named that cannot be read or written (permissions, a full disk, a file where a
        # folder must be): bad input or environment, said in one line with the path, not a traceback.
        print(f"error: {_os_error_text(err)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted; finished work is kept and will be reused", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001 - anything else is the tool's failure, not the user's
        traceback.print_exc(file=sys.stderr)
        print(
            f"internal error: {type(err).__name__}: {err}\nadvparity itself failed (exit code {EXIT_INTERNAL}), "
            "not a check: please report it with the traceback above",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _os_error_text(err: OSError) -> str:
    """``'PATH': reason`` for an error the system raised; our own OSErrors carry a whole sentence."""
    if err.filename is None or not err.strerror:
        return str(err)
    paths = " -> ".join(repr(str(p)) for p in (err.filename, err.filename2) if p is not None)
    return f"cannot use {paths}: {err.strerror}"


def _check_outputs(args: argparse.Namespace) -> None:
    """Every path a command will write is usable, before any work starts (outputs.py says why)."""
    from advparity.harness.outputs import check_output_file, check_output_folder

    if args.command in ("synth", "train", "run", "demo"):
        check_output_folder(args.out)
    if args.command == "report":
        check_output_folder(args.out or args.run_dir, "--out" if args.out else "RUN_DIR")
    if args.command == "gradcam":
        check_output_folder(args.run_dir, "RUN_DIR")
    if args.command == "regress" and args.update:
        check_output_file(args.baseline or DEFAULT_BASELINE, "--baseline")
    if args.command == "bench" and args.json:
        check_output_file(args.json, "--json")


def _dispatch(args: argparse.Namespace) -> int:
    _check_outputs(args)
    if args.command == "synth":
        return commands.synth(args)
    if args.command == "train":
        return commands.train(args)
    if args.command == "run":
        return commands.run(args)
    if args.command == "report":
        return commands.report(args.run_dir, args.out)
    if args.command == "gradcam":
        return commands.gradcam(args)
    if args.command == "bench":
        return commands.bench(args)
    if args.command == "regress":
        return commands.regress(args)
    if args.command == "demo":
        return commands.demo(args)
    if args.command == "autoattack-config":
        return commands.autoattack_config(args)
    if args.command == "optima":
        return commands.optima(args)
    raise AssertionError(f"unhandled command {args.command}")  # argparse rejects unknown commands
