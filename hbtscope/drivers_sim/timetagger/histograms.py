"""Time-difference histograms of the simulated tagger: ``Correlation``, ``Histogram``,
``HistogramLogBins`` and ``TimeDifferences`` (Swabian "time histograms")."""

from __future__ import annotations

import numpy as np

from hbtscope.analysis.correlation import CorrelationAccumulator
from hbtscope.drivers_sim.timetagger import _kernels as _k
from hbtscope.drivers_sim.timetagger.base import _Binned, _Measurement, caught_up
from hbtscope.drivers_sim.timetagger.device import CHANNEL_UNUSED


class Correlation(_Binned):
    """Histogram of tau = t(channel_2) - t(channel_1) over every pair of tags (int32).

    As in the SDK, every tag is both a start and a stop, so positive tau means the
    ``channel_2`` tag came later. Bin i holds tau in ``[-n*bw/2 + i*bw, -n*bw/2 + (i+1)*bw)``
    (left-closed, right-open: tau = -n*bw/2 counts in bin 0, tau = +n*bw/2 in none);
    ``getIndex()`` gives the bin centres, so with an even ``n_bins`` zero delay is the edge
    between the two middle bins. With ``channel_2`` unused it is the autocorrelation of
    ``channel_1``; the simulation then also pairs each tag with itself, so the bin holding
    tau = 0 has one extra count per tag (whether the SDK does is not documented).

    Simplification: pairs that straddle an overflow gap are still counted (both tags are
    real); ``getDataNormalized`` uses the capture time minus the time spent in overflow.

    API completeness: used by no procedure, only by tests.
    """

    def __init__(
        self,
        tagger,
        channel_1: int,
        channel_2: int = CHANNEL_UNUSED,
        binwidth: int = 1000,
        n_bins: int = 1000,
    ):
        self._set_bins(binwidth, n_bins)
        if channel_2 == CHANNEL_UNUSED:
            channel_2 = channel_1
        self._c1, self._c2 = int(channel_1), int(channel_2)
        # bins [-n*bw/2, +n*bw/2): an integer edge needs n*bw even (true for every even n)
        self._half_ps = (self._n_bins * self._binwidth) // 2
        self._acc = CorrelationAccumulator(self._binwidth, self._half_ps)
        self._n1 = self._n2 = 0
        super().__init__(tagger, [self._c1, self._c2])

    def _process(self, ts, ch, t_from, t_to):
        t1, t2 = ts[ch == self._c1], ts[ch == self._c2]
        self._n1 += t1.size
        self._n2 += t2.size
        self._acc.add(t1, t2, t_to)

    def _clear_data(self):
        self._acc = CorrelationAccumulator(self._binwidth, self._half_ps)
        self._n1 = self._n2 = 0

    @caught_up
    def getData(self) -> np.ndarray:  # noqa: N802
        return self._acc.counts[: self._n_bins].astype(np.int32)

    def getIndex(self) -> np.ndarray:  # noqa: N802
        """Bin centres in ps (int64)."""
        i = np.arange(self._n_bins, dtype=np.int64)
        return -self._half_ps + i * self._binwidth + self._binwidth // 2

    @caught_up
    def getDataNormalized(self) -> np.ndarray:  # noqa: N802
        """g2(tau): counts / (r1 r2 binwidth T), the uncorrelated expectation."""
        data = self._acc.counts[: self._n_bins].astype(float)
        t = (self._capture_ps - self._overflow_ps) * 1e-12
        n1, n2 = self._n1, self._n2
        if t <= 0 or n1 == 0 or n2 == 0:
            return np.zeros(self._n_bins)
        return data / (n1 * n2 * self._binwidth * 1e-12 / t)


class Histogram(_Binned):
    """Start-stop histogram: time from the last start click to each click (int32).

    Simplification: each click is paired with the last start only (the SDK pairs it with
    every start in range; identical when the range is shorter than the start period).

    API completeness: used by no procedure, only by tests.
    """

    def __init__(
        self,
        tagger,
        click_channel: int,
        start_channel: int = CHANNEL_UNUSED,
        binwidth: int = 1000,
        n_bins: int = 1000,
    ):
        self._set_bins(binwidth, n_bins)
        self._click, self._start_ch = int(click_channel), int(start_channel)
        self._data = np.zeros(self._n_bins, np.int64)
        self._last_start = np.array([-1], np.int64)
        super().__init__(tagger, [self._click, self._start_ch])

    def _process(self, ts, ch, t_from, t_to):
        if self._start_ch != CHANNEL_UNUSED:
            is_start = ch == self._start_ch
        else:
            is_start = np.zeros(ch.size, bool)
        _k.start_stop(ts, is_start, ch == self._click, self._binwidth, self._data, self._last_start)

    def _overflow_begin(self, t):
        self._last_start[0] = -1

    def _clear_data(self):
        self._data[:] = 0
        self._last_start[0] = -1

    @caught_up
    def getData(self) -> np.ndarray:  # noqa: N802
        return self._data.astype(np.int32)


