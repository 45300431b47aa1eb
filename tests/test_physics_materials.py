"""The materials database and the Monte-Carlo and sweep layers."""

from __future__ import annotations

import numpy as np
import pytest

from dendritect.errors import InputError
from dendritect.physics.materials import (
    get_lithium,
    get_material,
    list_materials,
    materials_table,
)
from dendritect.physics.montecarlo import ccd_monte_carlo
from dendritect.physics.sweep import sweep, write_sweep


def test_database_has_required_materials_each_value_sourced() -> None:
    names = list_materials()
    for required in ("Li6PS5Cl", "LLZO", "Li3PS4", "LiPON"):
        assert required in names
    table = materials_table()
    for props in [*table["electrolytes"].values(), table["lithium"]]:
        for key, v in props.items():
            if isinstance(v, dict):
                assert v["value"] > 0, key
                assert len(v["source"]) > 10, key


def test_lookup_by_alias_and_published_values() -> None:
    assert get_material("llztO").name == "LLZO"
    assert get_material("LPS").name == "Li3PS4"
    # Wolfenstine et al. 2013; Ni et al. 2012.
    llzo = get_material("LLZO")
    assert llzo.k_ic_MPa_sqrt_m == 1.25
    assert llzo.youngs_modulus_GPa == pytest.approx(149.8)
    assert llzo.plane_strain_modulus_MPa == pytest.approx(149.8e3 / (1 - 0.257**2))
    li = get_lithium()
    assert li.molar_volume_cm3_mol == 13.0


def test_unknown_material_and_bad_override() -> None:
    with pytest.raises(InputError, match="unknown electrolyte"):
        get_material("kryptonite")
    with pytest.raises(InputError, match="k_ic"):
        get_material("LLZO", {"k_ic_MPa_sqrt_m": "tough"})


def test_overrides_do_not_mutate_the_database() -> None:
    get_material("LLZO", {"k_ic_MPa_sqrt_m": 3.0})
    assert get_material("LLZO").k_ic_MPa_sqrt_m == 1.25
    assert get_lithium({"li_creep_exponent": 6.56}).creep_exponent == 6.56
    assert get_lithium().creep_exponent == 5.0


def test_monte_carlo_reproducible_and_ordered() -> None:
    a = ccd_monte_carlo(n_cells=200, seed=3)
    b = ccd_monte_carlo(n_cells=200, seed=3)
    assert np.array_equal(a.ccd_mA_cm2, b.ccd_mA_cm2)
    q = a.quantiles()
    assert q["q05"] <= q["q50"] <= q["q95"]
    assert a.failure_probability(1e-6) == 0.0
    assert a.failure_probability(1e6) == 1.0
    assert a.failure_probability(q["q05"]) <= a.failure_probability(q["q95"])
    # More flaws per cell: a larger largest flaw and a lower CCD (weakest link).
    many = ccd_monte_carlo(n_cells=200, n_flaws=1000, seed=3)
    assert np.median(many.ccd_mA_cm2) < np.median(a.ccd_mA_cm2)


def test_monte_carlo_largest_flaw_follows_weibull_extremes() -> None:
    # P(max of n Weibull(k, λ) < x) = (1 - exp(-(x/λ)^k))^n; check its median.
    mc = ccd_monte_carlo(n_cells=2000, n_flaws=50, flaw_scale_um=2.0, flaw_shape=2.0, seed=1)
    median = 2.0 * (-np.log(1 - 0.5 ** (1 / 50))) ** 0.5
    assert np.median(mc.largest_flaw_um) == pytest.approx(median, rel=0.03)


def test_sweep_table_and_files(tmp_path) -> None:
    t = sweep("t_short", current_densities_mA_cm2=[2.0, 4.0], stack_pressures_MPa=[5.0, 20.0],
              duration_s=20000.0)
    assert list(t.columns) == ["current_density_mA_cm2", "stack_pressure_MPa", "t_short_s"]
    assert len(t) == 4
    at5 = t[t.stack_pressure_MPa == 5.0].sort_values("current_density_mA_cm2")["t_short_s"]
    assert at5.iloc[1] < at5.iloc[0]
    paths = write_sweep(t, tmp_path / "out")
    assert (tmp_path / "out" / "sweep.csv").read_text().startswith("current_density_mA_cm2")
    assert open(paths["png"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InputError, match="quantity"):
        sweep("colour")


@pytest.mark.parametrize("name, a_angstrom, z, molar_mass", [
    # Li6PS5Cl: F-43m, a = 9.85 Å, Z = 4 (Deiseroth et al. 2008).
    ("Li6PS5Cl", 9.85, 4, 6 * 6.94 + 30.974 + 5 * 32.06 + 35.45),
    # Cubic Li7La3Zr2O12: Ia-3d, a = 12.97 Å, Z = 8.
    ("LLZO", 12.97, 8, 7 * 6.94 + 3 * 138.905 + 2 * 91.224 + 12 * 15.999),
])
def test_densities_match_the_crystal_cell(name, a_angstrom, z, molar_mass) -> None:
    rho = z * molar_mass / (6.02214076e23 * (a_angstrom * 1e-8) ** 3)
    assert get_material(name).density_g_cm3 == pytest.approx(rho, abs=0.01)
