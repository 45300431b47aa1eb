"""``dendritect`` entry point.

Every command lives in its own module beside this one and is registered here.
Bad input (:class:`~dendritect.errors.InputError`, or a usage error) is printed as
one ``error: ...`` line on stderr with exit status 2, never as a traceback. An interrupt
(Ctrl-C / SIGINT, or SIGTERM) ends with ``error: interrupted`` and exit status 130; what was
done stays in place for ``--resume``.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator

import typer

try:  # typer >= 0.26 ships its own copy of click
    from typer._click import exceptions as _clickexc
except ImportError:  # pragma: no cover - older typer on top of click
    from click import exceptions as _clickexc

from dendritect import __version__
from dendritect.errors import InputError, clear_stop, request_stop

#: Exit status of an interrupted command (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


def _flags_show_no_value() -> None:
    """Typer's rich help prints ``<bool>`` beside on/off flags as if they took a value: show
    nothing there, like click's plain help does."""
    try:
        from typer.core import TyperOption
    except ImportError:  # pragma: no cover - another typer layout: leave its help as it is
        return
    original = getattr(TyperOption, "display_type_rich", None)
    if original is None or getattr(original, "_dendritect", False):
        return

    def display_type_rich(self, ctx):  # type: ignore[no-untyped-def]
        if getattr(self, "is_flag", False) and self.metavar is None:
            return None
        return original(self, ctx)

    display_type_rich._dendritect = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_show_no_value()

app = typer.Typer(
    name="dendritect",
    help="See, measure and predict lithium-dendrite cracking in solid-state batteries.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dendritect {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """See, measure and predict lithium-dendrite cracking in solid-state batteries."""


def _register() -> None:
    # Each command module adds itself to ``app``; imported here so ``--help`` lists them all.
    import importlib

    commands = ("info", "model", "simulate", "analyze", "report", "demo", "fit", "watch", "export")
    for name in commands:
        try:
            importlib.import_module(f"dendritect.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"dendritect.cli.{name}":
                raise


_register()


def _terminate(signum: int, frame: object) -> None:
    request_stop()   # raised again between steps should this one be lost (check_stop)
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (``kill``, a batch system's time limit) ends a command like Ctrl-C does."""
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        clear_stop()


def _interrupted() -> int:
    print("error: interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (also used by tests)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        args = ["--help"]
    try:
        with _sigterm_interrupts():
            return _run(args)
    except KeyboardInterrupt:  # between typer's handler and ours
        return _interrupted()


def _run(args: list[str]) -> int:
    try:
        # Typer turns KeyboardInterrupt into exit status 130 and, with standalone_mode=False,
        # returns it (as it returns any typer.Exit's status).
        rv = app(args=args, prog_name="dendritect", standalone_mode=False)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except _clickexc.ClickException as exc:  # usage errors, bad parameters, unreadable files
        print(f"error: {exc.format_message()}", file=sys.stderr)
        return 2
    except typer.Exit as exc:
        rv = int(getattr(exc, "exit_code", 0) or 0)
    except KeyboardInterrupt:
        return _interrupted()
    except typer.Abort:
        print("error: aborted", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        return 0
    code = rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
    if code == EXIT_INTERRUPTED:
        return _interrupted()
    return code


if __name__ == "__main__":  # pragma: no cover
    # Run as `python -m dendritect.cli.main`: the commands register on the imported module's
    # app, not on this __main__ copy's.
    from dendritect.cli.main import main as _main

    sys.exit(_main())
