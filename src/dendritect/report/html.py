"""``report.html``: one self-contained page (opens offline) from a results folder.

Images are embedded as ``data:`` URIs and plotly.js is inlined, so the page makes no network
request. Every string that comes from input data goes through Jinja2's autoescaping.
"""

from __future__ import annotations

import base64
import json
import math
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dendritect import results as R
from dendritect.atomic import atomic_write
from dendritect.errors import InputError
from dendritect.faults import checkpoint
from dendritect.report import figures as F
from dendritect.report.mesh import CrackMesh, crack_mesh
from dendritect.report.results import Results, load_results

__all__ = ["mesh_figure", "render_html", "write_report"]

_GIF_EMBED_MAX_BYTES = 12 * 2**20
_MAX_CRACK_ROWS = 500
#: Seconds between two reloads of a live report (``write_report(..., live=True)``).
LIVE_RELOAD_S = 20


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _fmt(v: Any) -> str:
    """Short display of a table value."""
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f):
            return ""
        if f == int(f) and abs(f) < 1e9:
            return str(int(f))
        return f"{f:.4g}"
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v, default=str)
    return str(v)


#: What an unset parameter (null in summary.json) meant for the run.
_DEFAULTS = {
    "voxel_size": "default (from the metadata)",
    "times_s": "default (from the metadata, else the step index)",
    "interval": "default (from the metadata, else the step index)",
    "dataset": "default (found automatically)",
    "echem": "none given",
}


