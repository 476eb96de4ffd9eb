"""Counting measurements of the simulated tagger: ``Countrate``, ``Counter`` (with its
``CounterData``) and ``CountBetweenMarkers`` (Swabian "counting")."""

from __future__ import annotations

import numpy as np

from hbtscope.drivers_sim.timetagger import _kernels as _k
from hbtscope.drivers_sim.timetagger.base import _Binned, _Measurement, caught_up
from hbtscope.drivers_sim.timetagger.device import CHANNEL_UNUSED


class Countrate(_Measurement):
    """Average count rate per channel since the start (counts/s, float64)."""

    def __init__(self, tagger, channels: list[int]):
        self._chan_list = [int(c) for c in channels]
        self._counts = np.zeros(len(self._chan_list), np.int64)
        super().__init__(tagger, self._chan_list)

    def _process(self, ts, ch, t_from, t_to):
        for i, c in enumerate(self._chan_list):
            self._counts[i] += int(np.count_nonzero(ch == c))

    def _clear_data(self):
        self._counts[:] = 0

    @caught_up
    def getData(self) -> np.ndarray:  # noqa: N802
        if self._capture_ps == 0:
            return np.zeros(len(self._chan_list))
        return self._counts / (self._capture_ps * 1e-12)

    @caught_up
    def getCountsTotal(self) -> np.ndarray:  # noqa: N802
        """Counts per channel since the start (int64).

        API completeness: used by no procedure, only by tests.
        """
        return self._counts.copy()


class CounterData:
    """Return value of ``Counter.getDataObject``: the bins fetched by one call.

    API completeness: used by no procedure, only by tests.
    """

    def __init__(self, counts, valid, t_bins, channels, binwidth, total, dropped, k_first):
        self._counts = counts
        self._valid = valid
        self._t = t_bins
        self._channels = channels
        self._bw = binwidth
        self._total = total
        self._k_first = k_first
        self.size = int(counts.shape[1])
        self.dropped_bins = int(dropped)
        self.overflow = bool((~valid).any())

    def getData(self) -> np.ndarray:  # noqa: N802
        return self._counts.astype(np.int32)

    def getDataNormalized(self) -> np.ndarray:  # noqa: N802
        out = self._counts / (self._bw * 1e-12)
        out[:, ~self._valid] = np.nan
        return out

    def getDataTotalCounts(self) -> np.ndarray:  # noqa: N802
        return self._total.astype(np.uint64)

    def getIndex(self) -> np.ndarray:  # noqa: N802
        return (self._k_first + np.arange(self.size, dtype=np.int64)) * self._bw

    def getTime(self) -> np.ndarray:  # noqa: N802
        return self._t.copy()

    def getOverflowMask(self) -> np.ndarray:  # noqa: N802
        return (~self._valid).astype(np.int8)

    def getChannels(self) -> np.ndarray:  # noqa: N802
        return np.array(self._channels, np.int32)


