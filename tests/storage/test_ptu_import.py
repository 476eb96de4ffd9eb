"""PicoQuant PTU import, checked against ptufile's own decoding of real instrument files.

The four files in ``tests/data/picoquant/`` (HydraHarp T2/T3 v1/v2, PicoHarp T2) were
written by PicoQuant software; see the README there. They live in the repository
with their licence, so these tests always run.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hbtscope.analysis import correlate
from hbtscope.reanalyse import analyse_run
from hbtscope.storage import open_run, read_attrs, read_parameters, read_values, run_status
from hbtscope.storage.ptu_import import PtuImportError, import_ptu

ptufile = pytest.importorskip("ptufile")

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "picoquant"  # real files, BSD-3-Clause (LICENSE there)

FILES = [
    "hydraharp/v20_t2.ptu",
    "hydraharp/v20_t3.ptu",
    "hydraharp/v10_t3.ptu",
    "picoharp/v30_t2.ptu",
]


def decoded(name):
    logging.getLogger("ptufile").setLevel(logging.CRITICAL)
    with ptufile.PtuFile(DATA / name) as ptu:
        rec = ptu.decode_records()
        info = {
            "is_t3": ptu.is_t3,
            "n_records": ptu.number_records,
            "n_photons": ptu.number_photons,
            "global_res_ps": ptu.global_resolution * 1e12,
            "tcspc_res_ps": ptu.tcspc_resolution * 1e12,
            "syncrate": ptu.syncrate,
        }
        hist = ptu.decode_histogram(dtype="uint64") if ptu.is_t3 else None
    return rec, info, hist


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    out = tmp_path_factory.mktemp("ptu")
    return {name: import_ptu(DATA / name, out) for name in FILES}


@pytest.mark.parametrize("name", FILES)
def test_counts_and_times_match_ptufile(imported, name):
    path = imported[name]
    rec, info, _ = decoded(name)
    photon = rec["channel"] >= 0
    assert run_status(path) == "finished"
    with open_run(path) as f:
        assert f.attrs["procedure"] == "import_ptu"
        ts = f["tttr/timestamps"][:]
        ch = f["tttr/channels"][:]
        bk = read_values(f["analysis/ptu_import"])
        params, units = read_parameters(f)
        tttr = read_attrs(f["tttr"])
        header = read_values(f["setup/snapshot/ptu_header"])
    # record and photon counts exactly as ptufile
    assert bk["n_records"] == info["n_records"] == rec.size
    assert bk["n_photons"] == info["n_photons"] == photon.sum() == ts.size
    assert bk["n_overflow_records"] == np.sum(~photon & (rec["marker"] == 0))
    assert bk["n_marker_records"] == np.sum(~photon & (rec["marker"] > 0))
    assert bk["n_records"] == bk["n_photons"] + bk["n_overflow_records"] + bk["n_marker_records"]
    pq_channels, pq_counts = np.unique(rec["channel"][photon], return_counts=True)
    expected = {str(int(c) + 2): int(n) for c, n in zip(pq_channels, pq_counts, strict=True)}
    assert bk["photons_per_channel"] == expected
    hb_channels, hb_counts = np.unique(ch, return_counts=True)
    assert dict(zip(map(str, hb_channels.tolist()), hb_counts.tolist(), strict=True)) == expected
    assert tttr["channel_map"] == {f"ptu_ch{int(c)}": int(c) + 2 for c in pq_channels}
    # time tags in ps, sorted, equal to an independent float computation to < 1 ps
    assert ts.dtype == np.int64 and np.all(np.diff(ts) >= 0)
    t = rec["time"][photon].astype(np.float64)
    if info["is_t3"]:
        ref = t * info["global_res_ps"] + rec["dtime"][photon] * info["tcspc_res_ps"]
        assert params["mode"] == "T3"
        assert params["sync_period_ps"] == pytest.approx(1e12 / info["syncrate"], rel=1e-5)
    else:
        ref = t * info["global_res_ps"]
        assert params["mode"] == "T2"
    order = np.argsort(ref, kind="stable")
    assert np.max(np.abs(ts - ref[order])) <= 0.5 + 1e-3 * (ref.max() * 1e-12)
    np.testing.assert_array_equal(ch, rec["channel"][photon][order].astype(np.int32) + 2)
    # parameters and header
    assert params["source_file"] == Path(name).name
    assert params["resolution_ps"] == pytest.approx(
        info["tcspc_res_ps"] if info["is_t3"] else info["global_res_ps"]
    )
    assert params["sync_rate_Hz"] == info["syncrate"]
    assert units["resolution_ps"] == "ps"
    assert header["TTResult_NumberOfRecords"] == info["n_records"]
    assert "MeasDesc_GlobalResolution" in header


def test_t2_cross_correlation_equals_independent_brute_force(imported):
    """picoharp/v30_t2.ptu, two channels: run file + hbtscope.correlate == numpy on ptufile."""
    name = "picoharp/v30_t2.ptu"
    rec, info, _ = decoded(name)
    with open_run(imported[name]) as f:
        ts = f["tttr/timestamps"][:]
        ch = f["tttr/channels"][:]
    bw, ml = 1000, 1_000_000
    lag, counts = correlate(ts[ch == 2], ts[ch == 3], bw, ml)
    # independent: ptufile records -> ps with numpy, all pairs within the window
    res = int(round(info["global_res_ps"]))
    t_all = rec["time"].astype(np.int64) * res
    a = np.sort(t_all[rec["channel"] == 0])
    b = np.sort(t_all[rec["channel"] == 1])
    lo = np.searchsorted(b, a - ml, side="left")
    hi = np.searchsorted(b, a + ml, side="left")
    n_pairs = hi - lo
    first = np.repeat(lo, n_pairs)
    offs = np.arange(n_pairs.sum()) - np.repeat(np.cumsum(n_pairs) - n_pairs, n_pairs)
    d = b[first + offs] - np.repeat(a, n_pairs)
    ref = np.bincount((d + ml) // bw, minlength=2 * ml // bw)
    assert counts.sum() > 10_000
    np.testing.assert_array_equal(counts, ref)
    # and with pycorrelate (Laurence 2006 algorithm), where installed. pcorrelate(t, u, e)
    # returns the pairs with u - t in [e_i, e_i+1), divided by the bin width.
    pycorrelate = pytest.importorskip("pycorrelate")
    e = np.arange(0, ml + bw, bw, dtype=np.int64)
    g_pos = pycorrelate.pcorrelate(a, b, e, normalize=False) * bw
    # negative lags: a - b in [e_i + 1, e_i+1 + 1) <=> b - a in [-e_i+1, -e_i) for integer ps
    g_neg = pycorrelate.pcorrelate(b, a, e + 1, normalize=False) * bw
    np.testing.assert_array_equal(counts[ml // bw :], np.rint(g_pos).astype(np.int64))
    np.testing.assert_array_equal(counts[: ml // bw], np.rint(g_neg[::-1]).astype(np.int64))
    assert lag[0] == -ml + bw / 2


@pytest.mark.parametrize("name", ["hydraharp/v20_t3.ptu", "hydraharp/v10_t3.ptu"])
def test_t3_decay_histogram_equals_ptufile(imported, name):
    _, info, hist = decoded(name)
    with open_run(imported[name]) as f:
        stored = f["data/decay/counts"][:]
        chans = f["data/decay/channels"][:]
        dtime = f["data/ptu/dtime"][:]
        nsync = f["data/ptu/nsync"][:]
        ch = f["tttr/channels"][:]
        ts = f["tttr/timestamps"][:]
        res_attr = read_attrs(f["data/ptu/dtime"])["resolution_ps"]
    assert chans.tolist() == [2, 3]
    np.testing.assert_array_equal(stored, hist.astype(np.int64))
    # the per-photon micro times rebuild it too, and the time tags are consistent with them
    for i, c in enumerate(chans):
        np.testing.assert_array_equal(
            np.bincount(dtime[ch == c], minlength=hist.shape[1]), hist[i].astype(np.int64)
        )
    assert res_attr == pytest.approx(info["tcspc_res_ps"])
    rebuilt = nsync * info["global_res_ps"] + dtime * info["tcspc_res_ps"]
    assert np.max(np.abs(ts - rebuilt)) <= 0.5 + 1e-12 * rebuilt.max()
    # the re-analysis reads the same histogram and reports its mean delay per channel
    result = analyse_run(imported[name])
    assert result["decay_matches_stored"] is True
    np.testing.assert_array_equal(result["arrays"]["decay_counts"], hist.astype(np.int64))
    bins = np.arange(hist.shape[1])
    for i, c in enumerate(chans):
        mean = float((hist[i] * bins).sum() / hist[i].sum()) * info["tcspc_res_ps"]
        assert result["mean_delay_ps"][str(c)] == pytest.approx(mean, rel=1e-9)
        assert 0 < result["mean_delay_ps_err"][str(c)] < 0.01 * mean
    assert result["photon_channels"] == [2, 3]
    assert "g2_0_pulsed" in result or "g2_pulsed_error" in result


def test_reanalysis_of_t2_import(imported):
    result = analyse_run(imported["picoharp/v30_t2.ptu"])
    assert result["procedure"] == "import_ptu" and result["mode"] == "T2"
    assert result["counts_per_channel"] == {"2": 531477, "3": 388700}
    assert result["n_coincidences"] == int(result["arrays"]["coincidences"].sum())
    assert result["g2_far"] == pytest.approx(1.0, abs=0.3)  # accidentals of two streams
    single = analyse_run(imported["hydraharp/v20_t2.ptu"])
    assert single["photon_channels"] == [2] and "n_coincidences" not in single


def test_output_paths(tmp_path):
    src = DATA / "hydraharp/v20_t2.ptu"
    p = import_ptu(src, tmp_path / "exact.h5")
    assert p == tmp_path / "exact.h5" and p.exists()
    with pytest.raises(FileExistsError):
        import_ptu(src, tmp_path / "exact.h5")
    q = import_ptu(src, tmp_path / "sub" / "dir")
    assert q.parent == tmp_path / "sub" / "dir" and q.name.startswith("v20_t2_")
    with h5py.File(q, "r") as f:  # plain h5py reads it
        assert f.attrs["uuid"].startswith(q.stem.rsplit("_", 1)[1])


def test_truncated_file_imports_what_is_there(tmp_path):
    raw = (DATA / "picoharp/v30_t2.ptu").read_bytes()
    cut = tmp_path / "cut.ptu"
    cut.write_bytes(raw[: len(raw) // 3])
    p = import_ptu(cut, tmp_path)
    with open_run(p) as f:
        bk = read_values(f["analysis/ptu_import"])
        n = f["tttr/timestamps"].shape[0]
    assert bk["truncated"] and bk["n_records"] < bk["n_records_header"] == 929254
    assert n == bk["n_photons"] > 0


def test_missing_and_non_ptu_files(tmp_path):
    with pytest.raises(PtuImportError, match="no such file"):
        import_ptu(tmp_path / "nope.ptu", tmp_path)
    bad = tmp_path / "bad.ptu"
    bad.write_text("this is not a PTU file\n")
    with pytest.raises(PtuImportError, match="not a readable PicoQuant PTU file"):
        import_ptu(bad, tmp_path)
    assert not list(tmp_path.glob("*.h5"))
    with pytest.raises(PtuImportError, match="not a file"):
        import_ptu(tmp_path, tmp_path)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.one_of(
        st.binary(max_size=4096),
        st.binary(max_size=4096).map(lambda b: b"PQTTTR\x00\x001.0.00\x00\x00" + b),
    )
)
def test_random_bytes_give_a_clean_error(tmp_path, data):
    path = tmp_path / "random.ptu"
    path.write_bytes(data)
    out = tmp_path / "out"
    try:
        result = import_ptu(path, out)
    except PtuImportError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
    else:  # a header that happens to parse: the run must then be a valid, finished run file
        assert run_status(result) == "finished"
        result.unlink()


def test_json_of_bookkeeping_is_plain(tmp_path):
    p = import_ptu(DATA / "hydraharp/v10_t3.ptu", tmp_path)
    with open_run(p) as f:
        raw = f["analysis/ptu_import"].attrs["photons_per_channel"]
    assert json.loads(raw) == {"2": 48001, "3": 46559}


def _set_float_tag(data: bytes, ident: str, value: float) -> bytes:
    """A PTU header with the Float8 tag ``ident`` set to ``value`` (tag: 32-byte ident,
    int32 index, uint32 type, 8-byte value)."""
    import struct

    start = data.index(ident.encode().ljust(32, b"\0"))
    at = start + 32 + 4 + 4
    return data[:at] + struct.pack("<d", value) + data[at + 8 :]


@pytest.mark.parametrize(
    ("ident", "value", "match"),
    [
        (
            "MeasDesc_Resolution",
            1.0,
            r"MeasDesc_Resolution = 1e\+12 ps is not a possible TCSPC bin",
        ),
        ("MeasDesc_Resolution", float("inf"), "MeasDesc_Resolution = inf ps"),
        ("MeasDesc_Resolution", 1e300, "MeasDesc_Resolution = inf ps"),
        ("MeasDesc_GlobalResolution", 0.0, "GlobalResolution = 0 ps is not a possible sync period"),
    ],
)
def test_an_impossible_header_is_refused_before_anything_is_allocated(
    tmp_path, ident, value, match
):
    bad = tmp_path / "bad.ptu"
    bad.write_bytes(_set_float_tag((DATA / "hydraharp/v20_t3.ptu").read_bytes(), ident, value))
    with pytest.raises(PtuImportError, match=match):
        import_ptu(bad, tmp_path / "out")
    assert not list(tmp_path.rglob("*.h5"))


_TY_INT8, _TY_FLOAT8, _TY_BOOL8 = 0x10000008, 0x20000008, 0x00000008
#: Float8Array, AnsiString, WideString, BinaryBlob
_VARIABLE_LENGTH = (0x2001FFFF, 0x4001FFFF, 0x4002FFFF, 0xFFFFFFFF)


def _header_tags(data: bytes) -> list[tuple[int, str, int]]:
    """(offset of the value, ident, type) of every 8-byte numeric tag of a PTU header
    (16-byte preamble, then 48-byte tags: 32-byte ident, int32 index, uint32 type, value)."""
    import struct

    tags, at = [], 16
    while at + 48 <= len(data):
        ident = data[at : at + 32].rstrip(b"\0").decode("ascii", "replace")
        (ty,) = struct.unpack_from("<I", data, at + 36)
        if ident == "Header_End":
            break
        if ty in (_TY_INT8, _TY_FLOAT8, _TY_BOOL8):
            tags.append((at + 40, ident, ty))
        at += 48
        if ty in _VARIABLE_LENGTH:  # the value is the length of the data that follow
            at += struct.unpack_from("<q", data, at - 8)[0]
    return tags


#: the tags that decide how records are decoded and how much is allocated
_KEY_TAGS = [
    "TTResultFormat_TTTRRecType",
    "TTResultFormat_BitsPerRecord",
    "TTResult_NumberOfRecords",
    "MeasDesc_Resolution",
    "MeasDesc_GlobalResolution",
    "TTResult_SyncRate",
    "HW_InpChannels",
    "MeasDesc_AcquisitionTime",
    "Measurement_Mode",
    "MeasDesc_BinningFactor",
]
_HEADERS = {name: (DATA / name).read_bytes() for name in FILES}
_TAGS = {name: _header_tags(data) for name, data in _HEADERS.items()}


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.sampled_from(FILES),
    pick=st.one_of(st.sampled_from(_KEY_TAGS), st.integers(0, 10_000)),
    as_float=st.floats(allow_nan=True, allow_infinity=True),
    as_int=st.one_of(
        st.integers(-(2**63), 2**63 - 1),
        st.sampled_from([0, -1, 1, 2**31, 2**32, 2**62, 2**63 - 1, -(2**63)]),
    ),
)
def test_any_value_in_any_numeric_header_tag_is_imported_or_refused_cleanly(
    tmp_path, name, pick, as_float, as_int
):
    """Issue 16, point 5: a PTU whose numeric header tag (record count, resolutions, sync
    rate, record type, channel count, ...) holds any value at all is imported as a finished
    run or refused with one PtuImportError line naming the file; a refused import leaves no
    run file; nothing allocates more than 256 MB (tracemalloc; numpy reports to it) -- the
    files themselves are < 4 MB."""
    import struct
    import tempfile
    import tracemalloc

    data = _HEADERS[name]
    tags = _TAGS[name]
    if isinstance(pick, str):  # a tag that sizes or decodes the records, if the file has it
        tags = [t for t in tags if t[1] == pick] or tags
        pick = 0
    at, ident, ty = tags[pick % len(tags)]
    value = struct.pack("<d", as_float) if ty == _TY_FLOAT8 else struct.pack("<q", as_int)
    here = Path(tempfile.mkdtemp(dir=tmp_path))  # one directory per example
    path = here / "edited.ptu"
    path.write_bytes(data[:at] + value + data[at + 8 :])
    out = here / "out"
    tracemalloc.start()
    try:
        try:
            result = import_ptu(path, out)
        except PtuImportError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc), str(exc)
            assert not list(here.rglob("*.h5")), f"{ident}: a refused import left a file"
        else:
            assert run_status(result) == "finished", ident
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 2**20, f"{ident} = {as_float if ty == _TY_FLOAT8 else as_int}: {peak}"


def test_a_record_count_beyond_the_file_reads_only_what_is_there(tmp_path):
    """TTResult_NumberOfRecords = 10**12 in a 1.7 MB file: ptufile would allocate 4 TB for it;
    the import reads the records the file holds (truncated), allocating about the file."""
    import struct
    import tracemalloc

    data = (DATA / "hydraharp/v20_t2.ptu").read_bytes()
    (at,) = [a for a, ident, _ in _header_tags(data) if ident == "TTResult_NumberOfRecords"]
    bad = tmp_path / "huge_count.ptu"
    bad.write_bytes(data[:at] + struct.pack("<q", 10**12) + data[at + 8 :])
    tracemalloc.start()
    try:
        path = import_ptu(bad, tmp_path / "out")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20
    with open_run(path) as f:
        info = read_values(f["analysis/ptu_import"])
    assert info["n_records"] == 435_319 and info["truncated"]  # every record of the file
