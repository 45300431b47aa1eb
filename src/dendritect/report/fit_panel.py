"""The report's "model vs measurement" panel, when ``DIR/fit.json`` exists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from dendritect import results as R

__all__ = ["fit_figure", "load_fit"]


def load_fit(root: str | Path) -> dict[str, Any] | None:
    """``fit.json`` of a results folder, or None when there is none (or it is unreadable)."""
    path = Path(root) / R.FIT_JSON
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and "parameters" in doc else None


def fit_figure(doc: dict[str, Any]) -> Figure | None:
    """Measured front depths and the fitted model's front against plating time."""
    s = doc.get("series") or {}
    if not s.get("plating_time_s") or not s.get("measured_plating_time_s"):
        return None
    fig = Figure(figsize=(7.0, 3.6), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    t = np.asarray(s["plating_time_s"], float) / 60.0
    ax.plot(t, s["model_front_um"], "-", color="C0", label=f"model ({doc.get('model', '')})")
    tm = np.asarray(s["measured_plating_time_s"], float) / 60.0
    front = np.array([np.nan if v is None else v for v in s["measured_front_um"]], float)
    ax.plot(tm, front, "o", color="C3", label="measured crack front")
    li = np.array([np.nan if v is None else v for v in s.get("measured_li_front_um", [])],
                  float)
    if li.size == tm.size and np.isfinite(li).any():
        ax.plot(tm, li, "s", mfc="none", color="C2", label="measured lithium front")
    thick = doc.get("thickness_um")
    if thick:
        ax.axhline(float(thick), color="0.5", lw=0.8, ls="--", label="electrolyte thickness")
    ax.set_xlabel("plating time (min, charge / plating current)")
    ax.set_ylabel("depth from the anode (µm)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def fit_rows(doc: dict[str, Any]) -> dict[str, Any]:
    """Plain rows for the template: parameters, forecasts and the what-if table."""
    def num(x: Any, unit: str = "") -> str:
        return "—" if x is None else f"{float(x):.4g}{(' ' + unit) if unit else ''}"

    params = [(k, num(v.get("value")), num(v.get("sigma")), v.get("unit", ""))
              for k, v in doc["parameters"].items()]
    forecasts = [("span", num(doc.get("forecast_span_time_s"), "s"),
                  num(doc.get("forecast_span_time_sigma_s"), "s")),
                 ("short", num(doc.get("forecast_short_time_s"), "s"),
                  num(doc.get("forecast_short_time_sigma_s"), "s"))]
    what_if = [(w.get("change", ""), "no short within the horizon"
                if w.get("short_time_s") is None else num(w["short_time_s"], "s"))
               for w in doc.get("what_if", [])]
    return {"model": doc.get("model", ""), "parameters": params, "forecasts": forecasts,
            "what_if": what_if, "rms": num(doc.get("residual_rms_um"), "µm"),
            "empirical": num(doc.get("empirical_forecast_span_time_s"), "s")}