class Counter(_Binned):
    """Counts per channel in consecutive bins of ``binwidth`` ps; a rolling buffer of the
    last ``n_values`` completed bins (Swabian ``Counter``).

    ``getData()`` is (n_channels, n_values) int32, oldest first, the last column the most
    recent *completed* bin; bins not yet acquired are 0 (NaN in ``getDataNormalized``, as are
    bins that overlap an overflow). Bins are aligned to the start: a restart after ``stop``
    drops the partial bin and aligns the next bins to the new start.

    API completeness: used by no procedure, only by tests.
    """

    def __init__(
        self, tagger, channels: list[int], binwidth: int = 1_000_000_000, n_values: int = 1
    ):
        self._set_bins(binwidth, n_values, n_name="n_values")
        self._chan_list = [int(c) for c in channels]
        nch = len(self._chan_list)
        self._row = np.full(max(self._chan_list + [0]) + 1 if self._chan_list else 1, -1, np.int64)
        for i, c in enumerate(self._chan_list):
            self._row[c] = i
        self._ring = np.zeros((nch, self._n_bins), np.int64)
        self._ring_valid = np.zeros(self._n_bins, bool)
        self._ring_t = np.zeros(self._n_bins, np.int64)
        self._cur = np.zeros(nch, np.int64)
        self._total = np.zeros(nch, np.int64)
        self._k = 0  # absolute index of the integrating bin = number of completed bins
        self._k0 = 0  # absolute index of the bin that starts at _t0
        self._t0 = 0
        self._cur_ovf = False
        self._removed = 0
        super().__init__(tagger, self._chan_list)

    def _on_start(self, t0):
        self._t0, self._k0 = t0, self._k
        self._cur[:] = 0
        self._cur_ovf = self._in_overflow

    def _clear_data(self):
        self._ring[:] = 0
        self._ring_valid[:] = False
        self._cur[:] = 0
        self._total[:] = 0
        self._k = self._k0 = self._removed = 0
        self._t0 = self._t_fed
        self._cur_ovf = False

    def _overflow_begin(self, t):
        self._cur_ovf = True

    def _process(self, ts, ch, t_from, t_to):
        nch, n, bw = len(self._chan_list), self._n_bins, self._binwidth
        rows = self._row[ch]
        if rows.size:
            self._total += np.bincount(rows, minlength=nch)
        k_done = self._k0 + (t_to - self._t0) // bw  # bins below k_done are complete
        if k_done <= self._k:
            if rows.size:
                self._cur += np.bincount(rows, minlength=nch)
            self._cur_ovf |= self._in_overflow
            return
        kt = self._k0 + (ts - self._t0) // bw
        first = max(self._k, k_done - n)
        nb = int(k_done - first)
        done = kt < k_done
        sel = done & (kt >= first)
        flat = rows[sel] * nb + (kt[sel] - first)
        counts = np.bincount(flat, minlength=nch * nb).reshape(nch, nb)
        valid = np.full(nb, not self._in_overflow)
        if self._k >= first:
            counts[:, self._k - first] += self._cur
            valid[self._k - first] = not (self._cur_ovf or self._in_overflow)
        pos = (first + np.arange(nb)) % n
        self._ring[:, pos] = counts
        self._ring_valid[pos] = valid
        self._ring_t[pos] = self._t0 + (first - self._k0 + np.arange(nb)) * bw
        self._k = k_done
        rest = rows[~done]
        self._cur = np.bincount(rest, minlength=nch).astype(np.int64)
        self._cur_ovf = self._in_overflow

    def _window(self, rolling: bool):
        n = self._n_bins
        if rolling:
            absk = self._k - n + np.arange(n)
        else:
            absk = np.arange(n) + (self._k - 1) // n * n
            absk = np.where(absk >= self._k, absk - n, absk)
        pos = absk % n
        have = absk >= 0
        counts = np.where(have, self._ring[:, pos], 0)
        valid = have & self._ring_valid[pos]
        return counts, valid

    @caught_up
    def getData(self, rolling: bool = True) -> np.ndarray:  # noqa: N802
        return self._window(rolling)[0].astype(np.int32)

    @caught_up
    def getDataNormalized(self, rolling: bool = True) -> np.ndarray:  # noqa: N802
        """Count rate per bin in counts/s; NaN for bins not acquired or in overflow."""
        counts, valid = self._window(rolling)
        out = counts / (self._binwidth * 1e-12)
        out[:, ~valid] = np.nan
        return out

    @caught_up
    def getDataTotalCounts(self) -> np.ndarray:  # noqa: N802
        """Counts per channel since the last clear, including the bin being integrated."""
        return self._total.astype(np.uint64)

    @caught_up
    def getDataObject(self, remove: bool = False) -> CounterData:  # noqa: N802
        """The completed bins not removed before (at most n_values); ``remove`` consumes them."""
        first = max(self._removed, self._k - self._n_bins)
        absk = np.arange(first, self._k)
        pos = absk % self._n_bins
        data = CounterData(
            self._ring[:, pos].copy(),
            self._ring_valid[pos].copy(),
            self._ring_t[pos].copy(),
            self._chan_list,
            self._binwidth,
            self._total - self._cur,
            first - self._removed,
            first,
        )
        if remove:
            self._removed = self._k
        return data


class CountBetweenMarkers(_Measurement):
    """Counts of ``click_channel`` tags in bins opened by ``begin_channel`` tags and closed by
    the next begin tag, or by an ``end_channel`` tag if given (Swabian ``CountBetweenMarkers``).

    ``getData()`` int32 (n_values), ``getBinWidths()`` and ``getIndex()`` (begin time of each
    bin, tagger time in ps) int64; unfilled entries are 0. The measurement stops when all
    n_values are filled (``ready()``). On an overflow the bin being counted is abandoned and
    counting resumes at the next begin tag.

    API completeness: used by no procedure, only by tests.
    """

    def __init__(
        self,
        tagger,
        click_channel: int,
        begin_channel: int,
        end_channel: int = CHANNEL_UNUSED,
        n_values: int = 1000,
    ):
        self._click, self._begin, self._end = int(click_channel), int(begin_channel), end_channel
        (self._n,) = self._positive(n_values=n_values)
        self._data = np.zeros(self._n, np.int32)
        self._widths = np.zeros(self._n, np.int64)
        self._begins = np.zeros(self._n, np.int64)
        self._st = np.array([0, 0, 0, 0, int(end_channel != CHANNEL_UNUSED)], np.int64)
        super().__init__(tagger, [self._click, self._begin, self._end])
        self._roles = self._role_table(
            [(self._click, _k.CLICK), (self._begin, _k.BEGIN), (self._end, _k.END)]
        )

    def _clear_data(self):
        self._data[:] = 0
        self._widths[:] = 0
        self._begins[:] = 0
        self._st[:4] = 0

    def _overflow_begin(self, t):
        self._st[0] = 0

    def _process(self, ts, ch, t_from, t_to):
        if ts.size == 0 or self._st[3] >= self._n:
            return
        pos = _k.count_between_markers(
            ts, self._roles[ch], self._data, self._widths, self._begins, self._st
        )
        if pos >= 0:
            self._finished = True

    def _can_finish(self) -> bool:
        return True

    @caught_up
    def ready(self) -> bool:
        return bool(self._st[3] >= self._n)

    @caught_up
    def getData(self) -> np.ndarray:  # noqa: N802
        return self._data.copy()

    @caught_up
    def getBinWidths(self) -> np.ndarray:  # noqa: N802
        return self._widths.copy()

    @caught_up
    def getIndex(self) -> np.ndarray:  # noqa: N802
        return self._begins.copy()
