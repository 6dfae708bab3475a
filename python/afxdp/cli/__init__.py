"""The ``afxdp`` command: xdpsock's workloads, a capture tool and a generator, from Python.

The commands, their options, descriptions and examples are tables in :mod:`afxdp.cli.options`
(:data:`~afxdp.cli.options.SUBCOMMANDS`); ``afxdp --help`` lists them.

Every workload stops by itself (``--duration``, ``--count``), prints a line of rates each second
and a summary with the kernel's drop counters. Errors a user can cause are one line on stderr and
exit status 1 (2 for bad usage), never a traceback.

The package: :mod:`~afxdp.cli.options` (the parser and the checks on each value),
:mod:`~afxdp.cli.meter` (the rate line and the summary), :mod:`~afxdp.cli.workloads` (the
commands on a real interface) and :mod:`~afxdp.cli.labjobs` (``afxdp lab``).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import afxdp
from afxdp.cli import labjobs, workloads
from afxdp.cli.options import UsageError, build_parser, check

__all__ = ["COMMANDS", "UsageError", "build_parser", "main"]

#: Subcommand -> the function that runs it.
COMMANDS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "lab": labjobs.lab,
    "rxdrop": workloads.rxdrop,
    "txonly": workloads.txonly,
    "l2fwd": workloads.l2fwd,
    "rebroadcast": workloads.rebroadcast,
    "dump": workloads.dump,
    "gen": workloads.gen,
    "info": workloads.info,
}


def _one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror and e.args and isinstance(e.args[0], int):
        text = e.strerror
        if e.filename is not None and str(e.filename) not in text:
            text = f"{text}: {e.filename}"
    else:
        text = str(e) or type(e).__name__
    return text.splitlines()[0] if isinstance(e, afxdp.VerifierError) else " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check(args)
    except UsageError as e:
        where = "afxdp" if args.command == "lab" else f"afxdp {args.command}"
        print(f"{where}: {e}", file=sys.stderr)
        return 2
    shown = warnings.showwarning
    warnings.showwarning = _warning_line
    try:
        COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("afxdp: interrupted; everything afxdp created was removed", file=sys.stderr)
        return 130
    except UsageError as e:
        print(f"afxdp: {e}", file=sys.stderr)
        return 2
    except (OSError, ValueError, TypeError, RuntimeError) as e:
        print(f"afxdp: {_one_line(e)}", file=sys.stderr)
        return 1
    finally:
        warnings.showwarning = shown
    return 0


def _warning_line(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """A warning (e.g. the Port's "traffic on queue N has no socket") as one line on stderr,
    like the command's other messages, not Python's file, line and source."""
    print(f"afxdp: warning: {message}", file=file or sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
