import pytest

from dendritect.errors import InputError
from dendritect.units import (
    parse_duration_s,
    parse_length_um,
    parse_quantity,
    parse_times_s,
    parse_voxel_size_um,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.65um", 0.65), ("650 nm", 0.65), ("0.65 µm", 0.65), ("1e-3 mm", 1.0), (2.5, 2.5)],
)
def test_length(text, expected):
    assert parse_length_um(text) == pytest.approx(expected)


def test_voxel_size_three_with_trailing_unit():
    assert parse_voxel_size_um("1,0.65,0.65um") == pytest.approx((1.0, 0.65, 0.65))
    assert parse_voxel_size_um("650nm") == pytest.approx((0.65, 0.65, 0.65))
    assert parse_voxel_size_um("1um,650nm,0.65um") == pytest.approx((1.0, 0.65, 0.65))


@pytest.mark.parametrize("bad", ["0um", "-1um", "3 V", "abc", "1,2um", "nan um"])
def test_voxel_size_rejects(bad):
    with pytest.raises(InputError):
        parse_voxel_size_um(bad)


def test_duration_and_times():
    assert parse_duration_s("10min") == 600
    assert parse_duration_s("2 h") == 7200
    assert parse_times_s("0,600,1200") == [0, 600, 1200]
    with pytest.raises(InputError):
        parse_duration_s("5 mV")


def test_compound_units():
    assert parse_quantity("1mA/cm2", "mA/cm**2") == pytest.approx(1.0)
    assert parse_quantity("10 A/m^2", "mA/cm**2") == pytest.approx(1.0)
    assert parse_quantity("0.3mAh/cm2", "mA*h/cm**2") == pytest.approx(0.3)
    assert parse_quantity("1GPa", "MPa") == pytest.approx(1000)
    with pytest.raises(InputError, match="not in units"):
        parse_quantity("5 V", "MPa", name="--pressure")


def test_cli_usage_error(cli):
    from tests.conftest import assert_input_error

    assert_input_error(cli("--no-such-flag"), "no such option")
