"""Simulated devices: API contract and coupling to the shared world."""

from __future__ import annotations

import numpy as np
import pytest

import hbtscope
from hbtscope.instruments.base import LimitError


@pytest.fixture()
def setup(tmp_path, ideal_stage_setup_path):
    # the subject is not the stage: an ideal one puts the focus exactly on the emitter
    with hbtscope.open_setup(ideal_stage_setup_path, data_dir=tmp_path) as s:
        yield s


def _spad_rate(setup, seconds=2.0):
    tt = setup.tagger
    cr = tt.api.Countrate(tt.device, list(tt.spad_channels))
    cr.startFor(int(seconds * 1e12))
    cr.waitUntilFinished()
    return float(cr.getData().sum())


def test_power_meter_reads_what_the_laser_emits(setup):
    setup.laser.power_W = 1e-6
    assert setup.powermeter.read_power_W() < 1e-9  # laser off
    setup.laser.enable()
    readings = [setup.powermeter.read_power_W() for _ in range(20)]
    assert np.mean(readings) == pytest.approx(1e-6, rel=4 * 0.005 / np.sqrt(20))
    assert setup.snapshot()["powermeter"]["power_W"] > 0.9e-6


def test_flip_mirror_sends_light_to_the_spectrometer(setup):
    """Mirror on the spectrometer: SPADs see only dark counts, the spectrum peaks at the
    emitter's CEW (robustly: median-filtered against cosmic rays)."""
    from scipy.ndimage import median_filter

    setup.stage.move_to(10.0, 10.0, 0.0)
    setup.laser.power_W = 24e-9
    setup.laser.enable()
    assert _spad_rate(setup) > 50_000
    setup.flip_mirror.position = "spectrometer"
    assert _spad_rate(setup) < 200 + 4 * np.sqrt(200 / 2.0) * 2
    setup.spectrometer.integration_s = 10.0
    counts = setup.spectrometer.acquire()
    wl = setup.spectrometer.wavelengths_nm
    smooth = median_filter(counts, 5)
    peak = wl[int(np.argmax(smooth))]
    cew = setup.world.emitters[0].cew_nm
    assert abs(peak - cew) < 2.0
    with pytest.raises(LimitError, match="allowed: spads, spectrometer"):
        setup.flip_mirror.position = "camera"


def test_polariser_follows_malus(setup):
    """Count rate vs analyser angle: I_min + (I_max - I_min) cos²(θ − θ0) with the emitter's
    dipole angle and DOLP (Farrow et al.)."""
    from dataclasses import replace

    w = setup.world
    w.emitters[0] = replace(w.emitters[0], dipole_deg=30.0, dolp=0.4)
    w._dipole[0], w._dolp[0] = 30.0, 0.4
    setup.stage.move_to(10.0, 10.0, 0.0)
    setup.laser.power_W = 24e-9
    setup.laser.enable()
    total = setup.world.truth_at_focus()["emitter_rate_cps"]  # no analyser yet
    setup.polariser.in_path = True
    rates = {}
    for angle in (30.0, 120.0):
        setup.polariser.angle_deg = angle
        rates[angle] = _spad_rate(setup, 5.0) - 200.0
    assert rates[30.0] == pytest.approx(total * 0.7, rel=0.03)
    assert rates[120.0] == pytest.approx(total * 0.3, rel=0.03)
    dolp = (rates[30.0] - rates[120.0]) / (rates[30.0] + rates[120.0])
    assert dolp == pytest.approx(0.4, abs=0.02)


