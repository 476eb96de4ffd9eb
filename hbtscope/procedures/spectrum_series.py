"""Spectrum series of the emitter at the focus: CEW and FWHM versus time, blue-shift rate.

Every ``interval_s`` (minutes) the flip mirror sends the collected light to the spectrometer,
one spectrum of ``integration_s`` is taken and the mirror goes back to the SPADs; the laser is
on only during the spectra unless ``keep_laser_on`` (the emitter then keeps absorbing, and
blue-shifting, between them, as under continuous excitation in Pierini et al. 2020 Fig. 4a).
:func:`analyse` reads the run file alone: CEW and FWHM of every spectrum with their errors
(line fit of :func:`hbtscope.analysis.cew_fwhm`, cosmic rays removed), the normalised drift map
and the blue-shift rate, minus the slope of a weighted straight line through CEW(t)
(:func:`hbtscope.analysis.spectrum_series`; Pierini et al. 2020 Fig. 4a, D'Amato et al. 2023
Fig. 2b).

Run file: ``data/spectrum_series/wavelength_nm``, ``data/spectrum_series/spectra/NNNN`` (one
dataset per spectrum, attributes ``t_s`` and ``integration_s``), ``data/spectrum_series/times_s``
(start of each spectrum from the start of the series), ``data/spectrum_series`` attributes
``n_acquired``; on the simulator ``data/spectrum_series/true_cew_nm`` (the true CEW at the
middle of each exposure); ``analysis/spectrum_series`` the results
(docs/measurements/spectrum_series.md).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from pymeasure.experiment import BooleanParameter, FloatParameter, IntegerParameter, Parameter

from hbtscope.analysis import spectrum_series
from hbtscope.procedures.base import AnalysisOutput, HbtProcedure, Measurement
from hbtscope.procedures.live_plots import LivePlot
from hbtscope.storage import layout as L
from hbtscope.storage.reading import RunFileError
from hbtscope.storage.runfile import read_values

GROUP = "spectrum_series"


class SpectrumSeries(HbtProcedure):
    """A spectrum every N minutes for hours: CEW, FWHM, drift map and blue-shift rate (Pierini
    et al. Fig. 4a, D'Amato et al. Fig. 2b)."""

    NAME = "spectrum_series"

    n_spectra = IntegerParameter("Number of spectra", minimum=2, maximum=100_000, default=13)
    interval_s = FloatParameter(
        "Time between spectra", units="s", minimum=0.01, maximum=86_400.0, default=600.0
    )
    integration_s = FloatParameter(
        "Spectrometer integration", units="s", minimum=1e-3, maximum=3600.0, default=10.0
    )
    laser_power_W = FloatParameter(
        "Laser power", units="W", minimum=0.0, maximum=1e-2, default=24e-9
    )
    rep_rate_Hz = FloatParameter(
        "Repetition rate", units="Hz", minimum=1e5, maximum=1e8, default=5e6
    )
    keep_laser_on = BooleanParameter("Laser on between the spectra too", default=False)
    emitter = Parameter("Emitter name (remembered in the emitter book)", default="")
    x_um = FloatParameter("Stage x (NaN = stay)", units="um", default=float("nan"))
    y_um = FloatParameter("Stage y (NaN = stay)", units="um", default=float("nan"))
    z_um = FloatParameter("Stage z (NaN = stay)", units="um", default=float("nan"))

    NAN_MEANS = {"x_um": "stay", "y_um": "stay", "z_um": "stay"}
    #: spectra kept in memory by the analysis (1024 float64 pixels: 8 kB each)
    MAX_SPECTRA_PIXELS = 200_000_000

    def check_setup(self, setup) -> None:
        self.check_laser(setup, "laser_power_W", "rep_rate_Hz")
        self.check_stage_target(setup, x_um=self.x_um, y_um=self.y_um, z_um=self.z_um)
        spectrometer = setup.spectrometer  # a missing role is reported now
        if "flip_mirror" not in setup.instruments:
            self.fail(
                "n_spectra",
                f"needs a flip_mirror role to send the light to the spectrometer; {setup.path} "
                "defines none",
            )
        lo, hi = spectrometer.integration_range_s
        if not lo <= self.integration_s <= hi:
            self.fail("integration_s", f"is outside the spectrometer's range [{lo}, {hi}] s")
        if self.integration_s >= self.interval_s:
            self.fail("integration_s", f"must be shorter than interval_s = {self.interval_s} s")
        pixels = self.n_spectra * len(spectrometer.wavelengths_nm)
        if pixels > self.MAX_SPECTRA_PIXELS:
            self.fail("n_spectra", f"gives {pixels:.3g} spectrum pixels; at most 2e8")

    def startup(self) -> None:
        self.move_if_given(self.x_um, self.y_um, self.z_um)
        laser = self.setup.laser
        laser.rep_rate_Hz = self.rep_rate_Hz
        laser.power_W = self.laser_power_W
        self.setup.flip_mirror.position = "spads"
        self.setup.spectrometer.integration_s = self.integration_s
        if self.keep_laser_on:
            laser.enable()

    def _true_cew(self) -> float:
        cew = self.setup.truth().get("cew_nm") or [math.nan]
        return float(cew[0])

    def _one_spectrum(self, i: int, t_s: float) -> np.ndarray:
        """Mirror to the spectrometer, laser on if needed, integrate, and back."""
        setup = self.setup
        if not self.keep_laser_on:
            setup.laser.enable()
        # the truth is read with the light on the SPADs (the simulator counts an emitter as
        # in the spot by its detected rate)
        cew_before = self._true_cew() if setup.is_simulated else math.nan
        if i == 0 and setup.is_simulated:  # the truth of the spot with the laser on
            self.publish_truth(setup.truth())
        setup.flip_mirror.position = "spectrometer"
        try:
            counts = np.asarray(setup.spectrometer.acquire(), dtype=np.float64)
        finally:
            setup.flip_mirror.position = "spads"
            if setup.is_simulated:
                self._truth_cew.append(0.5 * (cew_before + self._true_cew()))
            if not self.keep_laser_on:
                setup.laser.disable()
        self.publish_array(f"{GROUP}/spectra/{i:04d}", counts, units="counts")
        return counts

    def execute(self) -> None:
        setup = self.setup
        clock = setup.clock
        self.publish_array(
            f"{GROUP}/wavelength_nm", np.asarray(setup.spectrometer.wavelengths_nm), units="nm"
        )
        self._truth_cew: list[float] = []
        times: list[float] = []
        t0 = clock.now_ps()
        try:
            for i in range(self.n_spectra):
                wait = i * self.interval_s - (clock.now_ps() - t0) * 1e-12
                while wait > 0:  # wait in steps so that a stop request is seen
                    clock.sleep(min(wait, 1.0))
                    self.check_stop()
                    wait = i * self.interval_s - (clock.now_ps() - t0) * 1e-12
                t_s = (clock.now_ps() - t0) * 1e-12
                self._one_spectrum(i, t_s)
                times.append(t_s)  # only once its spectrum is published (stop, SIGTERM)
                self.publish_array(f"{GROUP}/times_s", np.asarray(times), units="s")
                if self._truth_cew:
                    self.publish_array(f"{GROUP}/true_cew_nm", np.asarray(self._truth_cew))
                self.publish_values(GROUP, {"n_acquired": len(times)})
                self.progress(100.0 * (i + 1) / self.n_spectra)
                self.check_stop()
        finally:
            self.publish_values(
                GROUP,
                {
                    "n_acquired": len(times),
                    "integration_s": self.integration_s,
                    "keep_laser_on": bool(self.keep_laser_on),
                },
            )
            if setup.is_simulated:
                self.publish_values(f"{GROUP}/truth_end", _scalar_truth(setup.truth()))

    def shutdown(self) -> None:
        if self.setup is None:
            return
        if "laser" in self.setup.instruments:
            self.setup.laser.disable()
        if "flip_mirror" in self.setup.instruments:
            self.setup.flip_mirror.position = "spads"


def _scalar_truth(truth: dict) -> dict:
    out = {}
    for k, v in truth.items():
        if isinstance(v, bool | int | float | str):
            out[k] = v
        elif isinstance(v, list) and v and all(isinstance(x, int | float) for x in v):
            out[k] = float(v[0])
    return out


# ----------------------------------------------------------------------------- analysis


def _read_series(run: h5py.File) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times_s, wavelength_nm, spectra[n, pixels]) of the spectra the file holds."""
    group = run.get(f"{L.DATA}/{GROUP}")
    if not isinstance(group, h5py.Group) or "spectra" not in group:
        raise RunFileError(f"{run.filename}: no spectra in data/{GROUP}")
    names = sorted(group["spectra"])
    spectra = np.stack([group["spectra"][n][()] for n in names]).astype(np.float64)
    times = np.asarray(group["times_s"][()], dtype=np.float64)[: len(names)]
    if times.size < len(names):  # interrupted between a spectrum and its time
        spectra = spectra[: times.size]
    return times, np.asarray(group["wavelength_nm"][()], dtype=np.float64), spectra


def analyse(run: h5py.File) -> AnalysisOutput:
    """CEW and FWHM per spectrum, drift map, blue-shift rate, from the file alone."""
    times, wl, spectra = _read_series(run)
    values: dict[str, Any] = {"n_spectra": int(times.size), "times_s": times}
    errors: dict[str, Any] = {}
    res = spectrum_series(times, wl, spectra)
    values.update(
        wavelength_nm=wl,
        cew_nm=res.cew_nm,
        fwhm_nm=res.fwhm_nm,
        ok=res.ok,
        normalised_map=res.normalised_map,
        n_fitted=int(np.count_nonzero(res.ok)),
        chi2_red=float(res.chi2_red),
        cew0_nm=float(res.cew0_nm),
    )
    errors.update(cew_nm=res.cew_nm_err, fwhm_nm=res.fwhm_nm_err)
    rate_h, rate_h_err = res.blueshift_rate_nm_per_h, res.blueshift_rate_nm_per_h_err
    values["blueshift_rate_nm_per_min"] = rate_h / 60.0
    errors["blueshift_rate_nm_per_min"] = rate_h_err / 60.0
    if values["n_fitted"] < 3:
        values["rate_error"] = f"{values['n_fitted']} spectra with a line: no rate (needs 3)"
    ok = res.ok
    summary: dict[str, Any] = {"n_spectra": int(times.size), "n_fitted": values["n_fitted"]}
    if ok.any():
        w_c = 1.0 / res.cew_nm_err[ok] ** 2
        w_f = 1.0 / res.fwhm_nm_err[ok] ** 2
        summary.update(
            cew_first_nm=float(res.cew_nm[ok][0]),
            cew_first_nm_err=float(res.cew_nm_err[ok][0]),
            cew_mean_nm=float(np.sum(w_c * res.cew_nm[ok]) / w_c.sum()),
            cew_mean_nm_err=float(w_c.sum() ** -0.5),
            fwhm_mean_nm=float(np.sum(w_f * res.fwhm_nm[ok]) / w_f.sum()),
            fwhm_mean_nm_err=float(w_f.sum() ** -0.5),
        )
        values.update({k: v for k, v in summary.items() if not k.endswith("_err")})
        errors.update({k[:-4]: v for k, v in summary.items() if k.endswith("_err")})
    summary["blueshift_rate_nm_per_min"] = values["blueshift_rate_nm_per_min"]
    summary["blueshift_rate_nm_per_min_err"] = errors["blueshift_rate_nm_per_min"]
    summary.update(_truth_summary(run, times))
    return AnalysisOutput(GROUP, values, errors, summary)


def _truth_summary(run: h5py.File, times: np.ndarray) -> dict[str, Any]:
    """On the simulator: the true rate (minus the slope of a straight line through the true
    CEW at the middle of each exposure), the true first CEW and the FWHM (``truth/``)."""
    out: dict[str, Any] = {}
    true_cew = run.get(f"{L.DATA}/{GROUP}/true_cew_nm")
    if isinstance(true_cew, h5py.Dataset):
        cew = np.asarray(true_cew[()], dtype=np.float64)[: times.size]
        out["truth_cew_first_nm"] = float(cew[0]) if cew.size else math.nan
        if cew.size >= 2 and np.isfinite(cew).all():
            out["truth_blueshift_rate_nm_per_min"] = float(-np.polyfit(times / 60.0, cew, 1)[0])
    group = run.get(L.TRUTH)
    truth = read_values(group) if isinstance(group, h5py.Group) else {}
    fwhm = truth.get("fwhm_nm")
    if isinstance(fwhm, list | np.ndarray) and len(fwhm):
        out["truth_fwhm_nm"] = float(fwhm[0])
    return out


# ----------------------------------------------------------------------------- figure


def figure(run: h5py.File, path: Path) -> Path | None:
    """Drift map (normalised spectra versus time) and CEW(t) with errors and the fitted line
    (Pierini et al. Fig. 4a, D'Amato et al. Fig. 2b), from the run file alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    group = run.get(f"{L.ANALYSIS}/{GROUP}")
    v = read_values(group) if isinstance(group, h5py.Group) else {}
    if "normalised_map" not in v:
        try:
            out = analyse(run)
        except (RunFileError, ValueError):
            return None
        v = {**out.values, **{f"{k}_err": e for k, e in out.errors.items()}}
    t_min = np.asarray(v["times_s"], dtype=np.float64) / 60.0
    wl = np.asarray(v["wavelength_nm"], dtype=np.float64)
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax_map, ax_cew = fig.subplots(1, 2)
    cew = np.asarray(v["cew_nm"], dtype=np.float64)
    centre = np.nanmedian(cew) if np.isfinite(cew).any() else float(np.median(wl))
    order = np.argsort(wl)
    ax_map.pcolormesh(
        wl[order], t_min, np.asarray(v["normalised_map"])[:, order], cmap="magma",
        shading="auto", vmin=0, vmax=1,
    )  # fmt: skip
    ax_map.set_xlim(centre - 40, centre + 40)
    ax_map.set_xlabel("wavelength (nm)")
    ax_map.set_ylabel("time (min)")
    ax_map.set_title("normalised spectra", fontsize=9)
    err = np.asarray(v.get("cew_nm_err", np.zeros_like(cew)), dtype=np.float64)
    ax_cew.errorbar(t_min, cew, yerr=err, fmt="o", ms=3)
    rate = float(v.get("blueshift_rate_nm_per_min", math.nan))
    rate_err = float(v.get("blueshift_rate_nm_per_min_err", math.nan))
    cew0 = float(v.get("cew0_nm", math.nan))
    if math.isfinite(rate) and math.isfinite(cew0):
        ax_cew.plot(t_min, cew0 - rate * t_min, "-", lw=0.8)
    ax_cew.set_xlabel("time (min)")
    ax_cew.set_ylabel("CEW (nm)")
    ax_cew.set_title(f"blue shift {rate:.4f} ± {rate_err:.4f} nm/min", fontsize=9)
    fig.suptitle(Path(run.filename).name, fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


LIVE_PLOTS = (
    LivePlot(
        "latest spectrum",
        y=f"{GROUP}/spectra/*",
        x=f"{GROUP}/wavelength_nm",
        x_label="wavelength [nm]",
        y_label="counts",
        points=False,
    ),
    LivePlot(
        "drift map (one row per spectrum)",
        y=f"{GROUP}/spectra/*",
        x=f"{GROUP}/wavelength_nm",
        x_label="wavelength [nm]",
        y_label="spectrum",
        stack=True,
    ),
)

MEASUREMENT = Measurement(GROUP, SpectrumSeries, analyse, figure, live_plots=LIVE_PLOTS)