def _flatten(d: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(d, dict):
        out: list[tuple[str, str]] = []
        for k, v in d.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    if d is None:
        return [(prefix, _DEFAULTS.get(prefix, "default"))]
    return [(prefix, _fmt(d))]


#: Human headers, with units, of the crack table (the CSV keeps its column names).
CRACK_HEADERS = {
    "crack_id": "crack", "kind": "kind", "first_step": "first step", "last_step": "last step",
    "time_s": "time (s)", "n_voxels": "voxels", "front_depth_um": "front depth (µm)",
    "li_front_depth_um": "lithium front depth (µm)",
    "dry_tip_lead_um": "dry tip ahead of lithium (µm)", "min_depth_um": "shallowest depth (µm)",
    "volume_um3": "volume (µm³)", "volume_vox_um3": "volume, voxel count (µm³)",
    "projected_area_um2": "projected area (µm²)", "surface_area_um2": "surface area (µm²)",
    "face_area_um2": "face area (µm²)", "aperture_mean_um": "mean aperture (µm)",
    "aperture_max_um": "max aperture (µm)", "normal_angle_deg": "angle to z (°)",
    "centroid_z_um": "centroid z (µm)", "centroid_y_um": "centroid y (µm)",
    "centroid_x_um": "centroid x (µm)", "edge_distance_um": "distance to edge (µm)",
    "origin_edge_distance_um": "origin distance to edge (µm)",
    "front_speed_um_s": "front speed (µm/s)", "anchored": "anchored at anode",
    "linked": "linked to an anchored crack",
    "spanning": "spanning", "t_index": "step",
}


def crack_header(name: str) -> str:
    """The report's header for a crack-table column: plain words and the unit."""
    if name in CRACK_HEADERS:
        return CRACK_HEADERS[name]
    for suffix, unit in (("_um3", "µm³"), ("_um2", "µm²"), ("_um_s", "µm/s"), ("_um", "µm"),
                         ("_deg", "°"), ("_s", "s")):
        if name.endswith(suffix):
            return f"{name[:-len(suffix)].replace('_', ' ')} ({unit})"
    return name.replace("_", " ")


def _versions(summary: dict[str, Any]) -> list[tuple[str, str]]:
    from dendritect import __version__

    rows = [("dendritect (analysis)", str(summary.get("dendritect_version", "unknown"))),
            ("dendritect (report)", __version__),
            ("python", platform.python_version())]
    for pkg in ("numpy", "scipy", "scikit-image", "pandas", "zarr", "dask", "matplotlib",
                "plotly", "pint"):
        try:
            rows.append((pkg, version(pkg)))
        except PackageNotFoundError:
            pass
    return rows


def _crack_table(cracks: pd.DataFrame) -> tuple[dict[str, Any], int, bool]:
    """The last measured row of each crack, with its first step."""
    if cracks.empty or "crack_id" not in cracks:
        return {"columns": [], "rows": []}, 0, False
    df = cracks.sort_values(["crack_id", "t_index"] if "t_index" in cracks else ["crack_id"])
    last = df.groupby("crack_id", sort=True).tail(1).copy()
    if "t_index" in df:
        first = df.groupby("crack_id")["t_index"].min()
        last.insert(1, "first_step", last["crack_id"].map(first))
        last = last.rename(columns={"t_index": "last_step"})
    if "front_depth_um" in last:
        last = last.sort_values("front_depth_um", ascending=False)
    order = ["crack_id", "kind", "first_step", "last_step", "time_s", "front_depth_um",
             "li_front_depth_um", "dry_tip_lead_um", "volume_um3", "volume_vox_um3",
             "projected_area_um2", "surface_area_um2", "aperture_mean_um", "aperture_max_um",
             "normal_angle_deg", "origin_edge_distance_um", "front_speed_um_s"]
    # Lithium columns that are empty throughout (lithium not told apart) are left out.
    empty = [c for c in ("li_front_depth_um", "dry_tip_lead_um")
             if c in last and not last[c].notna().any()]
    last = last.drop(columns=empty)
    cols = [c for c in order if c in last] + [c for c in last.columns if c not in order]
    n = len(last)
    cut = n > _MAX_CRACK_ROWS
    last = last[cols].head(_MAX_CRACK_ROWS)
    numeric = {c: pd.api.types.is_numeric_dtype(last[c]) for c in cols}
    return ({"columns": [{"name": crack_header(c), "csv": c, "cls": "" if numeric[c] else "s"}
                         for c in cols],
             "rows": [[_fmt(v) for v in rec] for rec in last.itertuples(index=False)]},
            n, cut)


def mesh_figure(mesh: CrackMesh, res: Results) -> Any:
    """A plotly figure of the crack mesh coloured by arrival step, with the electrolyte box."""
    import plotly.graph_objects as go

    n = max(res.n_steps, 1)
    z, y, x = mesh.verts_um[:, 0], mesh.verts_um[:, 1], mesh.verts_um[:, 2]
    unit, scale = F.time_unit(res.times_s)
    tick_steps = list(range(0, n, max(1, math.ceil(n / 8))))
    fig = go.Figure(go.Mesh3d(
        x=x, y=y, z=z, i=mesh.faces[:, 0], j=mesh.faces[:, 1], k=mesh.faces[:, 2],
        intensity=mesh.arrival, colorscale="Viridis", cmin=0, cmax=max(n - 1, 1),
        flatshading=False, lighting={"ambient": 0.55, "diffuse": 0.7, "specular": 0.15},
        colorbar={"title": {"text": "step of arrival"}, "tickvals": tick_steps,
                  "ticktext": [f"{i} ({res.times_s[i] / scale:.3g} {unit})" for i in tick_steps]},
        hovertemplate="x %{x:.1f} µm<br>y %{y:.1f} µm<br>z %{z:.1f} µm"
                      "<br>step %{intensity:.0f}<extra></extra>",
        name="cracks"))
    shape = res.shape_zyx
    iface = res.interfaces_um
    if shape is not None and iface is not None:
        _dz, dy, dx = res.voxel_size_um
        X, Y = shape[2] * dx, shape[1] * dy
        xs, ys, zs = [], [], []
        for zz in iface:
            xs += [0, X, X, 0, 0, None]
            ys += [0, 0, Y, Y, 0, None]
            zs += [zz] * 5 + [None]
        for cx, cy in ((0, 0), (X, 0), (X, Y), (0, Y)):
            xs += [cx, cx, None]
            ys += [cy, cy, None]
            zs += [iface[0], iface[1], None]
        fig.add_trace(go.Scatter3d(x=xs, y=ys, z=zs, mode="lines", hoverinfo="skip",
                                   line={"color": "#555", "width": 3}, name="electrolyte",
                                   showlegend=False))
    # z is the stacking axis; show the anode side on top.
    top_is_low_z = res.summary.get("anode", "top") != "bottom"
    fig.update_layout(
        margin={"l": 0, "r": 0, "t": 10, "b": 0}, height=630,
        scene={"aspectmode": "data", "camera": {"eye": {"x": 1.5, "y": 1.5, "z": 0.9}},
               "xaxis": {"title": {"text": "x (µm)"}}, "yaxis": {"title": {"text": "y (µm)"}},
               "zaxis": {"title": {"text": "z (µm)"},
                         "autorange": "reversed" if top_is_low_z else True}})
    return fig


def _cards(res: Results) -> list[dict[str, Any]]:
    s = res.summary
    unit, scale = F.time_unit(res.times_s)
    dz, dy, dx = res.voxel_size_um
    cards = [{"key": "steps", "value": str(res.n_steps)},
             {"key": "voxel size (z, y, x)", "value": f"{dz:.3g}, {dy:.3g}, {dx:.3g} µm"},
             {"key": "anode", "value": str(s.get("anode", "?"))}]
    if res.thickness_um is not None:
        cards.append({"key": "electrolyte thickness", "value": f"{res.thickness_um:.4g} µm"})
    m = res.metrics
    if len(m):
        cards.append({"key": "deepest crack front",
                      "value": f"{np.nanmax(m['front_depth_um'].to_numpy(float)):.4g} µm"})
        cards.append({"key": "crack volume (last step)",
                      "value": f"{float(m['crack_volume_um3'].iloc[-1]):.4g} µm³"})
    iv = res.span_interval()
    t = res.times_s
    if iv is not None and iv[0] is not None:
        a, b = iv
        cards.append({"key": "span happened between", "alert": True,
                      "value": f"step {a} ({t[a] / scale:.4g} {unit}) and step {b} "
                               f"({t[b] / scale:.4g} {unit})"})
    elif iv is not None:
        cards.append({"key": "span", "alert": True,
                      "value": f"already at the first scan ({t[0] / scale:.4g} {unit})"})
    else:
        cards.append({"key": "span seen", "value": "no"})
    sc = s.get("short_circuit") or {}
    if sc.get("echem_time_s") is not None:
        cards.append({"key": "short in cycler data", "alert": True,
                      "value": f"{float(sc['echem_time_s']) / scale:.4g} {unit}"})
    if sc.get("forecast_time_s") is not None:
        v = f"{float(sc['forecast_time_s']) / scale:.4g}"
        sig = sc.get("forecast_sigma_s")
        if sig is not None and np.isfinite(float(sig)):
            v += f" ± {float(sig) / scale:.2g}"
        cards.append({"key": "forecast span", "value": f"{v} {unit}"})
    return [{"alert": False, **c} for c in cards]


def _notes(res: Results) -> dict[str, str | None]:
    """Plain sentences for what the page shows and what could not be measured, and why."""
    s = res.summary
    unit, scale = F.time_unit(res.times_s)
    t = res.times_s
    out: dict[str, str | None] = {}
    resolved, reason = res.lithium()
    if not resolved:
        out["lithium"] = ("Lithium front not measured: "
                          f"{reason or 'lithium inside cracks could not be told apart'}. "
                          "Only the crack front is shown.")
    elif reason:
        steps = (s.get("lithium") or {}).get("steps_unresolved") or []
        where = (f" at step{'s' if len(steps) > 1 else ''} {', '.join(str(i) for i in steps)}"
                 if steps else " at some steps")
        out["lithium"] = f"Lithium front not measured{where}: {reason}."
    elif "li_front_depth_um" in res.metrics and not res.metrics["li_front_depth_um"].notna().any():
        out["lithium"] = "No lithium was found inside the cracks at any step."
    else:
        out["lithium"] = None
    sc = s.get("short_circuit") or {}
    iv = res.span_interval()
    text = None
    if iv is not None and iv[0] is not None:
        a, b = iv
        text = (f"The crack spanned the electrolyte at some time between the scan of step {a} "
                f"({t[a] / scale:.4g} {unit}), where it did not, and that of step {b} "
                f"({t[b] / scale:.4g} {unit}), where it did (shaded); the scans cannot say when "
                "in between.")
        short = sc.get("echem_time_s")
        if short is not None:
            ts = float(short) / scale
            where = ("inside that interval" if t[a] <= float(short) <= t[b]
                     else "before that interval" if float(short) < t[a] else "after it")
            text += f" The short in the cycler data, at {ts:.4g} {unit}, lies {where}."
    elif iv is not None:
        text = "The crack already spanned the electrolyte at the first scan."
    out["span"] = text
    if sc.get("forecast_time_s") is None:
        why = str(sc.get("forecast_method") or "")
        why = why.split(":", 1)[1].strip() if why.startswith("none:") else why
        if iv is not None and iv[1] < 2:
            why = "fewer than two scans before the span"
        out["forecast"] = f"No span forecast: {why or 'not enough growth to extrapolate'}."
    else:
        out["forecast"] = None
    if res.echem is not None:
        src = (f"copied into the results as {R.ECHEM_CSV}" if res.echem_source == R.ECHEM_CSV
               else f"read from {res.echem_source}")
        out["voltage"] = f"Grey: cell voltage from the cycler, the full record ({src}), right axis."
    elif "voltage_V" in res.metrics and res.metrics["voltage_V"].notna().any():
        out["voltage"] = ("Grey diamonds: cell voltage at the scan times only (the full cycler "
                          "record was not found); what happened between two scans is not shown.")
    else:
        out["voltage"] = None
    return out


def render_html(res: Results, *, figures_dir: Path | None = None, movie_gif: bytes | None = None,
                movie_note: str | None = None, max_triangles: int = 40_000,
                live: bool = False) -> str:
    """Render the report page for loaded results; saves the figures into ``figures_dir``.
    ``live``: the page reloads itself every :data:`LIVE_RELOAD_S` seconds (``watch``)."""
    import jinja2

    figures_dir = figures_dir or (res.root / R.FIGURES_DIR)
    figs: dict[str, str | None] = {}
    s = res.summary

    def put(name: str, fig: Any) -> None:
        stem = f"{R.REPORT_FIGURE_PREFIX}{name}"
        figs[name] = None if fig is None else _data_uri(F.save_figure(fig, figures_dir, stem),
                                                        "image/png")

    toa = res.time_of_arrival
    put("arrival", None if toa is None else F.arrival_figure(
        toa, res.voxel_size_um, res.times_s, anode=s.get("anode"), interfaces_um=res.interfaces_um))
    put("front", F.front_figure(res.metrics, s, res.echem))
    put("growth", F.growth_figure(res.metrics))
    span = s.get("span_index")
    steps = F.pick_steps(res.n_steps, None if span is None else int(span))
    put("slices", F.slices_figure(res, steps))
    from dendritect.report.fit_panel import fit_figure, fit_rows, load_fit

    fit_doc = load_fit(res.root)
    fit = None
    if fit_doc is not None:
        put("fit", fit_figure(fit_doc))
        fit = fit_rows(fit_doc)

    plot3d = None
    mesh = None if toa is None else crack_mesh(toa, res.voxel_size_um,
                                               max_triangles=max_triangles)
    if mesh is not None:
        import markupsafe

        div = mesh_figure(mesh, res).to_html(
            full_html=False, include_plotlyjs=True, include_mathjax=False,
            div_id="cracks-3d",  # a fixed id keeps the report byte-identical between runs
            config={"displaylogo": False, "responsive": True,
                    "toImageButtonOptions": {"format": "png", "filename": "cracks_3d"}})
        plot3d = markupsafe.Markup(div)  # generated by plotly from numbers only

    table, n_rows, cut = _crack_table(res.cracks)
    params = _flatten(s.get("parameters", {}))
    for key in ("input", "voxel_size_um", "anode", "electrolyte_interfaces_um", "span_index",
                "registration_shifts_vox"):
        if key in s:
            params.append((key, _fmt(s[key])))
    env = jinja2.Environment(loader=jinja2.PackageLoader("dendritect.report", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    from dendritect import __version__

    # The last two path parts: "run3/scans" says more than "scans".
    title = "/".join(Path(str(s.get("input", ""))).parts[-2:]).lstrip("/") or res.root.name
    return env.get_template("report.html.j2").render(
        title=title, summary={"input": str(s.get("input", ""))}, results_dir=str(res.root),
        report_version=__version__, cards=_cards(res), figures=figs,
        notes=_notes(res), lithium_resolved=res.lithium()[0],
        slice_steps=steps, movie_gif=None if movie_gif is None else _data_uri(movie_gif,
                                                                               "image/gif"),
        movie_note=movie_note, plot3d=plot3d,
        mesh_factor=0 if mesh is None else mesh.factor,
        mesh_triangles=0 if mesh is None else mesh.n_triangles,
        crack_table=table, n_crack_rows=n_rows, crack_rows_cut=cut, parameters=params,
        versions=_versions(s), live_reload_s=LIVE_RELOAD_S if live else None, fit=fit)


def write_report(results_dir: str | Path, *, movie: bool = True,
                 max_triangles: int = 40_000, live: bool = False) -> Path:
    """(Re)write ``report.html``, ``figures/`` and the movie of a results folder.

    Parameters
    ----------
    results_dir : str or Path
        Folder written by ``dendritect analyze`` (CONTRACT "Results layout").
    movie : bool
        Also write ``movie.gif`` and ``movie.mp4`` (the GIF is embedded in the page).
    max_triangles : int
        Budget of the 3D view's mesh.
    live : bool
        The folder is still growing (``dendritect watch``): the page reloads itself in an open
        browser every :data:`LIVE_RELOAD_S` seconds. Off, the page is the same as without it.

    Returns
    -------
    Path
        The report's path.

    Raises
    ------
    InputError
        When ``results_dir`` is not a readable results folder.
    """
    from dendritect.lock import results_lock
    from dendritect.results import note_report

    with results_lock(results_dir, "report", create=False):
        path = _write_report(results_dir, movie=movie, max_triangles=max_triangles, live=live)
        note_report(results_dir)
    return path


def _write_report(results_dir: str | Path, *, movie: bool, max_triangles: int,
                  live: bool = False) -> Path:
    res = load_results(results_dir)
    gif = None
    note = None
    if movie:
        from dendritect.report.movie import write_movie

        try:
            data = write_movie(res)["gif"].read_bytes()
        except InputError as exc:  # nothing to animate: the rest of the report still stands
            note = f"No movie: {exc}"
        else:
            if len(data) <= _GIF_EMBED_MAX_BYTES:
                gif = data
            else:
                note = (f"The movie is too large to embed; see {R.MOVIE_MP4} and {R.MOVIE_GIF} "
                        "beside this report.")
    else:
        note = "Movie not written (run `dendritect report` without --no-movie)."
    page = render_html(res, movie_gif=gif, movie_note=note, max_triangles=max_triangles,
                       live=live)
    checkpoint("report:page")
    return atomic_write(res.root / R.REPORT_HTML, lambda p: p.write_text(page, encoding="utf-8"))