class HistogramLogBinsData:
    """Return value of ``HistogramLogBins.getDataObject``.

    API completeness: used by no procedure, only by tests.
    """

    def __init__(self, counts, g2_norm, t_start, t_click):
        self._counts = counts
        self._norm = g2_norm
        self.accumulation_time_start = int(t_start)
        self.accumulation_time_click = int(t_click)

    def getCounts(self) -> np.ndarray:  # noqa: N802
        return self._counts.astype(np.uint64)

    def getG2Normalization(self) -> np.ndarray:  # noqa: N802
        """Counts an uncorrelated pair of streams would give in each bin."""
        return self._norm.copy()

    def getG2(self) -> np.ndarray:  # noqa: N802
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self._norm > 0, self._counts / self._norm, np.nan)


class HistogramLogBins(_Measurement):
    """Multiple-start multiple-stop histogram of click - start delays with log-spaced bins
    from 10**exp_start to 10**exp_stop seconds (Swabian ``HistogramLogBins``).

    Every click counts once per earlier start at a delay in ``[edge_i, edge_i+1)``. As in the
    SDK, after a start (or an overflow) clicks are only accepted once the full histogram span
    has passed, so every accepted click sees a complete start history and the counts are
    balanced over all bins. ``getBinEdges()`` gives the n_bins + 1 edges in ps (int64).
    Counts are uint64 as in the SDK. Simplification: no ``click_gate``/``start_gate``; the
    g2 normalisation is ``N_clicks_accepted * (N_starts / T_starts) * bin width``.

    API completeness: used by no procedure, only by tests.
    """

    def __init__(
        self,
        tagger,
        click_channel: int,
        start_channel: int,
        exp_start: float,
        exp_stop: float,
        n_bins: int,
        click_gate=None,
        start_gate=None,
    ):
        if click_gate is not None or start_gate is not None:
            raise NotImplementedError("gated HistogramLogBins is not simulated")
        if exp_start < -12 or exp_stop <= exp_start or int(n_bins) <= 0:
            raise ValueError("need -12 <= exp_start < exp_stop and n_bins > 0")
        self._click, self._start_ch = int(click_channel), int(start_channel)
        edges = np.round(np.logspace(exp_start, exp_stop, int(n_bins) + 1) * 1e12)
        self._edges = np.maximum.accumulate(np.maximum(edges, 1)).astype(np.int64)
        self._span = int(self._edges[-1])
        self._counts = np.zeros(int(n_bins), np.int64)
        self._starts = np.empty(0, np.int64)
        self._accept_from = 0
        self._n_click = self._n_start = 0
        self._t_click = self._t_startacc = 0
        super().__init__(tagger, [self._click, self._start_ch])

    def _on_start(self, t0):
        self._starts = np.empty(0, np.int64)
        self._accept_from = t0 + self._span

    def _overflow_begin(self, t):
        self._starts = np.empty(0, np.int64)

    def _overflow_end(self, t):
        self._accept_from = t + self._span

    def _clear_data(self):
        self._counts[:] = 0
        self._n_click = self._n_start = 0
        self._t_click = self._t_startacc = 0
        self._starts = np.empty(0, np.int64)
        self._accept_from = self._t_fed + self._span

    def _process(self, ts, ch, t_from, t_to):
        if self._in_overflow:
            return
        new_starts = ts[ch == self._start_ch]
        clicks = ts[ch == self._click]
        self._n_start += new_starts.size
        self._t_startacc += t_to - t_from
        starts = np.concatenate([self._starts, new_starts]) if self._starts.size else new_starts
        clicks = clicks[clicks >= self._accept_from]
        if clicks.size and starts.size:
            s = _k.log_bin_sums(clicks, starts, self._edges)
            self._counts += s[:-1] - s[1:]
        self._n_click += clicks.size
        self._t_click += max(0, t_to - max(t_from, self._accept_from))
        self._starts = starts[starts > t_to - self._span]

    def _norm(self) -> np.ndarray:
        widths = np.diff(self._edges).astype(float)
        if self._t_startacc <= 0:
            return np.zeros(widths.size)
        return self._n_click * (self._n_start / self._t_startacc) * widths

    @caught_up
    def getData(self) -> np.ndarray:  # noqa: N802
        return self._counts.astype(np.uint64)

    def getBinEdges(self) -> np.ndarray:  # noqa: N802
        return self._edges.copy()

    @caught_up
    def getDataNormalizedCountsPerPs(self) -> np.ndarray:  # noqa: N802
        return self._counts / np.diff(self._edges).astype(float)

    def getDataNormalizedG2(self) -> np.ndarray:  # noqa: N802
        return self.getDataObject().getG2()

    @caught_up
    def getDataObject(self) -> HistogramLogBinsData:  # noqa: N802
        return HistogramLogBinsData(
            self._counts.copy(), self._norm(), self._t_startacc, self._t_click
        )


