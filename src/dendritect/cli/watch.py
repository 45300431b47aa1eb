"""``dendritect watch INPUT --out DIR``: analyse a series while it is acquired, alarm before
the short.

The analysis options are ``analyze``'s own (taken from its signature, so the two commands
cannot drift apart); ``watch`` adds ``--poll``, ``--alarm-before``, ``--on-alarm`` and
``--idle-timeout``. The work is :func:`dendritect.watch.watch`.
"""

from __future__ import annotations

import inspect
from typing import Any

import typer

from dendritect.cli import analyze as _analyze_cli
from dendritect.cli.main import app

#: ``analyze``'s parameters that ``watch`` takes as they are (all of them).
_SHARED = list(inspect.signature(_analyze_cli.analyze, eval_str=True).parameters.values())
_SHARED_NAMES = [p.name for p in _SHARED]

_EXTRA = [
    inspect.Parameter("poll", inspect.Parameter.KEYWORD_ONLY, annotation=str,
                      default=typer.Option("5s", "--poll", help="Time between two looks at "
                                           "the input (5s); a scan counts once its files are "
                                           "unchanged across one poll and read whole.")),
    inspect.Parameter("alarm_before", inspect.Parameter.KEYWORD_ONLY, annotation=str | None,
                      default=typer.Option(None, "--alarm-before", help="Alarm when the "
                                           "forecast span time minus its sigma falls within "
                                           "this of the latest scan (15min); default: the last "
                                           "interval between scans.")),
    inspect.Parameter("on_alarm", inspect.Parameter.KEYWORD_ONLY, annotation=str | None,
                      default=typer.Option(None, "--on-alarm", help="Shell command run once "
                                           "when the alarm is raised; DENDRITECT_ALARM_REASON, "
                                           "DENDRITECT_ALARM_TIME_S, "
                                           "DENDRITECT_FORECAST_SPAN_TIME_S... are set (see "
                                           "docs/watch.md).")),
    inspect.Parameter("idle_timeout", inspect.Parameter.KEYWORD_ONLY, annotation=str | None,
                      default=typer.Option(None, "--idle-timeout", help="Stop when no new scan "
                                           "has become complete for this long (30min); "
                                           "default: run until Ctrl-C.")),
]


def _watch(**kw: Any) -> None:
    """Analyse a CT series while it is acquired, scan by scan; alarm before the short.

    After every scan DIR is a finished results folder of the scans so far, with
    DIR/status.json; when the watch ends, the results are those of `dendritect analyze` on
    the final series.
    """
    from dendritect.units import parse_duration_s
    from dendritect.watch import watch

    opts = _analyze_cli.analysis_options(
        voxel_size=kw["voxel_size"], anode=kw["anode"], echem=kw["echem"],
        times_s=kw["times_s"], interval=kw["interval"], dataset=kw["dataset"],
        force_units=kw["force_units"], param=kw["param"], min_overlap=kw["min_overlap"],
        span_tolerance=kw["span_tolerance"], memory_limit=kw["memory_limit"],
        workers=kw["workers"], scheduler=kw["scheduler"], device=kw["device"],
        ring_correction=kw["ring_correction"])
    poll_s = parse_duration_s(kw["poll"], name="--poll")
    alarm_s = (None if kw["alarm_before"] is None
               else parse_duration_s(kw["alarm_before"], name="--alarm-before"))
    idle_s = (None if kw["idle_timeout"] is None
              else parse_duration_s(kw["idle_timeout"], name="--idle-timeout"))
    quiet = bool(kw["quiet"])

    def echo(line: str) -> None:
        if not quiet or line.startswith(("ALARM", "stopped")):
            typer.echo(line)

    watch(kw["input"], kw["out"], poll_s=poll_s, alarm_before_s=alarm_s,
          on_alarm=kw["on_alarm"], idle_timeout_s=idle_s, resume=kw["resume"],
          overwrite=kw["overwrite"], echo=echo, **opts)


_INPUT = _SHARED[0].replace(
    kind=inspect.Parameter.POSITIONAL_OR_KEYWORD,
    default=typer.Argument(..., help="The growing series: a folder of 3D TIFFs (one per scan), a "
                           "folder of per-scan slice folders, a dataset folder, or an "
                           "HDF5/NeXus file whose 4D dataset grows along t."))
_params = [_INPUT, *[p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in _SHARED[1:]],
           *_EXTRA]
_watch.__signature__ = inspect.Signature(_params, return_annotation=None)  # type: ignore[attr-defined]
_watch.__annotations__ = {p.name: p.annotation for p in _params}
_watch.__annotations__["return"] = None
watch_command = app.command("watch")(_watch)

__all__ = ["watch_command"]
