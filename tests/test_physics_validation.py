"""The model against published cells: every row of physics/data/validation.csv is recomputed
here, compared with its published value, and must appear in docs/validation.md."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from dendritect.physics import validation as val

DOC = Path(__file__).resolve().parents[1] / "docs" / "validation.md"
ROWS = val.published_rows()


def test_every_row_has_a_case_and_every_case_a_row() -> None:
    assert {r["id"] for r in ROWS} == set(val.CASES)
    assert len({r["id"] for r in ROWS}) == len(ROWS)


def test_at_least_twelve_published_cells() -> None:
    published = [r for r in ROWS if r["kind"] != "closed_form"]
    assert len(published) >= 12
    for r in published:
        assert r["paper"] and r["material"] and r["verified"], r["id"]


@pytest.mark.parametrize("row", ROWS, ids=[r["id"] for r in ROWS])
def test_row_against_its_published_value(row: dict[str, str]) -> None:
    model = float(val.CASES[row["id"]]())
    # The model value stated in the table is what the model gives now ...
    stated = float(row["model"])
    if math.isinf(stated):
        assert math.isinf(model), row["id"]
    else:
        assert model == pytest.approx(stated, rel=2e-3), row["id"]
    # ... and the verdict against the paper is the one the table states.
    ratio, agrees = val.judge(row, model)
    assert agrees == (row["agrees"] == "yes"), row["id"]
    if row["kind"] == "value" and not math.isinf(model):
        assert float(row["ratio"]) == pytest.approx(ratio, rel=2e-3)
        assert (0.5 <= ratio <= 2.0) == agrees


def test_every_trend_and_closed_form_agrees() -> None:
    # Misses are allowed only for published numbers (values and bounds), stated in the table.
    for r in ROWS:
        if r["kind"] in ("closed_form", "trend"):
            assert r["agrees"] == "yes", r["id"]


def test_doc_lists_every_row() -> None:
    text = DOC.read_text(encoding="utf-8")
    for r in ROWS:
        assert f"`{r['id']}`" in text, r["id"]
        assert r["published"] in text, r["id"]


def test_sensitivity_is_stated_and_bounded() -> None:
    text = DOC.read_text(encoding="utf-8")
    rows = val.sensitivity_table()
    assert {r["parameter"] for r in rows} == set(val.SENSITIVITY_PARAMETERS)
    for r in rows:
        assert f"`{r['parameter']}`" in text
        for key in ("ccd_Li6PS5Cl_factor", "ccd_LLZO_factor", "t_short_factor"):
            # A 2x change of an unmeasurable parameter moves these by less than 10x.
            assert 0.1 < r[key] < 10.0, (r["parameter"], key)
        # In the wide-pore cell only the pore's aspect (the yield threshold of extrusion,
        # explained in docs/validation.md) moves the plating limit by more than 10x.
        if r["parameter"] != "flaw_aspect":
            assert 0.1 < r["plating_wide_pore_factor"] < 10.0, r["parameter"]
    aspect = next(r for r in rows if r["parameter"] == "flaw_aspect")
    assert aspect["plating_wide_pore_factor"] > 10.0
    assert "threshold" in text


def test_doc_states_the_counts_the_rows_give() -> None:
    # "Where the model stands" must quote the verdicts the table gives, not older ones.
    text = DOC.read_text(encoding="utf-8")
    rows = val.validation_rows()
    by_kind = {k: [r for r in rows if r["kind"] == k] for k in ("value", "upper", "lower", "trend")}
    bounds = by_kind["upper"] + by_kind["lower"]
    published = sum(len(v) for v in by_kind.values())
    m = re.search(r"\*\*Published cells: (\d+) rows\*\* "
                  r"\((\d+) values, (\d+) bounds, (\d+) trends\)", text)
    assert m, "published-cells line"
    assert [int(g) for g in m.groups()] == [published, len(by_kind["value"]), len(bounds),
                                            len(by_kind["trend"])]
    m = re.search(r"\*\*Values: (\d+) of (\d+) within 2×", text)
    assert m and [int(g) for g in m.groups()] == [
        sum(r["agrees"] for r in by_kind["value"]), len(by_kind["value"])]
    m = re.search(r"\*\*Bounds: (\d+) of (\d+)\.\*\*", text)
    assert m and [int(g) for g in m.groups()] == [sum(r["agrees"] for r in bounds), len(bounds)]
    assert f"All {len(by_kind['trend'])} trends agree" in text
    assert all(r["agrees"] for r in by_kind["trend"])