class TimeDifferences(_Binned):
    """Start-stop histograms stepped by a marker channel (Swabian ``TimeDifferences``).

    Each click adds one count per earlier start within ``n_bins * binwidth`` (multiple start,
    multiple stop; without a start channel the click channel is the start channel) to the
    histogram of the current index. Without ``next_channel`` there is one index, 0. With it,
    the measurement waits for the first next tag (index -1), then each next tag steps the
    index, wrapping to 0 (a rollover) after the last. With ``sync_channel`` too, it waits
    for a sync (index -2), then for a next; a sync resets the index to waiting-for-next and a
    rollover waits for the next sync. ``getCounts()`` counts rollovers and index resets while
    accumulating; ``setMaxCounts(n)`` stops the measurement when n is reached (``ready()``).
    On an overflow the start history is dropped and, with a sync channel, the index waits for
    the next sync (the SDK's recovery is not documented; this is the simulation's choice).

    API completeness: used by no procedure, only by tests.
    """

    def __init__(
        self,
        tagger,
        click_channel: int,
        start_channel: int = CHANNEL_UNUSED,
        next_channel: int = CHANNEL_UNUSED,
        sync_channel: int = CHANNEL_UNUSED,
        binwidth: int = 1000,
        n_bins: int = 1000,
        n_histograms: int = 1,
    ):
        (self._n_hist,) = self._set_bins(binwidth, n_bins, n_histograms=n_histograms)
        if sync_channel != CHANNEL_UNUSED and next_channel == CHANNEL_UNUSED:
            raise ValueError("sync_channel needs a next_channel")
        self._click = int(click_channel)
        self._start_ch = self._click if start_channel == CHANNEL_UNUSED else int(start_channel)
        self._next, self._sync = int(next_channel), int(sync_channel)
        self._data = np.zeros((self._n_hist, self._n_bins), np.int32)
        self._has_next = next_channel != CHANNEL_UNUSED
        self._has_sync = sync_channel != CHANNEL_UNUSED
        self._st = np.array([self._idle_index(), 0, -1, 0, self._has_next, self._has_sync])
        self._starts = np.empty(0, np.int64)
        chans = [self._click, self._start_ch, self._next, self._sync]
        super().__init__(tagger, chans)
        self._roles = self._role_table(
            [
                (self._click, _k.CLICK),
                (self._start_ch, _k.START),
                (self._next, _k.NEXT),
                (self._sync, _k.SYNC),
            ]
        )

    def _idle_index(self) -> int:
        return -2 if self._has_sync else (-1 if self._has_next else 0)

    def _on_start(self, t0):
        self._st[0] = self._idle_index()
        self._starts = np.empty(0, np.int64)

    def _clear_data(self):
        self._data[:] = 0
        self._st[0] = self._idle_index()
        self._st[1] = 0
        self._starts = np.empty(0, np.int64)

    def _overflow_begin(self, t):
        self._starts = np.empty(0, np.int64)
        if self._has_sync:
            self._st[0] = -2

    def _process(self, ts, ch, t_from, t_to):
        if ts.size == 0:
            return
        role = self._roles[ch]
        new_starts = ts[(role & _k.START) != 0]
        n_old = self._starts.size
        starts = np.concatenate([self._starts, new_starts]) if n_old else new_starts
        self._st[3] = 0
        pos = _k.time_differences(ts, role, starts, n_old, self._binwidth, self._data, self._st)
        self._starts = starts[self._st[3] :]
        self._st[3] = 0
        if pos >= 0:
            self._finished = True

    def _can_finish(self) -> bool:
        return self._st[2] >= 0

    @caught_up
    def getData(self) -> np.ndarray:  # noqa: N802
        """(n_histograms, n_bins) int32."""
        return self._data.copy()

    @caught_up
    def setMaxCounts(self, max_counts: int) -> None:  # noqa: N802
        self._st[2] = int(max_counts)

    @caught_up
    def getCounts(self) -> int:  # noqa: N802
        return int(self._st[1])

    @caught_up
    def getHistogramIndex(self) -> int:  # noqa: N802
        return int(self._st[0])

    @caught_up
    def ready(self) -> bool:
        return bool(self._st[2] >= 0 and self._st[1] >= self._st[2])
