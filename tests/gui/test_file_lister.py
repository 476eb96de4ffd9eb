"""Run files listed off the GUI thread: newest first, the pattern honoured, a missing
directory empty, and the list delivered in the GUI thread."""

from __future__ import annotations

import os
import threading

from hbtscope.gui.file_lister import FileLister, list_run_files


def test_newest_first_with_the_pattern_and_a_missing_directory(tmp_path):
    day = tmp_path / "2026-12-05"
    day.mkdir()
    names = ["a_g2_1.h5", "b_confocal_scan_2.h5", "c_g2_3.h5", "notes.txt"]
    for k, name in enumerate(names):
        path = day / name
        path.write_bytes(b"x")
        os.utime(path, (1_000_000 + k, 1_000_000 + k))
    assert [p.name for p in list_run_files(tmp_path)] == [
        "c_g2_3.h5",
        "b_confocal_scan_2.h5",
        "a_g2_1.h5",
    ]
    assert [p.name for p in list_run_files(tmp_path, "*_confocal_scan_*.h5")] == [
        "b_confocal_scan_2.h5"
    ]
    assert list_run_files(tmp_path / "nowhere") == []


def test_the_list_comes_back_in_the_gui_thread(qtbot, tmp_path):
    (tmp_path / "x.h5").write_bytes(b"x")
    lister = FileLister(tmp_path)
    threads = []
    lister.listed.connect(lambda files: threads.append((threading.current_thread(), files)))
    with qtbot.waitSignal(lister.listed, timeout=10_000):
        lister.request()
        lister.request()  # while one runs: one more listing after it, not two at once
    qtbot.waitUntil(lambda: lister._thread is None, timeout=10_000)
    qtbot.wait(50)
    assert 1 <= len(threads) <= 2
    assert all(t is threading.main_thread() and [p.name for p in f] == ["x.h5"] for t, f in threads)
