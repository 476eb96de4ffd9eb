"""The instrument panel: laser (emission, power, repetition rate), stage (go-to and jog),
LED (on/off, power), flip mirror and a rolling count-rate trace per detector.

Every device call goes through the :class:`~hbtscope.gui.device_worker.DeviceWorker` (never the
GUI thread). The limits are the drivers' own (``max_power_W``, the stage travel from the setup
file): a refused value or a device error is shown in place, in the message line of its group.
A QTimer asks the worker for the detectors' count rates (the tagger's ``Countrate`` over
``window_s`` of the setup's clock) and appends them to the rolling trace; while a measurement
runs the panel is disabled and the trace pauses (the run holds the hardware lock).
Roles the setup does not define get no group.
"""

from __future__ import annotations

import collections
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import QTimer, pyqtSignal
from PyQt5.QtWidgets import (
    QComboBox,
    QDockWidget,
    QGridLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from hbtscope.gui.device_worker import BUSY, DeviceWorker
from hbtscope.gui.live_count_rate import CountRates
from hbtscope.gui.power_in_p_sat import EmitterChoice, set_power_in_p_sat
from hbtscope.storage.reading import is_photon_name
from hbtscope.units import PS_PER_S

PEN_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def detector_names(channel_map: dict[str, int]) -> list[str]:
    """The photon detectors of a tagger's channel map (no sync, no markers)."""
    return [name for name in channel_map if is_photon_name(name)]


def read_count_rates(setup: Any, window_s: float) -> dict[str, float]:
    """Counts/s of each detector channel of the tagger over ``window_s`` of the setup's clock."""
    tagger = setup.tagger
    names = detector_names(tagger.channels)
    channels = [tagger.channels[n] for n in names]
    rate = tagger.api.Countrate(tagger.device, channels)
    rate.startFor(int(round(window_s * PS_PER_S)))
    setup.clock.sleep(window_s)
    rate.waitUntilFinished()
    counts = np.asarray(rate.getCountsTotal(), dtype=np.float64)
    return {n: float(c) / window_s for n, c in zip(names, counts, strict=True)}


def read_state(setup: Any) -> dict[str, Any]:
    """What the panel shows of each instrument it controls."""
    state: dict[str, Any] = {}
    roles = setup.instruments
    if "laser" in roles:
        state["laser_on"] = bool(setup.laser.emission_on)
        state["laser_power_W"] = float(setup.laser.power_W)
        state["laser_rep_rate_Hz"] = float(setup.laser.rep_rate_Hz)
    if "stage" in roles:
        state["stage_um"] = tuple(float(v) for v in setup.stage.position_um)
    if "led" in roles:
        state["led_on"] = bool(setup.led.on)
        state["led_power_fraction"] = float(setup.led.power_fraction)
    if "flip_mirror" in roles:
        state["flip_mirror"] = str(setup.flip_mirror.position)
    return state


def jog(stage: Any, axis: str, step_um: float) -> None:
    """Move ``stage`` by ``step_um`` along ``axis`` (its travel checked by the driver)."""
    position = dict(zip("xyz", stage.position_um, strict=True))
    stage.move_to(**{f"{axis}_um": position[axis] + step_um})


def parse_number(text: str, what: str, allowed: str) -> float:
    """``text`` as a float, or ValueError naming ``what`` and what is ``allowed``."""
    try:
        return float(text.strip())
    except ValueError:
        raise ValueError(f"{what} {text.strip()!r}: not a number; allowed {allowed}") from None


def _message_label(name: str) -> QLabel:
    label = QLabel("")
    label.setObjectName(name)
    label.setWordWrap(True)
    label.setStyleSheet("color: #b00000;")
    return label


class InstrumentPanel(QDockWidget):
    """Laser, stage, LED and count rates of the setup."""

    #: the stage's position (x, y, z µm) as last read: the crosshair of the image views
    stage_read = pyqtSignal(object)

    def __init__(
        self,
        setup: Any,
        worker: DeviceWorker,
        *,
        trace_points: int = 300,
        period_ms: int = 250,
        window_s: float = 0.1,
        data_dir: str | Path | None = None,
        parent: QWidget | None = None,
    ):
        super().__init__("Instruments", parent)
        self.setObjectName("dock-instruments")
        self.setup = setup
        self.worker = worker
        self.window_s = window_s
        #: where the emitter book is (``<data_dir>/emitters/``): the run files' directory
        self.data_dir = data_dir if data_dir is not None else setup.data_dir
        self.state: dict[str, Any] = {}
        self.messages: dict[str, QLabel] = {}
        roles = setup.instruments
        body = QWidget()
        layout = QVBoxLayout(body)
        self.controls = QWidget()
        controls = QVBoxLayout(self.controls)
        controls.setContentsMargins(0, 0, 0, 0)
        if "laser" in roles:
            controls.addWidget(self._laser_group())
        if "stage" in roles:
            controls.addWidget(self._stage_group())
        if "led" in roles:
            controls.addWidget(self._led_group())
        if "flip_mirror" in roles:
            controls.addWidget(self._flip_mirror_group())
        layout.addWidget(self.controls)
        layout.addStretch(1)
        scroll = QScrollArea()  # squeezed, the panel scrolls instead of overlapping
        scroll.setWidgetResizable(True)
        scroll.setWidget(body)
        #: the count-rate trace in a dock of its own (the main window places it)
        self.rate_dock = QDockWidget("Count rate", parent)
        self.rate_dock.setObjectName("dock-count-rate")
        rate_body = QWidget()
        rate_layout = QVBoxLayout(rate_body)
        #: the rolling trace: wall seconds since the panel opened, and counts/s per detector
        self.times: collections.deque = collections.deque(maxlen=trace_points)
        self._t0 = time.monotonic()
        self.rates: dict[str, collections.deque] = {}
        self.curves: dict[str, Any] = {}
        self.rate_plot: pg.PlotWidget | None = None
        self.timer = QTimer(self)
        self.timer.setInterval(period_ms)
        if "tagger" in roles:
            self.rate_plot = pg.PlotWidget()
            self.rate_plot.setObjectName("count-rate-plot")
            self.rate_plot.setLabel("left", "count rate [counts/s]")
            self.rate_plot.setLabel("bottom", "time [s]")
            self.rate_plot.addLegend()
            names = detector_names(setup.tagger.channels)
            for i, name in enumerate(names):
                self.rates[name] = collections.deque(maxlen=trace_points)
                pen = pg.mkPen(PEN_COLOURS[i % len(PEN_COLOURS)], width=1)
                self.curves[name] = self.rate_plot.plot([], [], pen=pen, name=name)
            self.rate_label = QLabel("")
            self.rate_label.setObjectName("count-rates")
            rate_layout.addWidget(self.rate_plot, 1)
            rate_layout.addWidget(self.rate_label)
            self.timer.timeout.connect(self.request_count_rates)
        else:
            rate_layout.addWidget(QLabel("no time tagger in this setup"))
        self.rate_dock.setWidget(rate_body)
        self.setWidget(scroll)
        self._rate_in_flight = False
        self.refresh()

    # --- groups -------------------------------------------------------------------------

    def _laser_group(self) -> QGroupBox:
        laser = self.setup.laser
        box = QGroupBox("Laser")
        grid = QGridLayout(box)
        self.laser_button = QPushButton("Emission")
        self.laser_button.setObjectName("laser-emission")
        self.laser_button.setCheckable(True)
        self.laser_button.clicked.connect(self.set_laser_emission)
        self.laser_power = QLineEdit()
        self.laser_power.setObjectName("laser-power")
        self.laser_power.setPlaceholderText(f"[0, {laser.max_power_W}] W")
        self.laser_power.setToolTip(f"max_power_W = {laser.max_power_W} W (setup file)")
        self.laser_power.returnPressed.connect(self.set_laser_power)
        set_power = QPushButton("Set power")
        set_power.setObjectName("laser-set-power")
        set_power.clicked.connect(self.set_laser_power)
        self.laser_state = QLabel("")
        self.laser_state.setObjectName("laser-state")
        grid.addWidget(self.laser_button, 0, 0)
        grid.addWidget(self.laser_state, 0, 1, 1, 2)
        grid.addWidget(QLabel("power [W]"), 1, 0)
        grid.addWidget(self.laser_power, 1, 1)
        grid.addWidget(set_power, 1, 2)
        lo, hi = laser.rep_rate_range_Hz
        self.laser_rate = QLineEdit()
        self.laser_rate.setObjectName("laser-rep-rate")
        self.laser_rate.setPlaceholderText(f"[{lo:.3g}, {hi:.3g}] Hz")
        self.laser_rate.returnPressed.connect(self.set_laser_rep_rate)
        set_rate = QPushButton("Set rate")
        set_rate.setObjectName("laser-set-rep-rate")
        set_rate.clicked.connect(self.set_laser_rep_rate)
        grid.addWidget(QLabel("rep. rate [Hz]"), 2, 0)
        grid.addWidget(self.laser_rate, 2, 1)
        grid.addWidget(set_rate, 2, 2)
        self.laser_emitter = EmitterChoice(self.data_dir)
        self.laser_emitter.setToolTip("emitter whose P_sat (emitter book) sets the power")
        self.laser_p_sat = QLineEdit()
        self.laser_p_sat.setObjectName("laser-p-sat")
        self.laser_p_sat.setPlaceholderText("× P_sat")
        self.laser_p_sat.returnPressed.connect(self.set_laser_power_in_p_sat)
        set_p_sat = QPushButton("Set × P_sat")
        set_p_sat.setObjectName("laser-set-p-sat")
        set_p_sat.clicked.connect(self.set_laser_power_in_p_sat)
        self.laser_p_sat_W = QLabel("")
        self.laser_p_sat_W.setObjectName("laser-p-sat-W")
        grid.addWidget(QLabel("emitter"), 3, 0)
        grid.addWidget(self.laser_emitter, 3, 1, 1, 2)
        grid.addWidget(self.laser_p_sat, 4, 1)
        grid.addWidget(set_p_sat, 4, 2)
        grid.addWidget(QLabel("× P_sat"), 4, 0)
        grid.addWidget(self.laser_p_sat_W, 5, 1, 1, 2)
        self.messages["laser"] = _message_label("laser-message")
        grid.addWidget(self.messages["laser"], 6, 0, 1, 3)
        return box

    def _stage_group(self) -> QGroupBox:
        box = QGroupBox("Stage")
        grid = QGridLayout(box)
        self.stage_fields: dict[str, QLineEdit] = {}
        for i, axis in enumerate("xyz"):
            lo, hi = self.setup.stage.travel_um.get(axis, (-math.inf, math.inf))
            edit = QLineEdit()
            edit.setObjectName(f"stage-{axis}")
            edit.setPlaceholderText(f"[{lo}, {hi}]")
            edit.returnPressed.connect(self.go_to)
            grid.addWidget(QLabel(f"{axis} [µm]"), 0, i)
            grid.addWidget(edit, 1, i)
            self.stage_fields[axis] = edit
        go = QPushButton("Go to")
        go.setObjectName("stage-go")
        go.clicked.connect(self.go_to)
        grid.addWidget(go, 1, 3)
        self.jog_step = QLineEdit("0.1")
        self.jog_step.setObjectName("stage-jog-step")
        self.jog_step.setToolTip("jog step in µm")
        grid.addWidget(QLabel("jog [µm]"), 2, 0)
        grid.addWidget(self.jog_step, 2, 1)
        self.jog_buttons: dict[str, QPushButton] = {}
        for row, axis in enumerate("xyz", start=3):
            for col, sign in enumerate((-1, +1)):
                label = f"{'−' if sign < 0 else '+'}{axis}"
                button = QPushButton(label)
                button.setObjectName(f"stage-jog-{'minus' if sign < 0 else 'plus'}-{axis}")
                button.clicked.connect(lambda _=False, a=axis, s=sign: self.jog(a, s))
                grid.addWidget(button, row, col)
                self.jog_buttons[label] = button
        self.stage_state = QLabel("")
        self.stage_state.setObjectName("stage-state")
        self.stage_state.setWordWrap(True)
        grid.addWidget(self.stage_state, 6, 0, 1, 4)
        self.messages["stage"] = _message_label("stage-message")
        grid.addWidget(self.messages["stage"], 7, 0, 1, 4)
        return box

    def _led_group(self) -> QGroupBox:
        box = QGroupBox("LED")
        grid = QGridLayout(box)
        self.led_button = QPushButton("LED")
        self.led_button.setObjectName("led-on")
        self.led_button.setCheckable(True)
        self.led_button.clicked.connect(self.set_led)
        self.led_state = QLabel("")
        self.led_state.setObjectName("led-state")
        grid.addWidget(self.led_button, 0, 0)
        grid.addWidget(self.led_state, 0, 1, 1, 2)
        max_fraction = self.setup.led.max_fraction
        self.led_power = QLineEdit()
        self.led_power.setObjectName("led-power")
        self.led_power.setPlaceholderText(f"[0, {max_fraction}] of full power")
        self.led_power.setToolTip(f"max_fraction = {max_fraction} (setup file)")
        self.led_power.returnPressed.connect(self.set_led_power)
        set_power = QPushButton("Set power")
        set_power.setObjectName("led-set-power")
        set_power.clicked.connect(self.set_led_power)
        grid.addWidget(QLabel("power [fraction]"), 1, 0)
        grid.addWidget(self.led_power, 1, 1)
        grid.addWidget(set_power, 1, 2)
        self.messages["led"] = _message_label("led-message")
        grid.addWidget(self.messages["led"], 2, 0, 1, 3)
        return box

    def _flip_mirror_group(self) -> QGroupBox:
        box = QGroupBox("Flip mirror")
        grid = QGridLayout(box)
        self.flip_mirror = QComboBox()
        self.flip_mirror.setObjectName("flip-mirror")
        self.flip_mirror.addItems(list(self.setup.flip_mirror.positions))
        self.flip_mirror.activated[str].connect(self.set_flip_mirror)
        grid.addWidget(self.flip_mirror, 0, 0)
        self.messages["flip_mirror"] = _message_label("flip-mirror-message")
        grid.addWidget(self.messages["flip_mirror"], 1, 0)
        return box

    # --- actions (each a device call in the worker) ---------------------------------------

    def _call(self, group: str, fn, then=None) -> None:
        """Run ``fn`` in the worker; show its refusal in ``group``'s message line."""
        self.messages[group].setText("")

        def done(result: Any, error: str) -> None:
            self.messages[group].setText(error)
            if then is not None and not error:
                then(result)
            self.refresh()

        self.worker.submit(fn, done)

    def set_laser_emission(self, on: bool) -> None:
        laser = self.setup.laser
        self._call("laser", laser.enable if on else laser.disable)

    def _set_property(
        self, group: str, text: str, what: str, allowed: str, device: Any, attribute: str
    ) -> None:
        """Parse ``text`` as a number and write it to ``device.attribute`` in the worker; a
        bad number or the driver's refusal is shown in ``group``'s message line."""
        try:
            value = parse_number(text, what, allowed)
        except ValueError as exc:
            self.messages[group].setText(str(exc))
            return
        self._call(group, lambda: setattr(device, attribute, value))

    def set_laser_power(self) -> None:
        laser = self.setup.laser
        allowed = f"[0, {laser.max_power_W}] W"
        self._set_property(
            "laser", self.laser_power.text(), "laser power", allowed, laser, "power_W"
        )

    def set_laser_power_in_p_sat(self) -> None:
        """The power as a multiple of the chosen emitter's P_sat; the W it gives is shown."""
        laser = self.setup.laser
        self.laser_p_sat_W.setText("")
        try:
            factor = parse_number(self.laser_p_sat.text(), "× P_sat", "a number ≥ 0")
        except ValueError as exc:
            self.messages["laser"].setText(str(exc))
            return
        book, emitter = self.laser_emitter.book, self.laser_emitter.currentText()

        def write() -> float:
            return set_power_in_p_sat(laser, book, emitter, factor)

        def show(power_W: float) -> None:
            self.laser_p_sat_W.setText(f"= {power_W:.4g} W set")

        self._call("laser", write, then=show)

    def set_laser_rep_rate(self) -> None:
        laser = self.setup.laser
        lo, hi = laser.rep_rate_range_Hz
        text = self.laser_rate.text()
        self._set_property(
            "laser", text, "repetition rate", f"[{lo}, {hi}] Hz", laser, "rep_rate_Hz"
        )

    def go_to(self) -> None:
        target: dict[str, float] = {}
        for axis, edit in self.stage_fields.items():
            text = edit.text().strip()
            if not text:
                continue
            try:
                target[f"{axis}_um"] = float(text)
            except ValueError:
                self.messages["stage"].setText(f"stage {axis} = {text!r}: not a number (µm)")
                return
        self._call("stage", lambda: self.setup.stage.move_to(**target))

    def jog(self, axis: str, sign: int) -> None:
        """Move the stage by ± the jog step along ``axis``."""
        try:
            step = parse_number(self.jog_step.text(), "jog step", "a number of µm")
        except ValueError as exc:
            self.messages["stage"].setText(str(exc))
            return
        stage = self.setup.stage
        self._call("stage", lambda: jog(stage, axis, sign * step))

    def set_flip_mirror(self, position: str) -> None:
        mirror = self.setup.flip_mirror

        def write() -> None:
            mirror.position = position

        self._call("flip_mirror", write)

    def set_led(self, on: bool) -> None:
        led = self.setup.led
        self._call("led", led.enable if on else led.disable)

    def set_led_power(self) -> None:
        """The LED's output as a fraction of full power (the driver refuses > max_fraction)."""
        led = self.setup.led
        allowed = f"[0, {led.max_fraction}] of full power"
        self._set_property(
            "led", self.led_power.text(), "LED power", allowed, led, "power_fraction"
        )

    # --- reading --------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the instruments' state (in the worker) and show it."""

        def done(state: Any, error: str) -> None:
            if error and error != BUSY:
                for label in self.messages.values():
                    label.setText(error)
            if state:
                self.show_state(state)

        self.worker.submit(lambda: read_state(self.setup), done)

    def show_state(self, state: dict[str, Any]) -> None:
        self.state = state
        if "laser_on" in state:
            self.laser_button.setChecked(state["laser_on"])
            on = "on" if state["laser_on"] else "off"
            rate = state["laser_rep_rate_Hz"] / 1e6
            self.laser_state.setText(f"{on}, {state['laser_power_W']:.4g} W, {rate:.4g} MHz")
        if "stage_um" in state:
            x, y, z = state["stage_um"]
            self.stage_state.setText(f"at x = {x:.3f}, y = {y:.3f}, z = {z:.3f} µm")
            self.stage_read.emit((x, y, z))
        if "led_on" in state:
            self.led_button.setChecked(state["led_on"])
            on = "on" if state["led_on"] else "off"
            self.led_state.setText(f"{on}, {100 * state['led_power_fraction']:.3g} % power")
        if "flip_mirror" in state:
            self.flip_mirror.setCurrentText(state["flip_mirror"])

    def request_count_rates(self) -> None:
        """Timer tick: one count-rate reading in the worker (none if one is still running)."""
        if self._rate_in_flight:
            return
        self._rate_in_flight = True
        self.worker.submit(lambda: read_count_rates(self.setup, self.window_s), self._rates_read)

    def _rates_read(self, rates: Any, error: str) -> None:
        self._rate_in_flight = False
        if error:
            if error != BUSY:
                self.rate_label.setText(f"count rate: {error}")
            return
        self._append_rates(rates)

    def _append_rates(self, rates: dict[str, float], note: str = "") -> None:
        """One point of the rolling trace per detector (a detector not given repeats NaN)."""
        if self.rate_plot is None:
            return
        self.times.append(time.monotonic() - self._t0)
        t = np.asarray(self.times)
        for name in self.rates:
            self.rates[name].append(float(rates.get(name, np.nan)))
            self.curves[name].setData(t, np.asarray(self.rates[name]), connect="finite")
        self.rate_label.setText(
            "   ".join(f"{n}: {v / 1e3:.1f} kcounts/s" for n, v in rates.items()) + note
        )

    def on_event(self, event: Any) -> None:
        """Count rates a run computed from its tags or a scan's pixel counts
        (:mod:`hbtscope.gui.live_count_rate`): the trace goes on while the run holds the
        tagger."""
        if isinstance(event, CountRates) and not self.controls.isEnabled():
            self._append_rates(event.rates, f"   (from the run's {event.source})")

    def set_run_active(self, active: bool) -> None:
        """A measurement owns the instruments: controls off, trace paused; back after."""
        self.controls.setEnabled(not active)
        if not active:
            if hasattr(self, "laser_emitter"):
                self.laser_emitter.reload()  # a saturation sweep may have just finished
            self.refresh()