def test_camera_sees_emitters_under_the_led(setup):
    """LED on: the frame shows the emitters in the field of view at their positions."""
    setup.stage.move_to(15.0, 15.0, 0.0)  # field 41.6 µm wide: all four spots of sim.yaml
    setup.camera.exposure_s = 0.5
    dark = setup.camera.acquire().astype(float)
    setup.led.power_fraction = 1.0
    setup.led.enable()
    frame = setup.camera.acquire().astype(float)
    setup.led.disable()
    signal = frame - np.median(dark)
    xr, yr = setup.camera.field_um()
    p = setup.camera.pixel_um
    inside = [
        e
        for e in setup.world.emitters
        if xr[0] + 4 * p < e.x_um < xr[1] - 4 * p and yr[0] + 4 * p < e.y_um < yr[1] - 4 * p
    ]
    assert len(inside) >= 5  # the designed spots (x <= 30 um), not the survey field (x >= 40)
    for e in inside:
        j, i = int((e.x_um - xr[0]) / p), int((e.y_um - yr[0]) / p)
        patch = signal[i - 3 : i + 4, j - 3 : j + 4]
        assert patch.sum() > 20 * np.sqrt(7 * 7 * 1.6**2 / 0.46**2)
    with pytest.raises(LimitError):
        setup.led.power_fraction = 1.5
    with pytest.raises(LimitError):
        setup.camera.exposure_s = -1


def test_safe_state_turns_emission_off(setup):
    setup.laser.power_W = 1e-6
    setup.laser.enable()
    setup.led.power_fraction = 0.5
    setup.led.enable()
    setup.safe_state()
    assert not setup.laser.emission_on and not setup.led.on
    assert not setup.world.laser.on and not setup.world.led.on


def test_laser_runs_cw(setup):
    setup.stage.move_to(10.0, 10.0, 0.0)
    setup.laser.power_W = 1e-6
    setup.laser.cw = True
    setup.laser.enable()
    assert setup.snapshot()["laser"]["cw"] is True
    truth = setup.truth()
    assert truth["excitation"] == "cw" and truth["cw_tau0_ns"] < truth["tau_x_ns"]
    assert _spad_rate(setup) > 10_000


def test_preset_emitter_saturates_at_its_own_p_sat(tmp_path):
    """A cspbbr3_zn emitter (properties drawn from the preset): count rate vs power follows
    D'Amato et al. eq. 1 with P_sat = the power where <N> = 1 (10 % as in test_g2_physics)."""
    from scipy.optimize import curve_fit

    from hbtscope.setup import default_setup_path

    old = (
        "      - {x_um: 10.0, y_um: 10.0, qy_x: 0.8, qy_xx: 0.04, tau_x_ns: 10.2, "
        "tau_xx_ns: 0.8, sigma_abs_cm2: 1.0e-13}"
    )
    # no blinking and no photobrightening: the subject is the saturation curve
    new = (
        "      - {x_um: 10.0, y_um: 10.0, preset: cspbbr3_zn, cew_nm: 508.0, k_bg: 0, k_bo: 0,"
        " brightening_fraction: 0}"
    )
    text = default_setup_path().read_text()
    assert old in text
    text = text.replace(old, new)
    # the subject is not the stage: an ideal one keeps the focus on the emitter
    text = text.replace("hysteresis_um: 0.15", "hysteresis_um: 0.0")
    text = text.replace("creep_per_decade: 0.01", "creep_per_decade: 0.0")
    path = tmp_path / "zn.yaml"
    path.write_text(text)
    with hbtscope.open_setup(path, data_dir=tmp_path) as s:
        e = s.world.emitters[0]
        assert e.species == "cspbbr3_zn"
        p_sat = s.world.saturation_power_W(e)
        s.stage.move_to(10.0, 10.0, 0.0)
        s.laser.enable()
        powers = p_sat * np.geomspace(0.05, 5.0, 10)
        rates, measured = [], []
        for p in powers:
            s.laser.power_W = p
            measured.append(s.powermeter.read_power_W())  # the laser is not linear: as a lab
            truth = s.truth()
            rates.append(_spad_rate(s, 2.0) - truth["dark_rate_cps"] - truth["background_rate_cps"])
        powers = np.array(measured)

        def eq1(p, a, psat, b):
            return a * (1 - np.exp(-p / psat)) + b * p

        popt, _ = curve_fit(eq1, powers * 1e9, rates, p0=[max(rates), p_sat * 1e9, 0.0])
        assert popt[1] * 1e-9 == pytest.approx(p_sat, rel=0.10)
