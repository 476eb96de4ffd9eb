"""The simulated world: sample, optics, laser, detectors — the truth every simulated device shares.

One :class:`World` per Setup. Simulated devices change it (the laser sets the power, the stage
moves the focus) and read it (the time tagger asks for the detector clicks up to the clock's
``now``). Photon streams are generated lazily, in fixed grid slices of virtual time
(``slice_ps``), each slice from its own random generator keyed by the setup seed and the slice's
start time, so a run is reproducible from the seed whatever the polling pattern or clock speed.
Generation is vectorised and thinned: only pulses that yield a detection cost anything
(geometric gaps between "active" pulses).

When a device is about to change the world (:meth:`World.changing`), everything generated
ahead of ``now`` is discarded and generated again under the new conditions.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hbtscope.clock import VirtualClock
from hbtscope.drivers_sim import physics
from hbtscope.drivers_sim._kernels import (
    LADDER_RUNGS,
    ladder_class_probs,
    pulsed_photons,
    release_clicks,
    rng_state,
    spad_clicks,
)
from hbtscope.drivers_sim.emitters import EmitterDynamics
from hbtscope.drivers_sim.faults import FaultInjector
from hbtscope.drivers_sim.imperfections import (
    OpenLoopPiezo,
    crosstalk_clicks,
    laser_emitted_power_W,
)
from hbtscope.drivers_sim.model import EMITTER_PROPERTIES, Emitter, EmitterSpot, SimulationConfig
from hbtscope.drivers_sim.presets import PRESETS
from hbtscope.drivers_sim.sample import draw_emitter, draw_population
from hbtscope.units import FWHM_PER_SIGMA, PS_PER_S

log = logging.getLogger(__name__)

MAX_CHANNEL = 65
_NEVER = -(2**62)
_M64 = (1 << 64) - 1


def _splitmix64(z: int) -> int:
    """The SplitMix64 output function of a 64-bit word (a bijective, well-mixing hash)."""
    z = (z + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def _hash_words(*words: int) -> int:
    """A 64-bit hash of 64-bit words (SplitMix64 chained over them)."""
    h = 0
    for w in words:
        h = _splitmix64(h ^ (w & _M64))
    return h


@dataclass
class LedState:
    on: bool = False
    intensity_W_cm2: float = 0.0
    wavelength_nm: float = 400.0


@dataclass
class LaserState:
    on: bool = False
    power_W: float = 0.0
    rep_rate_Hz: float = 5.0e6
    wavelength_nm: float = 405.0
    phase_ps: int = 0  # time of pulse k = 0 of the current pulse train
    cw: bool = False  # continuous-wave instead of pulsed (Baronnier et al.)
    set_power_W: float = 0.0  # what the laser was told; power_W is what it emits

    @property
    def period_ps(self) -> float:
        return PS_PER_S / self.rep_rate_Hz


_PATH, _PIECE = 0x9A7, 0x91ECE  # tags of the per-piece seeds
_TOP, _FIRST = physics.ladder_classes(physics.N_MAX)
#: index of the last class of every top-rung block (classes ordered by top rung)
_BLOCK_END = np.append(np.flatnonzero(np.diff(_TOP)), _TOP.size - 1)


assert LADDER_RUNGS == physics.N_MAX
#: one photon per active pulse, delay Exp(tau): the first class of the ladder, all others
#: empty -- the substrate background
_CUM1 = np.ones((1, _TOP.size))
_ST0 = np.zeros(1, np.int64)
_PATH0 = np.zeros(1, np.int64)  # a path of one state (its start time is not used)
_P_RUNG1 = np.zeros((1, physics.N_MAX))
_P_RUNG1[0, 0] = 1.0


class World:
    """The shared truth of the simulated microscope.

    ``config`` is plain Python (:mod:`hbtscope.drivers_sim.model`); a setup file's
    ``simulation:`` section is turned into one by ``hbtscope.config_schema``. ``spec`` is the
    same object, under the name the simulated devices read it by.
    """

    def __init__(self, config: SimulationConfig, clock: VirtualClock, slice_ms: float = 100.0):
        if not isinstance(config, SimulationConfig):
            raise TypeError(
                f"World takes a hbtscope.drivers_sim.model.SimulationConfig, got "
                f"{type(config).__name__} (a setup file's schema: use its .to_config())"
            )
        spec = config
        self.config = config
        self.spec = config
        self.clock = clock
        self.seed = int(spec.seed)
        self.optics = spec.optics
        self.detectors = list(spec.detectors)
        self.sync_channel = spec.sync.tagger_channel
        self.sync_delay_ps = spec.sync.delay_ps
        self.laser = LaserState(wavelength_nm=spec.optics.excitation_wavelength_nm)
        self.focus_um = np.zeros(3)  # where the stage was told to go (open loop: it reports this)
        st = spec.stage
        self.piezo = OpenLoopPiezo(
            st.hysteresis_um, st.hysteresis_scale_um, st.creep_per_decade, st.creep_t0_s
        )
        self.emitters: list[Emitter] = self._build_emitters(spec)
        self._em_xyz = np.array([[e.x_um, e.y_um, e.z_um] for e in self.emitters]).reshape(-1, 3)
        self.slice_ps = int(slice_ms * 1e9)
        self.sync_enabled = False
        # sync event divider done at the source (the tagger's setEventDivider on the sync
        # channel): only pulses k with k = sync_phase_k (mod sync_divider) make a sync tag, so
        # a divided 5 MHz sync costs nothing to generate
        self.sync_divider = 1
        self.sync_phase_k = 0
        # stream state
        self._generated_until_ps = clock.now_ps()
        self._released_until_ps = self._generated_until_ps
        self._pending_ts = np.empty(0, np.int64)
        self._pending_ch = np.empty(0, np.int16)
        self._pending_origin = np.empty(0, np.int64)
        self._new_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._dead_ps = np.zeros(MAX_CHANNEL, np.int64)
        for d in self.detectors:
            self._dead_ps[d.tagger_channel] = int(round(d.dead_time_ns * 1000))
        self._last_kept = np.full(MAX_CHANNEL, _NEVER, np.int64)
        self._ap_prob = np.zeros(MAX_CHANNEL)
        self._ap_tau_ps = np.ones(MAX_CHANNEL)
        for d in self.detectors:
            self._ap_prob[d.tagger_channel] = d.afterpulse_prob
            self._ap_tau_ps[d.tagger_channel] = d.afterpulse_tau_ns * 1e3
        # breakdown-flash crosstalk, by tagger channel: probability, target, shift, jitter
        self._xt_prob = np.zeros(MAX_CHANNEL)
        self._xt_target = np.zeros(MAX_CHANNEL, np.int64)
        self._xt_shift = np.zeros(MAX_CHANNEL)
        self._xt_jitter = np.zeros(MAX_CHANNEL)
        n_det = len(self.detectors)
        for j, d in enumerate(self.detectors):
            other = self.detectors[(j + 1) % n_det]  # with two detectors: the other one
            self._xt_jitter[d.tagger_channel] = d.jitter_fwhm_ps / FWHM_PER_SIGMA
            if d.crosstalk_prob > 0 and n_det > 1:
                self._xt_prob[d.tagger_channel] = d.crosstalk_prob
                self._xt_target[d.tagger_channel] = other.tagger_channel
                self._xt_shift[d.tagger_channel] = (
                    d.crosstalk_delay_ps + other.delay_ps - d.delay_ps
                )
        self._piece_bits = np.random.PCG64(0)
        self._piece_rng = np.random.Generator(self._piece_bits)
        self._ap_seed = self._seed_for("afterpulse")
        self._ap_t = np.empty(64, np.int64)  # afterpulses not yet due (a heap)
        self._ap_c = np.empty(64, np.int64)
        self._ap_n = 0
        self._eta_split = self._detector_split()
        # per detector, for the generation of every piece
        self._det_channels = np.array([d.tagger_channel for d in self.detectors], np.int16)
        self._det_jitter = np.array([d.jitter_fwhm_ps / FWHM_PER_SIGMA for d in self.detectors])
        self._det_delay = np.array([d.delay_ps for d in self.detectors], np.float64)
        self._det_tail_f = np.array([d.jitter_tail_fraction for d in self.detectors])
        self._det_tail_ps = np.array([d.jitter_tail_ps for d in self.detectors])
        self._det_dark_cps = np.array([float(d.dark_cps) for d in self.detectors])
        self._xt_on = bool(self._xt_prob.any())
        self._route = self._eta_split / self._eta_split.sum()
        self._route_all = np.cumsum(self._route)
        self._route_all[-1] = 1.0
        self._ap_on = bool(self._ap_prob.any())
        t0 = clock.now_ps()
        self.dynamics = [
            EmitterDynamics(e, self._seed_for("emitter", e.index), t0) for e in self.emitters
        ]
        self._brightening_idx = [
            j for j, e in enumerate(self.emitters) if e.brightening_fraction > 0
        ]
        self._brightening = bool(self._brightening_idx)
        self._paths_ahead: set[int] = set()
        self._change_listeners: list = []
        #: every hardware action that reached the world, in order: (t_ps, action, arguments)
        #: -- what the twins wrote, whichever driver and wire they came through (bounded)
        self.hardware_log: deque[tuple[int, str, dict[str, Any]]] = deque(maxlen=10_000)
        # hardware-timed scan: focus changes at known times, pixel markers into the tagger
        self._sched_t = np.empty(0, np.int64)
        self._sched_xyz = np.empty((0, 3))
        self._sched_i = 0
        self._marker_t = np.empty(0, np.int64)
        self._marker_channel = 0
        #: ground truth for tests and run files: every generated blinking path piece
        self.record_paths = False
        self.recorded_paths: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        self._cw_last: dict[int, int] = {}  # last CW detection of each emitter (ps)
        self._cw_last_xx: dict[int, bool] = {}  # was it an XX photon (emitter left in X)
        self._ladder: dict[int, tuple] = {}  # last ladder tables of each emitter (cache)
        self._ladder_const: dict[int, tuple] = {}  # their excitation-free parts
        self._sigma = np.array([e.sigma_abs_cm2 for e in self.emitters])
        self._route_cum, self._band_factor = self._spectral_routing()
        self._bg_tables: tuple | None = None
        rng_d = np.random.default_rng(self._seed_for("drift"))
        angle = rng_d.uniform(0, 2 * np.pi)
        v = spec.optics.drift_nm_per_min * 1e-3 / 60.0  # µm/s
        self.drift_velocity_um_s = np.array([v * np.cos(angle), v * np.sin(angle), 0.0])
        self._tau_x_ns = np.array([e.tau_x_ns for e in self.emitters])
        self.led = LedState()
        self.faults = FaultInjector(spec.faults, clock, self.seed)
        for i, t_b in self.faults.forced_bleaching():
            if i < len(self.dynamics):
                self.dynamics[i].force_bleach_at(t_b)
        self.analyser_deg: float | None = None  # detection polariser angle; None: not in path
        self.light_path = "spads"  # flip mirror: "spads" or "spectrometer"
        self._dipole = np.array([e.dipole_deg for e in self.emitters])
        self._dolp = np.array([e.dolp for e in self.emitters])
        self._dose_rate = np.zeros(len(self.emitters))
        self._exc_ratio = np.zeros(len(self.emitters))

    def _piece_seed(self, tag: int, *keys: int) -> int:
        """A 63-bit seed of (setup seed, tag, keys): the per-piece seeds, where a
        SeedSequence per piece would cost more than the piece's photons."""
        return _hash_words(self.seed, tag, *keys) >> 1

    def _seed_for(self, *keys) -> int:
        words = [self.seed]
        for k in keys:
            if isinstance(k, str):
                words.append(sum(ord(c) << (8 * (i % 4)) for i, c in enumerate(k)) & 0xFFFFFFFF)
            else:
                words.extend([int(k) & 0xFFFFFFFF, (int(k) >> 32) & 0xFFFFFFFF])
        return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] >> 1)

    def _build_emitters(self, spec: SimulationConfig) -> list[Emitter]:
        emitters: list[Emitter] = []
        spot = 0
        for n_spec, entry in enumerate(spec.sample.emitters):
            if isinstance(entry, Emitter):  # a spot of one, as given
                entry = EmitterSpot(
                    x_um=entry.x_um,
                    y_um=entry.y_um,
                    z_um=entry.z_um,
                    properties={k: getattr(entry, k) for k in EMITTER_PROPERTIES},
                )
            count = entry.count
            rng = np.random.default_rng(self._seed_for("emitter-spec", n_spec))
            for _ in range(count):
                index = len(emitters)
                if entry.preset is None:
                    em = Emitter(
                        index=index,
                        spot=spot,
                        cluster_size=count,
                        x_um=entry.x_um,
                        y_um=entry.y_um,
                        z_um=entry.z_um,
                        **entry.properties,
                    )
                else:
                    drawn = draw_emitter(
                        PRESETS[entry.preset],
                        rng,
                        index=index,
                        x_um=entry.x_um,
                        y_um=entry.y_um,
                        z_um=entry.z_um,
                        dilution=entry.dilution,
                        spot=spot,
                        cluster_size=count,
                    )
                    em = replace(drawn, **entry.properties)
                emitters.append(em)
            spot += 1
        for i, pop in enumerate(spec.sample.populations):
            rng = np.random.default_rng(self._seed_for("population", i))
            drawn = draw_population(
                PRESETS[pop.preset],
                rng,
                density_per_um2=pop.density_per_um2,
                area_um=pop.area_um,
                dilution=pop.dilution,
                first_index=len(emitters),
                first_spot=spot,
            )
            emitters.extend(drawn)
            spot = max([e.spot for e in emitters], default=spot - 1) + 1
        return emitters

    # ------------------------------------------------------------------ changes
    def add_change_listener(self, callback) -> None:
        """``callback()`` runs before every change, e.g. a tagger bringing its measurements up
        to now, so that the clicks before the change are made under the old conditions."""
        self._change_listeners.append(callback)

    def remove_change_listener(self, callback) -> None:
        if callback in self._change_listeners:
            self._change_listeners.remove(callback)

    def _log(self, action: str, **arguments: Any) -> None:
        given = {k: v for k, v in arguments.items() if v is not None}
        self.hardware_log.append((self.clock.now_ps(), action, given))

    def changing(self) -> None:
        """Call before changing any condition: photons up to now keep the old conditions."""
        for callback in list(self._change_listeners):
            try:
                callback()
            except Exception as exc:  # noqa: BLE001 - e.g. a disconnected tagger: its own
                # calls say so; it must not keep the laser from switching off
                log.warning("a listener of the simulated world failed: %s", exc)
        now = self.clock.now_ps()
        if self._generated_until_ps > now:
            keep = self._pending_origin < now
            self._pending_ts = self._pending_ts[keep]
            self._pending_ch = self._pending_ch[keep]
            self._pending_origin = self._pending_origin[keep]
            self._generated_until_ps = max(now, self._released_until_ps)
        for i in self._paths_ahead:
            self.dynamics[i].truncate(now)
            pieces = self.recorded_paths.get(i)
            if pieces:  # the generated-ahead part is regenerated under the new conditions
                t, st = pieces[-1]
                keep = t < now
                pieces[-1] = (t[keep], st[keep])
        self._paths_ahead.clear()
        for i, t in list(self._cw_last.items()):
            if t >= now:
                self._cw_last[i] = now
                self._cw_last_xx[i] = False

    def _changed(self, t_ps: int | None = None) -> None:
        """After a change: new dose rates and blinking rates from now on, where they differ."""
        now = self.clock.now_ps() if t_ps is None else t_ps
        rate, ratio = self._absorption(now)
        diff = np.flatnonzero((rate != self._dose_rate) | (ratio != self._exc_ratio))
        for i in diff:
            self.dynamics[i].set_conditions(now, float(rate[i]), float(ratio[i]))
        self._dose_rate, self._exc_ratio = rate, ratio

    def _absorption(self, t_ps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Absorbed photons per second and the blinking excitation ratio x/x_sat per emitter.

        Pulsed: <N> f absorbed per second; x = 1 - exp(-<N>) is the fraction of pulses that
        excite, x_sat = 1 - 1/e its value at P_sat.
        """
        if self.laser.cw:
            k_exc, _ = self._excitation(t_ps)
            rate = k_exc
            x = k_exc / (k_exc + 1e9 / self._tau_x_ns) if len(self.emitters) else k_exc
        else:
            mean_n, _ = self._excitation(t_ps)
            rate = mean_n * self.laser.rep_rate_Hz
            x = -np.expm1(-mean_n)
        if self.led.on and self.led.intensity_W_cm2 > 0 and len(self.emitters):
            # CW wide-field: r = sigma Phi; fraction of time excited x = r/(r + 1/tau_x)
            flux = self.led.intensity_W_cm2 / physics.photon_energy_J(self.led.wavelength_nm)
            r_led = self._sigma * flux
            rate = rate + r_led
            x = x + r_led / (r_led + 1e9 / self._tau_x_ns)
        return rate, x / (1.0 - math.exp(-1.0))

    def set_laser(self, *, on=None, power_W=None, rep_rate_Hz=None, cw=None) -> None:
        self._log("set_laser", on=on, power_W=power_W, rep_rate_Hz=rep_rate_Hz, cw=cw)
        self.changing()
        if cw is not None:
            self.laser.cw = bool(cw)
        if rep_rate_Hz is not None and rep_rate_Hz != self.laser.rep_rate_Hz:
            self.laser.rep_rate_Hz = float(rep_rate_Hz)
            self.laser.phase_ps = self.clock.now_ps()
        if power_W is not None:
            lz = self.spec.laser
            self.laser.set_power_W = float(power_W)
            self.laser.power_W = laser_emitted_power_W(
                float(power_W), lz.power_reference_W, lz.power_exponent
            )
        if on is not None:
            if on and not self.laser.on:
                self.laser.phase_ps = self.clock.now_ps()
            self.laser.on = bool(on)
        self._changed()

    def set_led(self, *, on: bool | None = None, intensity_W_cm2: float | None = None) -> None:
        """Wide-field LED illumination of the whole field (400 nm, CoolLED pE-100, as Pierini et
        al. and D'Amato et al. use)."""
        self._log("set_led", on=on, intensity_W_cm2=intensity_W_cm2)
        self.changing()
        if intensity_W_cm2 is not None:
            self.led.intensity_W_cm2 = float(intensity_W_cm2)
        if on is not None:
            self.led.on = bool(on)
        self._changed()

    def set_analyser(self, angle_deg: float | None) -> None:
        """Linear analyser in the detection path at ``angle_deg`` (None: removed)."""
        self._log("set_analyser", angle_deg=angle_deg)
        self.changing()
        self.analyser_deg = None if angle_deg is None else float(angle_deg)
        self._changed()

    def set_light_path(self, position: str) -> None:
        """Flip mirror: collected light to the SPADs or to the spectrometer."""
        self._log("set_light_path", position=position)
        self.changing()
        self.light_path = position
        self._changed()

    def _detection_factor(self) -> np.ndarray:
        """Per emitter: what reaches the SPADs of its collected light (analyser, flip mirror)."""
        if self.light_path != "spads":
            return np.zeros(len(self.emitters))
        if self.analyser_deg is None:
            return np.ones(len(self.emitters))
        from hbtscope.drivers_sim.render import malus_transmission

        return np.asarray(malus_transmission(self.analyser_deg, self._dipole, self._dolp), float)

    def schedule_scan(
        self, start_ps: int, dwell_ps: int, xyz_um: np.ndarray, marker_channel: int | None
    ) -> int:
        """A hardware-timed raster: focus at xyz_um[i] from start + i dwell; a marker tag at
        every pixel start and one at the end. Returns the end time (ps)."""
        self._log("schedule_scan", start_ps=start_ps, dwell_ps=dwell_ps, n_pixels=len(xyz_um))
        self.changing()
        n = xyz_um.shape[0]
        times = start_ps + dwell_ps * np.arange(n, dtype=np.int64)
        self._sched_t = times
        self._sched_xyz = np.asarray(xyz_um, float)
        self._sched_i = 0
        end = int(start_ps + dwell_ps * n)
        if marker_channel is not None:
            self._marker_t = np.append(times, end)
            self._marker_channel = int(marker_channel)
        else:
            self._marker_t = np.empty(0, np.int64)
        return end

    def cancel_scan(self) -> None:
        """Stop the raster now: the stage stays where it is."""
        self._log("cancel_scan")
        self.changing()
        now = self.clock.now_ps()
        self._apply_schedule(now)
        self._sched_t = self._sched_t[:0]
        self._sched_i = 0
        self._marker_t = self._marker_t[self._marker_t < now]

    def _apply_schedule(self, t_ps: int) -> None:
        """Move the focus along the raster up to time t_ps (pixel by pixel, for the dose)."""
        while self._sched_i < self._sched_t.size and self._sched_t[self._sched_i] <= t_ps:
            i = self._sched_i
            self.focus_um = self._sched_xyz[i].copy()
            self.piezo.command(self.focus_um, int(self._sched_t[i]))
            self._sched_i += 1
            self._changed(int(self._sched_t[i]))

    def _next_scheduled(self, t_ps: int) -> int | None:
        if self._sched_i < self._sched_t.size:
            return int(self._sched_t[self._sched_i])
        return None

    def focus_at(self, t_ps: int | None = None) -> np.ndarray:
        """Where the focus is at t (default now), including a running raster."""
        t = self.clock.now_ps() if t_ps is None else t_ps
        if self._sched_t.size and t >= self._sched_t[0]:
            i = int(np.searchsorted(self._sched_t, t, side="right")) - 1
            return self._sched_xyz[i].copy()
        return self.focus_um.copy()

    def move_focus(self, x_um: float, y_um: float, z_um: float) -> None:
        self._log("move_focus", x_um=x_um, y_um=y_um, z_um=z_um)
        self.changing()
        if self._sched_t.size:  # a move after (or during) a raster ends the raster's hold
            self._apply_schedule(self.clock.now_ps())
            self._sched_t = self._sched_t[:0]
            self._sched_i = 0
        self.focus_um = np.array([x_um, y_um, z_um], dtype=float)
        self.piezo.command(self.focus_um, self.clock.now_ps())
        self._changed()

    def actual_focus_um(self, t_ps: int | None = None) -> np.ndarray:
        """Where the focus really is (open-loop piezo: hysteresis and creep), µm."""
        t = self.clock.now_ps() if t_ps is None else t_ps
        return self.piezo.actual(t)

    def set_sync_enabled(self, enabled: bool) -> None:
        self._log("set_sync_enabled", enabled=enabled)
        if enabled != self.sync_enabled:
            self.changing()
            self.sync_enabled = enabled

    def set_sync_divider(self, divider: int) -> None:
        """Make a sync tag for every ``divider``-th laser pulse only, the first being the next
        pulse from now (the tagger's event divider on the sync channel, applied where the
        syncs are generated rather than by dropping them one by one)."""
        self.changing()
        self.sync_divider = max(int(divider), 1)
        now = self.clock.now_ps()
        self.sync_phase_k = self._pulse_range(now, now + 1)[0] % self.sync_divider

    # ------------------------------------------------------------------ optics
    def _detector_split(self) -> np.ndarray:
        """Probability that a collected photon is detected by each detector."""
        split = self.optics.split_ratio
        n = len(self.detectors)
        weights = [split, 1.0 - split] if n == 2 else [1.0 / n] * n
        return np.array([w * d.efficiency for w, d in zip(weights, self.detectors, strict=True)])

    @property
    def detection_efficiency(self) -> float:
        """eta: probability that an emitted photon at the focus centre gives a click."""
        return self.optics.collection_efficiency * float(self._eta_split.sum())

    def _spectral_routing(self) -> tuple[np.ndarray, np.ndarray]:
        """Per emitter: cumulative routing probabilities to the detectors and the fraction of
        its collected photons any detector sees, from split, efficiencies and filter bands."""
        from hbtscope.drivers_sim.render import band_fraction

        n_em = len(self.emitters)
        w = np.tile(self._eta_split, (n_em, 1))
        for j, d in enumerate(self.detectors):
            if d.band_nm is not None:
                for i, e in enumerate(self.emitters):
                    w[i, j] *= band_fraction(e.cew_nm, e.fwhm_nm, e.tail, tuple(d.band_nm))
        total = w.sum(axis=1)
        safe = np.where(total > 0, total, 1.0)
        cum = np.cumsum(w / safe[:, None], axis=1)
        cum[:, -1] = 1.0
        return cum, total / self._eta_split.sum()

    def drift_um(self, t_ps: int | None = None) -> np.ndarray:
        """Displacement of the sample since t = 0 (slow thermal drift), µm."""
        t = self.clock.now_ps() if t_ps is None else t_ps
        return self.drift_velocity_um_s * (t * 1e-12)

    def _collection(self, d: np.ndarray, t_ps: int | None) -> np.ndarray:
        """Collection weight of emitters at offsets ``d`` (µm) from the focus: the confocal
        collection spot (pinhole / fibre core imaged at the emission wavelength), by default
        as wide as the excitation spot, wider with ``optics.collection_w_xy_um``; times each
        emitter's photobrightening state (PL relative to fully brightened, by its dose)."""
        o = self.optics
        w_xy = o.collection_w_xy_um or o.psf_w_xy_um
        w_z = o.psf_w_z_um * w_xy / o.psf_w_xy_um
        coll = physics.focus_weight(d[:, 0], d[:, 1], d[:, 2], w_xy, w_z)
        if self._brightening:
            t = self.clock.now_ps() if t_ps is None else t_ps
            b = np.ones(len(self.emitters))  # brightness() is 1 without brightening
            for j in self._brightening_idx:
                if coll[j] != 0.0:  # (the others' weight is 0 whatever their brightness)
                    b[j] = self.emitters[j].brightness(self.dynamics[j].dose_at(t))
            coll = coll * b
        return coll

    def _excitation(self, t_ps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(<N> per pulse, detection efficiency) for every emitter under current conditions.

        CW: <N> is the mean number absorbed per excited-state lifetime-free "period" of 1 s,
        i.e. the absorption rate k_exc = sigma Phi in 1/s (see :meth:`_cw_rates`).
        """
        n = len(self.emitters)
        if n == 0 or not self.laser.on or self.laser.power_W <= 0:
            return np.zeros(n), np.zeros(n)
        if self.laser.cw:
            return self._cw_rates(t_ps)
        o = self.optics
        d = self._em_xyz + self.drift_um(t_ps) - self.actual_focus_um(t_ps)
        weight = physics.focus_weight(d[:, 0], d[:, 1], d[:, 2], o.psf_w_xy_um, o.psf_w_z_um)
        fluence = physics.peak_fluence_per_cm2(
            self.laser.power_W, self.laser.rep_rate_Hz, self.laser.wavelength_nm, o.psf_w_xy_um
        )
        coll = self._collection(d, t_ps)
        eta = self.detection_efficiency * coll * self._band_factor * self._detection_factor()
        return self._sigma * fluence * weight, eta

    def _cw_rates(self, t_ps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """CW: absorption rate k_exc = sigma Phi (1/s) at each emitter, detection efficiency.

        Phi = 2 P / (h nu pi w^2) * exp(-2 r^2/w^2) photons per cm² and second.
        """
        o = self.optics
        d = self._em_xyz + self.drift_um(t_ps) - self.actual_focus_um(t_ps)
        weight = physics.focus_weight(d[:, 0], d[:, 1], d[:, 2], o.psf_w_xy_um, o.psf_w_z_um)
        w_cm = o.psf_w_xy_um * 1e-4
        flux = 2.0 * self.laser.power_W / physics.photon_energy_J(self.laser.wavelength_nm)
        flux /= math.pi * w_cm * w_cm
        coll = self._collection(d, t_ps)
        eta = self.detection_efficiency * coll * self._band_factor * self._detection_factor()
        return self._sigma * flux * weight, eta

    def _emitter_cw(self, rng, i: int, k_exc: float, eta: float, a_ps: int, b_ps: int):
        """Detected photons of emitter i under CW excitation over [a, b).

        The G <-> X <-> XX chain of ``physics`` (Baronnier et al., far below
        saturation: g2 = 1 - exp(-|tau| (k_exc + 1/tau_x)); at higher k_exc a second exciton
        is absorbed while the first lives). Every visit to X lasts Exp(gamma + k) and ends
        either in G (w.p. g = gamma/(gamma + k): X photon detected w.p. a, then a wait
        Exp(k) in G) or in XX (a lifetime Exp(tau_xx), XX photon detected w.p. b, back in
        X). Visits are independent, so between two detections there are K ~ Geom(pi) - 1
        undetected visits (pi = g a + (1 - g) b), K_G ~ Binomial(K, g (1 - a)/(1 - pi)) of
        them through G; the gap is exactly Gamma(K + 1, 1/(gamma + k)) +
        Gamma(K_G + [previous photon was X], 1/k) + Gamma(K - K_G + [this one is XX], tau_xx).
        Blinking thins detections to the state's QY at each detection time; the cycle uses
        the bright lifetime (grey-state antibunching is approximated).
        """
        e = self.emitters[i]
        times, states = self.dynamics[i].path(a_ps, b_ps, self._piece_seed(_PATH, i, a_ps))
        self._paths_ahead.add(i)
        qy, _ = e.state_qy_tau()
        qy4 = np.append(qy, 0.0)
        qy_max = float(qy4[np.unique(states)].max())
        empty = np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)
        t_last = self._cw_last.get(i, a_ps)
        prev_xx = self._cw_last_xx.get(i, False)
        if t_last < a_ps - int(1e6 * e.tau_x_ns):  # long pause: restart from the ground state
            t_last, prev_xx = a_ps - int(1e6 * e.tau_x_ns), False
        if qy_max <= 0 or k_exc <= 0:
            self._cw_last[i], self._cw_last_xx[i] = b_ps, False
            return empty
        a = qy_max * eta
        b = min(1.0, a * e.qy_xx / e.qy_x)
        k = k_exc * 1e-12  # per ps
        gamma = 1.0 / (e.tau_x_ns * 1e3)
        tau_xx = e.tau_xx_ns * 1e3
        g = gamma / (gamma + k)
        pi = g * a + (1.0 - g) * b
        p_g_undet = g * (1.0 - a) / (1.0 - pi) if pi < 1.0 else 0.0
        mean_gap = (1.0 / (gamma + k) + g / k + (1.0 - g) * tau_xx) / pi
        out, kinds = [], []
        t = float(t_last)
        while t < b_ps:
            n = int((b_ps - t) / mean_gap * 1.1) + 16
            undet = rng.geometric(pi, n) - 1
            via_g = rng.binomial(undet, p_g_undet)
            is_xx = rng.random(n) >= g * a / pi
            prev = np.concatenate([[prev_xx], is_xx[:-1]])
            gaps = (
                rng.gamma(undet + 1, 1.0 / (gamma + k))
                + rng.gamma(via_g + ~prev, 1.0 / k)
                + rng.gamma(undet - via_g + is_xx, tau_xx)
            )
            tt = t + np.cumsum(gaps)
            inside = tt < b_ps
            out.append(tt[inside])
            kinds.append(is_xx[inside])
            if inside.all():
                t, prev_xx = float(tt[-1]), bool(is_xx[-1])
            else:
                break
        det_t = np.concatenate(out)
        kind = np.concatenate(kinds)
        if det_t.size:
            self._cw_last[i], self._cw_last_xx[i] = int(det_t[-1]), bool(kind[-1])
        sel = det_t >= a_ps
        det_t = det_t[sel]
        st = states[np.searchsorted(times, det_t, side="right") - 1]
        keep = rng.random(det_t.size) < qy4[st] / qy_max
        det_t = np.round(det_t[keep]).astype(np.int64)
        return self._route_jitter(rng, det_t, self._route_cum[i])

    def _local_rate_cps(self, i: int, k_exc: float, eta: float) -> float:
        """Detected rate of the uncorrelated matrix light around emitter i (CW)."""
        e = self.emitters[i]
        if e.local_background_ratio <= 0 or k_exc <= 0:
            return 0.0
        tx, txx = e.tau_x_ns * 1e-9, e.tau_xx_ns * 1e-9
        own = physics.cw_detected_rate(k_exc, tx, txx, e.qy_x, e.qy_xx, eta)
        return e.local_background_ratio * own

    def _local_background(self, rng, i: int, k_exc: float, eta: float, a_ps: int, b_ps: int):
        """Poisson photons of the matrix light around emitter i over [a, b), in its band."""
        rate = self._local_rate_cps(i, float(k_exc), float(eta))
        n = rng.poisson(rate * (b_ps - a_ps) * 1e-12)
        t = np.sort(rng.integers(a_ps, b_ps, n)) if n else np.empty(0, np.int64)
        return self._route_jitter(rng, t, self._route_cum[i])

    def _route_jitter(self, rng, t_emit: np.ndarray, route_cum: np.ndarray | None = None):
        """Detector, delay and jitter of photons emitted at ``t_emit`` (their own origin)."""
        if route_cum is None:
            route_cum = np.cumsum(self._eta_split / self._eta_split.sum())
        det = np.searchsorted(route_cum[:-1], rng.random(t_emit.size), side="right")
        jit = np.array([d.jitter_fwhm_ps / FWHM_PER_SIGMA for d in self.detectors])
        dly = np.array([d.delay_ps for d in self.detectors], np.float64)
        t = t_emit + np.maximum(dly[det] + jit[det] * rng.standard_normal(t_emit.size), 0.0)
        return np.round(t).astype(np.int64), det.astype(np.int64), t_emit

    # ------------------------------------------------------------------ generation
    def _rng(self, start_ps: int) -> np.random.Generator:
        """The generator of the piece starting at ``start_ps``: PCG64 with its 128-bit state
        and increment hashed from (seed, start) -- one reused bit generator, re-seeded."""
        h0 = _hash_words(self.seed, _PIECE, start_ps)
        h = [h0, _splitmix64(h0 ^ 1), _splitmix64(h0 ^ 2), _splitmix64(h0 ^ 3)]
        self._piece_bits.state = {
            "bit_generator": "PCG64",
            "state": {"state": (h[0] << 64) | h[1], "inc": ((h[2] << 64) | h[3]) | 1},
            "has_uint32": 0,
            "uinteger": 0,
        }
        return self._piece_rng

    def _pulse_range(self, a_ps: int, b_ps: int) -> tuple[int, int]:
        """Pulse indices k with a <= phase + k T < b."""
        period = self.laser.period_ps
        k0 = math.ceil((a_ps - self.laser.phase_ps) / period)
        k1 = math.ceil((b_ps - self.laser.phase_ps) / period)
        return max(k0, 0), max(k1, 0)

    def _pulse_times(self, k: np.ndarray) -> np.ndarray:
        return self.laser.phase_ps + np.round(k * self.laser.period_ps).astype(np.int64)

    def _photons(
        self, rng, k0, k1, q, path_t, path_s, cum, p_rung, tau_ps, route_cum, jitter, delay
    ):
        """Photons of the pulses in [k0, k1) with at least one click each with probability
        ``q``, through the ladder kernel (thinned: only those pulses cost anything)."""
        if k1 <= k0 or q <= 0:
            return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)
        n = (k1 - k0) * min(q, 1.0)
        cap = int(1.2 * n + 6 * math.sqrt(n)) + 64  # rarely not enough: then more calls
        block = cum[:, _BLOCK_END]
        state = rng_state(int(rng.integers(2**63)))  # the kernel's own generator
        parts = []
        k, done = k0 - 1, False
        while not done:
            out = np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap, np.int64)
            m, k, done = pulsed_photons(
                state,
                k,
                k1,
                q,
                path_t,
                path_s,
                cum,
                block,
                _TOP,
                _FIRST,
                p_rung,
                tau_ps,
                self.laser.phase_ps,
                self.laser.period_ps,
                route_cum,
                jitter,
                delay,
                *out,
            )
            parts.append(tuple(a[:m] for a in out))
        if len(parts) == 1:
            return parts[0]
        return tuple(np.concatenate(a) for a in zip(*parts, strict=True))

    def _ladder_tables(self, i: int, n_e: float, eta_e: float):
        """Per blinking state (bright, grey, off, bleached): rung click probabilities, rung
        lifetimes (ps) and the outcome-class probabilities of a pulse (physics module doc).
        A state scales every rung's QY by its own QY over qy_x; rung 1 has the state's
        lifetime, the rungs above the biexciton ladder's."""
        cached = self._ladder.get(i)
        if cached is not None and cached[0] == (n_e, eta_e):
            return cached[1]
        const = self._ladder_const.get(i)
        if const is None:  # what does not depend on the excitation
            e = self.emitters[i]
            qy, tau = e.state_qy_tau()
            qy_n = physics.ladder_qy(e.qy_x, e.qy_xx)
            tau_n = physics.ladder_tau(e.tau_x_ns, e.tau_xx_ns, e.qy_x, e.qy_xx) * 1e3
            tau_ps = np.tile(tau_n, (4, 1))
            tau_ps[:3, 0] = tau
            const = self._ladder_const[i] = ((qy / e.qy_x)[:, None] * qy_n[None, :], tau_ps)
        rel, tau_ps = const
        p_rung = np.zeros((4, physics.N_MAX))
        p_rung[:3] = rel * eta_e
        probs = np.zeros((4, _TOP.size))
        # physics.ladder_outcomes(n_e, p_rung[:3]), without its dozen numpy calls
        g = np.append(physics.rung_occupation(n_e, physics.N_MAX), 0.0)
        ladder_class_probs(np.maximum(g[:-1] - g[1:], 0.0), p_rung[:3], _TOP, _FIRST, probs)
        self._ladder[i] = ((n_e, eta_e), (p_rung, tau_ps, probs))
        return p_rung, tau_ps, probs

    def _emitter_pulses(self, rng, i, n_e, eta_e, a_ps, b_ps, k0, k1, route_cum, jitter, delay):
        """Detected photons of emitter i over [a, b): blinking path, then thinned pulses."""
        times, states = self.dynamics[i].path(a_ps, b_ps, self._piece_seed(_PATH, i, a_ps))
        self._paths_ahead.add(i)
        if self.record_paths:
            self.recorded_paths.setdefault(i, []).append((times, states))
        p_rung, tau_ps, probs = self._ladder_tables(i, n_e, eta_e)
        cum = np.cumsum(probs, axis=1)
        q_state = cum[:, -1]
        q_max = float(q_state[states[0]] if states.size == 1 else q_state[states].max())
        if q_max <= 0:
            return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)
        cum /= q_max
        return self._photons(
            rng,
            k0,
            k1,
            q_max,
            times,
            states,
            cum,
            p_rung,
            tau_ps,
            self._route_cum[i],
            jitter,
            delay,
        )

    def _background_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """Substrate background through the ladder kernel: one rung of the substrate
        lifetime, and per detector i a routing that sends every photon to i."""
        tau_bg = self.spec.sample.substrate_lifetime_ns * 1e3
        if self._bg_tables is None or self._bg_tables[0] != tau_bg:
            n = len(self.detectors)
            only = np.triu(np.ones((n, n)))  # row i: 0 before i, 1 from i on
            self._bg_tables = (tau_bg, np.full((1, physics.N_MAX), tau_bg), only)
        return self._bg_tables[1], self._bg_tables[2]

    def _generate_piece(self, a_ps: int, b_ps: int) -> None:
        rng = self._rng(a_ps)
        channels = self._det_channels
        laser_on = self.laser.on and self.laser.power_W > 0
        pulsed = self.laser.on and not self.laser.cw
        k0, k1 = self._pulse_range(a_ps, b_ps) if pulsed else (0, 0)
        ts_list, ch_list, or_list = [], [], []
        route = self._route
        route_cum = self._route_all
        jitter, delay = self._det_jitter, self._det_delay
        tail_f, tail_ps = self._det_tail_f, self._det_tail_ps
        tail = bool(tail_f.any())

        def add(ts, det, origin):
            if ts.size:
                if tail:  # SPAD diffusion tail of the timing response (IRF)
                    slow = rng.random(ts.size) < tail_f[det]
                    ts = ts + np.where(
                        slow, np.round(rng.exponential(1.0, ts.size) * tail_ps[det]), 0
                    ).astype(np.int64)
                ts_list.append(ts)
                ch_list.append(channels[det])
                or_list.append(origin)

        if self.drift_velocity_um_s.any():
            self._changed(a_ps)  # the sample moved since the last piece
        if laser_on and self.laser.cw:
            k_exc, eta = self._cw_rates(a_ps)
            for i in np.flatnonzero(k_exc * eta >= 1e-3):
                add(*self._emitter_cw(rng, int(i), float(k_exc[i]), float(eta[i]), a_ps, b_ps))
                if self.emitters[i].local_background_ratio > 0:
                    add(*self._local_background(rng, int(i), k_exc[i], eta[i], a_ps, b_ps))
            bg_cps = self.spec.sample.substrate_background_cps_per_W * self.laser.power_W
            bg_cps *= self.light_path == "spads"
            n_bg = rng.poisson(bg_cps * (b_ps - a_ps) * 1e-12)
            if n_bg:
                add(*self._route_jitter(rng, np.sort(rng.integers(a_ps, b_ps, n_bg))))
        elif laser_on and k1 > k0:
            mean_n, eta = self._excitation(a_ps)
            for i in np.flatnonzero(mean_n * eta >= 1e-12):
                add(
                    *self._emitter_pulses(
                        rng,
                        int(i),
                        float(mean_n[i]),
                        float(eta[i]),
                        a_ps,
                        b_ps,
                        k0,
                        k1,
                        route_cum,
                        jitter,
                        delay,
                    )
                )

            # substrate background: Poisson light per pulse, independently per detector
            # (more than one photon per pulse on one SPAD is lost in its dead time anyway)
            bg_cps = self.spec.sample.substrate_background_cps_per_W * self.laser.power_W
            bg_cps *= self.light_path == "spads"
            if bg_cps > 0:
                tau_bg, only = self._background_tables()
                for i, f in enumerate(route):
                    q = -math.expm1(-bg_cps * f / self.laser.rep_rate_Hz)
                    add(
                        *self._photons(
                            rng,
                            k0,
                            k1,
                            q,
                            _PATH0,
                            _ST0,
                            _CUM1,
                            _P_RUNG1,
                            tau_bg,
                            only[i],
                            jitter,
                            delay,
                        )
                    )

        # dark counts: a uniform Poisson process per detector
        n_dark = rng.poisson(self._det_dark_cps * ((b_ps - a_ps) / PS_PER_S))
        n_all = int(n_dark.sum())
        if n_all:
            td = rng.integers(a_ps, b_ps, n_all, dtype=np.int64)
            ts_list.append(td)
            ch_list.append(np.repeat(channels, n_dark))
            or_list.append(td)

        if self._marker_t.size:
            lo, hi = np.searchsorted(self._marker_t, [a_ps, b_ps], side="left")
            if hi > lo:
                tm = self._marker_t[lo:hi]
                ts_list.append(tm)
                ch_list.append(np.full(tm.size, self._marker_channel, np.int16))
                or_list.append(tm)

        if self.sync_enabled and k1 > k0:
            n = self.sync_divider
            ks = np.arange(k0 + (self.sync_phase_k - k0) % n, k1, n, dtype=np.int64)
            tsync = self._pulse_times(ks) + self.sync_delay_ps
            ts_list.append(tsync)
            ch_list.append(np.full(tsync.size, self.sync_channel, np.int16))
            or_list.append(tsync - self.sync_delay_ps)

        if not ts_list:
            return
        ts = np.concatenate(ts_list) if len(ts_list) > 1 else ts_list[0]
        ch = np.concatenate(ch_list) if len(ch_list) > 1 else ch_list[0]
        origin = np.concatenate(or_list) if len(or_list) > 1 else or_list[0]
        parts = self._new_parts
        parts.append((ts, ch, origin))
        if self._xt_on:  # breakdown flashes of this piece's clicks
            xt_t, xt_c = crosstalk_clicks(
                rng, ts, ch, self._xt_prob, self._xt_target, self._xt_shift, self._xt_jitter
            )
            if xt_t.size:
                parts.append((xt_t, xt_c, xt_t))

    def _ensure_generated(self, t_ps: int) -> None:
        # the pieces' clicks are collected and joined to the pending ones once at the end
        # (joining per piece is quadratic when a raster makes one piece per pixel)
        self._new_parts = []
        while self._generated_until_ps < t_ps:
            a = self._generated_until_ps
            self._apply_schedule(a)
            b = (a // self.slice_ps + 1) * self.slice_ps
            nxt = self._next_scheduled(a)
            if nxt is not None and nxt < b:
                b = nxt  # conditions change at the next pixel
            self._generate_piece(a, b)
            self._generated_until_ps = b
        if self._new_parts:
            parts = [(self._pending_ts, self._pending_ch, self._pending_origin), *self._new_parts]
            self._pending_ts = np.concatenate([p[0] for p in parts])
            self._pending_ch = np.concatenate([p[1] for p in parts])
            self._pending_origin = np.concatenate([p[2] for p in parts])
        self._new_parts = []

    def clicks_until(self, t_ps: int) -> tuple[np.ndarray, np.ndarray]:
        """All detector (and sync) clicks with time < t_ps not returned before, time-ordered.

        Timestamps int64 ps, channels int16 (tagger channel numbers). Dead time applied.
        """
        if t_ps <= self._released_until_ps:
            return np.empty(0, np.int64), np.empty(0, np.int16)
        self._ensure_generated(t_ps)
        order = np.argsort(self._pending_ts, kind="stable")
        if not self._ap_on and self._ap_n == 0:  # no afterpulsing: the fast path
            out_ts, out_ch, *pending = release_clicks(
                order,
                self._pending_ts,
                self._pending_ch,
                self._pending_origin,
                t_ps,
                self._dead_ps,
                self._last_kept,
            )
            self._pending_ts, self._pending_ch, self._pending_origin = pending
            self._released_until_ps = t_ps
            return out_ts, out_ch
        ts = self._pending_ts[order]
        ch = self._pending_ch[order]
        origin = self._pending_origin[order]
        cut = int(np.searchsorted(ts, t_ps, side="left"))
        out_ts, out_ch = ts[:cut], ch[:cut]
        self._pending_ts, self._pending_ch, self._pending_origin = ts[cut:], ch[cut:], origin[cut:]
        self._released_until_ps = t_ps
        ts_k, ch_k, self._ap_t, self._ap_c, self._ap_n = spad_clicks(
            out_ts,
            out_ch.astype(np.int64),
            t_ps,
            self._dead_ps,
            self._ap_prob,
            self._ap_tau_ps,
            self._last_kept,
            self._ap_t,
            self._ap_c,
            self._ap_n,
            self._ap_seed,
        )
        return ts_k, ch_k.astype(np.int16)

    def irf(self, detector: int, bin_ps: float, n_bins: int) -> np.ndarray:
        """The true timing response (IRF) of a detector relative to the laser pulse, on bins
        [k bin, (k+1) bin) from 0: Gaussian jitter (FWHM) around the detector delay, with a
        fraction of the events delayed by an exponential diffusion tail. Sums to 1."""
        from scipy.stats import exponnorm, norm

        d = self.detectors[detector]
        sigma = max(d.jitter_fwhm_ps / FWHM_PER_SIGMA, 1e-3)
        edges = np.arange(n_bins + 1) * bin_ps
        # exact bin integrals: Gaussian, and Gaussian (x) exponential (ex-Gaussian) for the tail
        fast = np.diff(norm.cdf(edges, loc=d.delay_ps, scale=sigma))
        k = d.jitter_tail_ps / sigma
        slow = np.diff(exponnorm.cdf(edges, k, loc=d.delay_ps, scale=sigma))
        f = d.jitter_tail_fraction
        hist = (1 - f) * fast + f * slow
        return hist / hist.sum()

    def record(self, seconds: float, step_s: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
        """Let ``seconds`` pass on the clock and return every click meanwhile (time-ordered
        int64 ps, int16 channels), read in ``step_s`` slices — the detectors without a
        tagger, for notebooks and physics checks."""
        ts, ch = [], []
        end = self.clock.now_ps() + int(round(seconds * PS_PER_S))
        while self.clock.now_ps() < end:
            self.clock.advance_to_ps(min(end, self.clock.now_ps() + int(step_s * PS_PER_S)))
            t, c = self.clicks_until(self.clock.now_ps())
            ts.append(t)
            ch.append(c)
        if not ts:
            return np.empty(0, np.int64), np.empty(0, np.int16)
        return np.concatenate(ts), np.concatenate(ch)

    def skip_until(self, t_ps: int) -> None:
        """Nobody is listening: forget everything before t_ps without generating it."""
        if t_ps <= self._released_until_ps:
            return
        due = self._ap_t[: self._ap_n] >= t_ps  # afterpulses of the skipped time are lost too
        kept_t, kept_c = self._ap_t[: self._ap_n][due], self._ap_c[: self._ap_n][due]
        order = np.argsort(kept_t)  # a sorted array is a valid min-heap
        self._ap_n = kept_t.size
        self._ap_t = np.concatenate([kept_t[order], np.empty(64, np.int64)])
        self._ap_c = np.concatenate([kept_c[order], np.empty(64, np.int64)])
        keep = self._pending_ts >= t_ps
        self._pending_ts = self._pending_ts[keep]
        self._pending_ch = self._pending_ch[keep]
        self._pending_origin = self._pending_origin[keep]
        self._released_until_ps = t_ps
        self._apply_schedule(t_ps)
        self._generated_until_ps = max(self._generated_until_ps, t_ps)

    # ------------------------------------------------------------------ imaging
    def state_at(self, i: int, t_ps: np.ndarray) -> np.ndarray:
        """Recorded blinking state of emitter i at times t_ps (needs ``record_paths``)."""
        pieces = self.recorded_paths.get(i, [])
        times = np.concatenate([p[0] for p in pieces]) if pieces else np.zeros(1, np.int64)
        states = np.concatenate([p[1] for p in pieces]) if pieces else np.zeros(1, np.int64)
        return states[np.clip(np.searchsorted(times, t_ps, side="right") - 1, 0, None)]

    def mean_qy_over(self, i: int, a_ps: int, b_ps: int) -> float:
        """Time-averaged QY of emitter i over [a, b): its blinking path, 0 once bleached."""
        times, states = self.dynamics[i].path(a_ps, b_ps, self._piece_seed(_PATH, i, a_ps))
        qy, _ = self.emitters[i].state_qy_tau()
        qy4 = np.append(qy, 0.0)
        durations = np.diff(np.append(times, b_ps)).astype(float)
        return float((durations * qy4[states]).sum() / max(b_ps - a_ps, 1))

    def widefield_emission(self, a_ps: int, b_ps: int, x_range_um, y_range_um):
        """Emitters in a field of view under the LED over [a, b): positions (with drift) and
        emitted photons per second (below saturation: sigma Phi QY, blinking-averaged)."""
        d = self.drift_um(a_ps)
        x = self._em_xyz[:, 0] + d[0]
        y = self._em_xyz[:, 1] + d[1]
        margin = 2.0
        inside = np.flatnonzero(
            (x > x_range_um[0] - margin)
            & (x < x_range_um[1] + margin)
            & (y > y_range_um[0] - margin)
            & (y < y_range_um[1] + margin)
        )
        rates = np.zeros(inside.size)
        if self.led.on and self.led.intensity_W_cm2 > 0:
            flux = self.led.intensity_W_cm2 / physics.photon_energy_J(self.led.wavelength_nm)
            for n, i in enumerate(inside):
                k = self._sigma[i] * flux
                gamma = 1e9 / self._tau_x_ns[i]
                rates[n] = k * gamma / (k + gamma) * self.mean_qy_over(int(i), a_ps, b_ps)
                rates[n] *= self.emitters[i].brightness(self.dynamics[i].dose_at(a_ps))
        return x[inside], y[inside], rates

    def widefield_truth(self, x_range_um, y_range_um) -> dict[str, Any]:
        """Truth of the emitters inside a wide-field view now: world index, species, position
        on the sample (with its drift), and bleaching time in ps (``inf``: not bleached and not
        due to bleach under the present illumination). An emitter is bleached at ``t`` when
        ``t >= bleach_time_ps``; times up to now are facts of the run."""
        d = self.drift_um()
        x = self._em_xyz[:, 0] + d[0] if len(self.emitters) else np.zeros(0)
        y = self._em_xyz[:, 1] + d[1] if len(self.emitters) else np.zeros(0)
        inside = np.flatnonzero(
            (x >= x_range_um[0]) & (x < x_range_um[1]) & (y >= y_range_um[0]) & (y < y_range_um[1])
        )
        bleach = [self.dynamics[i].bleach_time_ps for i in inside]
        return {
            "index": inside.astype(np.int64),
            "species": [self.emitters[i].species for i in inside],
            "x_um": x[inside].astype(float),
            "y_um": y[inside].astype(float),
            "bleach_time_ps": np.array([math.inf if b is None else float(b) for b in bleach]),
        }

    def spectrum_components(self, a_ps: int, b_ps: int) -> list[tuple[float, float, float, float]]:
        """(photons/s collected, CEW nm, FWHM nm, tail) of the emitters at the focus over
        [a, b), when the flip mirror sends the light to the spectrometer."""
        if self.light_path != "spectrometer" or not self.laser.on:
            return []
        if self.laser.cw:
            k_exc, _ = self._cw_rates(a_ps)
            per_s = [
                k * (1e9 / t) / (k + 1e9 / t) for k, t in zip(k_exc, self._tau_x_ns, strict=True)
            ]
        else:
            mean_n, _ = self._excitation(a_ps)
            per_s = list(-np.expm1(-mean_n) * self.laser.rep_rate_Hz)
        d = self._em_xyz + self.drift_um(a_ps) - self.actual_focus_um(a_ps)
        coll = self.optics.collection_efficiency * self._collection(d, a_ps)
        out = []
        for i, e in enumerate(self.emitters):
            rate = per_s[i] * coll[i]
            if rate * (b_ps - a_ps) * 1e-12 < 1.0:
                continue
            rate *= self.mean_qy_over(i, a_ps, b_ps)
            out.append((rate, self.dynamics[i].cew_at(a_ps), e.fwhm_nm, e.tail))
        return out

    # ------------------------------------------------------------------ truth
    def saturation_power_W(self, emitter: Emitter) -> float:
        o = self.optics
        return physics.saturation_power_W(
            emitter.sigma_abs_cm2, self.laser.rep_rate_Hz, self.laser.wavelength_nm, o.psf_w_xy_um
        )

    def emitters_near(self, x_um: float, y_um: float, radius_um: float) -> list[Emitter]:
        if not self.emitters:
            return []
        d2 = (self._em_xyz[:, 0] - x_um) ** 2 + (self._em_xyz[:, 1] - y_um) ** 2
        return [self.emitters[i] for i in np.flatnonzero(d2 <= radius_um**2)]

    def truth_at_focus(self) -> dict[str, Any]:
        """What an ideal measurement at the current focus and laser settings would find.

        Rates and g2(0) are those of the bright state (the emitters' blinking-averaged rates
        are ``emitter_rate_avg_cps``); pulsed g2(0) is E[m(m-1)]/E[m]^2 of the spot (the
        multi-exciton ladder, ``physics``), CW g2(0) that of independent G-X-XX emitters
        (``physics.cw_g2_zero`` for one) mixed with Poisson background.
        """
        if self.laser.cw:
            return self._truth_cw()
        mean_n, eta = self._excitation()
        f = self.laser.rep_rate_Hz
        means, pairs, contributing = [], [], []
        for e, n_e, eta_e in zip(self.emitters, mean_n, eta, strict=True):
            m = physics.mean_detected_per_pulse(n_e, e.qy_x, e.qy_xx, eta_e)
            if m * f < 1.0:  # less than one count per second: not part of this spot
                continue
            means.append(m)
            pairs.append(physics.detected_pairs_per_pulse(n_e, e.qy_x, e.qy_xx, eta_e))
            contributing.append((e, n_e, m))
        on = self.laser.on and self.laser.power_W > 0
        bg_per_pulse = (
            self.spec.sample.substrate_background_cps_per_W * self.laser.power_W / f if on else 0.0
        )
        truth = self._truth_header([c[0] for c in contributing], sum(means) * f, bg_per_pulse * f)
        truth["rep_rate_Hz"] = float(f)
        truth["mean_excitons_per_pulse"] = [float(c[1]) for c in contributing]
        truth["g2_0"] = physics.g2_zero_mixture(means, pairs) if means else float("nan")
        truth["g2_0_with_background"] = (
            physics.g2_zero_mixture(means, pairs, bg_per_pulse)
            if (means or bg_per_pulse > 0)
            else float("nan")
        )
        if contributing:
            brightest = max(contributing, key=lambda c: c[2])[0]
            truth["tau_x_ns"] = brightest.tau_x_ns
            truth["tau_xx_ns"] = brightest.tau_xx_ns
            truth["qy_x"] = brightest.qy_x
            truth["qy_xx"] = brightest.qy_xx
            truth["P_sat_W"] = self.saturation_power_W(brightest)
            truth["g2_0_low_power"] = brightest.qy_xx / brightest.qy_x
        truth.update(
            self._truth_emitters([c[0] for c in contributing], [c[2] * f for c in contributing])
        )
        return truth

    def _truth_header(self, emitters: list[Emitter], rate_cps: float, bg_cps: float) -> dict:
        """Where the focus is (with the sample drift) and the rates of the spot."""
        fx, fy, fz = self.focus_at()
        dx, dy, dz = self.drift_um()
        return {
            "focus_x_um": float(fx),
            "focus_y_um": float(fy),
            "focus_z_um": float(fz),
            "drift_x_um": float(dx),
            "drift_y_um": float(dy),
            "laser_on": bool(self.laser.on),
            "laser_power_W": float(self.laser.power_W),
            "n_emitters": len(emitters),
            "emitter_indices": [e.index for e in emitters],
            "emitter_rate_cps": float(rate_cps),
            "background_rate_cps": float(bg_cps),
            "dark_rate_cps": float(sum(d.dark_cps for d in self.detectors)),
        }

    def _truth_emitters(self, emitters: list[Emitter], bright_rates: list[float]) -> dict:
        """Per-emitter truth of the spot: states, spectra, polarisation, dose, bleaching."""
        now = self.clock.now_ps()
        out: dict[str, Any] = {"excitation": "cw" if self.laser.cw else "pulsed"}
        if not emitters:
            return out
        avg = []
        for e, r in zip(emitters, bright_rates, strict=True):
            dyn = self.dynamics[e.index]
            p = e.stationary(float(self._exc_ratio[e.index]))
            qy, _ = e.state_qy_tau()
            avg.append(0.0 if dyn.bleached_at(now) else r * float(p @ qy) / e.qy_x)
        out["emitter_rate_avg_cps"] = float(sum(avg))
        out["species"] = [e.species for e in emitters]
        out["cew_nm"] = [float(self.dynamics[e.index].cew_at(now)) for e in emitters]
        out["fwhm_nm"] = [e.fwhm_nm for e in emitters]
        out["dipole_deg"] = [e.dipole_deg for e in emitters]
        out["dolp"] = [e.dolp for e in emitters]
        out["bleached"] = [bool(self.dynamics[e.index].bleached_at(now)) for e in emitters]
        out["dose_absorbed"] = [float(self.dynamics[e.index].dose_at(now)) for e in emitters]
        out["cluster_size"] = [e.cluster_size for e in emitters]
        # blinking truth (TTTR trace): grey-state lifetime and QY, the stationary time
        # fractions of bright / grey / off at the present excitation, and the blue-shift law
        out["tau_grey_ns"] = [e.tau_grey_ns for e in emitters]
        out["qy_grey"] = [e.qy_grey for e in emitters]
        out["tau_bright_ns"] = [e.tau_x_ns for e in emitters]
        fractions = [e.stationary(float(self._exc_ratio[e.index])) for e in emitters]
        out["fraction_bright"] = [float(p[0]) for p in fractions]
        out["fraction_grey"] = [float(p[1]) for p in fractions]
        out["fraction_off"] = [float(p[2]) for p in fractions]
        out["blueshift_nm_per_exc"] = [e.blueshift_nm_per_exc for e in emitters]
        out["dose_rate_per_s"] = [float(self.dynamics[e.index].dose_rate) for e in emitters]
        return out

    def _truth_cw(self) -> dict[str, Any]:
        k_exc, eta = self._cw_rates() if self.laser.on else (np.zeros(len(self.emitters)),) * 2
        rates, pairs, contributing = [], [], []
        for e, k, eta_e in zip(self.emitters, k_exc, eta, strict=True):
            tx, txx = e.tau_x_ns * 1e-9, e.tau_xx_ns * 1e-9
            r = physics.cw_detected_rate(k, tx, txx, e.qy_x, e.qy_xx, eta_e) if k > 0 else 0.0
            if r >= 1.0:
                rates.append(r)
                pairs.append(r * r * physics.cw_g2_zero(k, tx, txx, e.qy_x, e.qy_xx))
                contributing.append((e, k))
        bg = self.spec.sample.substrate_background_cps_per_W * self.laser.power_W
        bg += sum(
            self._local_rate_cps(i, float(k), float(eta_i))
            for i, (k, eta_i) in enumerate(zip(k_exc, eta, strict=True))
        )
        truth = self._truth_header([c[0] for c in contributing], sum(rates), bg)
        truth |= {
            "g2_0": physics.g2_zero_mixture(rates, pairs) if rates else float("nan"),
            "g2_0_with_background": (
                physics.g2_zero_mixture(rates, pairs, bg) if rates or bg else float("nan")
            ),
        }
        if contributing:
            e, k = max(
                zip([c[0] for c in contributing], [c[1] for c in contributing], strict=True),
                key=lambda c: c[1] * c[0].qy_x,
            )
            truth["cw_tau0_ns"] = 1e9 / (k + 1e9 / e.tau_x_ns)
            truth["tau_x_ns"] = e.tau_x_ns
            truth["k_exc_per_s"] = float(k)
        truth.update(self._truth_emitters([c[0] for c in contributing], rates))
        return truth
