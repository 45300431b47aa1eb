"""``dendritect`` entry point.

Every command lives in its own module beside this one and is registered here.
Bad input (:class:`~dendritect.errors.InputError`, or a usage error) is printed as
one ``error: ...`` line on stderr with exit status 2, never as a traceback.
"""

from __future__ import annotations

import sys

import typer

try:  # typer >= 0.26 ships its own copy of click
    from typer._click import exceptions as _clickexc
except ImportError:  # pragma: no cover - older typer on top of click
    from click import exceptions as _clickexc

from dendritect import __version__
from dendritect.errors import InputError

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

    for name in ("info", "model", "simulate", "analyze", "report", "demo"):
        try:
            importlib.import_module(f"dendritect.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"dendritect.cli.{name}":
                raise


_register()


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (also used by tests)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        args = ["--help"]
    try:
        app(args=args, prog_name="dendritect", standalone_mode=False)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except _clickexc.ClickException as exc:  # usage errors, bad parameters, unreadable files
        print(f"error: {exc.format_message()}", file=sys.stderr)
        return 2
    except typer.Exit as exc:
        return int(getattr(exc, "exit_code", 0) or 0)
    except (typer.Abort, KeyboardInterrupt):
        print("error: aborted", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        return 0
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
