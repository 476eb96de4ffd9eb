"""The ``hbtscope`` command line.

    hbtscope demo [--setup FILE] [--out DIR] [--json]
    hbtscope run g2 [--setup FILE] [--set name=value ...] [--out DIR] [--json]
    hbtscope procedures
    hbtscope import FILE.ptu [--out DIR] [--json]
    hbtscope export RUN.h5 --format photon-hdf5 [--out FILE] [--force]
    hbtscope analyse RUN.h5 [--json] [--figure]   (``analyze`` is accepted too)
    hbtscope analyse DIR... [--workers N] [--scheduler ADDRESS] [--where EXPR] [--catalog FILE]
    hbtscope catalog update DIR... | query [--where EXPR]... [--json|--csv F|--parquet F]
    hbtscope gui [--setup FILE] [--out DIR]

``--json`` prints one JSON object (file, status, the main results and, on the simulator, the
ground truth) on stdout; human-readable progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from hbtscope.archive_cli import ArchiveUsageError
from hbtscope.config_schema import SetupFileError
from hbtscope.procedures.errors import OutputDirError, ParameterError
from hbtscope.procedures.runner import interrupt_in_chain
from hbtscope.queue.spec import QueueFileError
from hbtscope.queue_cli import QueueUsageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _procedures() -> dict[str, type]:
    """Name -> procedure class of every runnable measurement (built-in and installed)."""
    from hbtscope.procedures.registry import runnable

    return {name: m.procedure for name, m in runnable().items()}


class UsageError(ValueError):
    pass


def _parse_sets(proc_cls: type, sets: list[str]) -> dict[str, Any]:
    """``name=value`` pairs, each checked against the procedure's Parameter (type and range)."""
    proc = proc_cls()
    params = proc._parameters
    values: dict[str, Any] = {}
    for item in sets:
        if "=" not in item:
            raise UsageError(f"--set {item!r}: expected name=value")
        name, raw = item.split("=", 1)
        name = name.strip()
        if name not in params:
            raise UsageError(
                f"--set {name}: {proc_cls.NAME} has no parameter {name!r}; "
                f"parameters: {', '.join(sorted(params))}"
            )
        p = params[name]
        try:
            p.value = raw.strip()
        except (ValueError, TypeError) as exc:
            lo, hi = getattr(p, "minimum", None), getattr(p, "maximum", None)
            allowed = (
                f" (allowed [{lo}, {hi}] {getattr(p, 'units', '') or ''})" if lo is not None else ""
            )
            choices = getattr(p, "choices", None)
            if choices:
                allowed = f" (allowed: {', '.join(map(str, choices))})"
            raise UsageError(f"--set {name}={raw}: {exc}{allowed}") from None
        values[name] = p.value
    return values


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN to None, +-infinity to "inf"/"-inf"
    (an unbounded interval, e.g. g2(0) when no side-peak signal was measured)."""
    if hasattr(value, "item") and not isinstance(value, list | dict):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            value = str(value)
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _report(outcome, truth: dict[str, Any], as_json: bool, extra: dict | None = None) -> None:
    out: dict[str, Any] = {
        "file": str(outcome.path),
        "figure": str(outcome.figure) if outcome.figure else None,
        "status": outcome.status,
        "procedure": outcome.procedure.NAME,
    }
    if outcome.error:
        out["error"] = outcome.error
    out.update(outcome.summary)
    if truth:
        out["truth_g2_0"] = truth.get("g2_0")
        out["truth_g2_0_with_background"] = truth.get("g2_0_with_background")
        out["truth_emitter_rate_cps"] = truth.get("emitter_rate_cps")
        out["truth_P_sat_W"] = truth.get("P_sat_W")
    if extra:
        out.update(extra)
    if as_json:
        print(json.dumps(_clean(out)))
        return
    print(f"{outcome.procedure.NAME}: {outcome.status}")
    if "g2_0" in out and out["g2_0"] == out["g2_0"]:
        print(f"  g2(0) = {out['g2_0']:.4f} ± {out['g2_0_err']:.4f}")
        if "g2_0_ci" in out:
            lo, hi = out["g2_0_ci"]
            print(f"  68 % interval [{lo:.4f}, {hi:.4f}]; g2(0) < {out['g2_0_upper']:.4f} (97.7 %)")
    if truth and truth.get("g2_0") is not None:
        print(f"  simulator truth g2(0) = {truth['g2_0']:.4f}")
    print(f"  run file: {outcome.path}")
    if outcome.figure:
        print(f"  figure:   {outcome.figure}")
    if outcome.error:
        print(f"  error: {outcome.error}")


def _progress_printer(quiet: bool):
    last = [-10.0]

    def on_event(topic: str, record: Any) -> None:
        if quiet or topic != "progress":
            return
        if record >= last[0] + 10 or record >= 100:
            last[0] = record
            print(f"  {record:5.1f} %", file=sys.stderr)

    return on_event


def cmd_run(args: argparse.Namespace) -> int:
    from hbtscope.procedures.runner import run_procedure
    from hbtscope.setup import open_setup
    from hbtscope.storage.reading import read_truth

    procs = _procedures()
    if args.procedure not in procs:
        raise UsageError(f"unknown procedure {args.procedure!r}; available: {', '.join(procs)}")
    cls = procs[args.procedure]
    values = _parse_sets(cls, args.set or [])
    with open_setup(args.setup, data_dir=args.out) as setup:
        proc = cls(**values)
        printer = _progress_printer(args.json)
        outcome = _TERMINATION.run(
            lambda stop: run_procedure(proc, setup, stop_event=stop, on_event=printer)
        )
        truth = read_truth(outcome.path) if setup.is_simulated else {}
        _report(outcome, truth, args.json)
    return EXIT_OK if outcome.status == "finished" else EXIT_FAILED


def cmd_demo(args: argparse.Namespace) -> int:
    from hbtscope.demo import run_quick_demo, run_survey

    if args.quick:
        return run_quick_demo(
            setup_path=args.setup,
            out_dir=args.out,
            as_json=args.json,
            report=_report,
            progress=_progress_printer(args.json),
        )
    from hbtscope.queue_cli import _Display

    if not args.json:
        print(
            "hbtscope demo: an emitter survey on the simulated microscope (a few minutes)",
            file=sys.stderr,
        )
    display = _Display(quiet=args.json)
    try:
        out = run_survey(
            args.setup, args.out, displays=[display.on_event], on_status=display.on_status
        )
    finally:
        display.close()
    if args.json:
        print(json.dumps(_clean(out)))
    else:
        lo, hi = out["single_photon_fraction_68"]
        print(
            f"survey {out['status']}: {out['n_emitters']} emitters, "
            f"{out['n_single_photon']} pass g2(0) + 2σ < 0.5 (68 %: {lo:.2f}-{hi:.2f})"
        )
        if "truth_single_photon" in out:
            print(
                f"  truth: {out['truth_single_photon']} single-photon emitters, "
                f"{out['truth_not_single_photon']} impurities or clusters, of which "
                f"{out['rejected_of_not_single_photon']} rejected"
            )
        print(f"  report: {out['report']}")
    return EXIT_OK if out["status"] == "finished" else EXIT_FAILED


def cmd_devices(args: argparse.Namespace) -> int:
    """Open every device of the setup (keep going past failures) and report each one."""
    from hbtscope.devices_report import devices_report, format_report
    from hbtscope.setup import open_setup

    with open_setup(args.setup, keep_going=True) as setup:
        report = devices_report(setup)
    if args.json:
        print(json.dumps(_clean({"setup": str(setup.path), "devices": report}), default=str))
    else:
        print(f"{setup.spec.name} ({setup.path})")
        print(format_report(report))
    return EXIT_OK if all(e["connected"] for e in report) else EXIT_FAILED


def cmd_procedures(args: argparse.Namespace) -> int:
    for name, cls in _procedures().items():
        print(f"{name}: {((cls.__doc__ or '').strip().splitlines() or [name])[0]}")
        for pname, p in cls()._parameters.items():
            unit = getattr(p, "units", None) or ""
            print(f"    {pname} = {p.value!r} {unit}   {p.name}")
    return EXIT_OK


def _user_error(exc: BaseException) -> UsageError:
    """A user-caused file error as one line for stderr (exit code 2)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return UsageError(text)


def cmd_import(args: argparse.Namespace) -> int:
    from hbtscope.storage import open_run, read_parameters, read_values
    from hbtscope.storage.ptu_import import PtuImportError, import_ptu

    out_dir = Path(args.out) if args.out else Path.cwd()
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir}: not a directory")
    try:
        path = import_ptu(args.file, out_dir)
    except (PtuImportError, FileExistsError) as exc:
        raise _user_error(exc) from None
    with open_run(path) as f:
        params, _ = read_parameters(f)
        info = read_values(f["analysis/ptu_import"])
    out = {
        "file": str(path),
        "source": str(args.file),
        "mode": params.get("mode"),
        "record_type": params.get("record_type"),
        "n_records": info.get("n_records"),
        "n_photons": info.get("n_photons"),
        "n_overflow_records": info.get("n_overflow_records"),
        "n_marker_records": info.get("n_marker_records"),
        "photons_per_channel": info.get("photons_per_channel"),
        "resolution_ps": params.get("resolution_ps"),
        "sync_rate_Hz": params.get("sync_rate_Hz"),
    }
    if args.json:
        print(json.dumps(_clean(out)))
        return EXIT_OK
    print(f"imported {args.file} ({out['mode']}, {out['record_type']})")
    print(
        f"  records {out['n_records']}, photons {out['n_photons']}, per channel "
        f"{out['photons_per_channel']}"
    )
    print(f"  run file: {path}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from hbtscope.storage.photon_hdf5 import export_photon_hdf5
    from hbtscope.storage.reading import RunFileError

    if args.format != "photon-hdf5":  # pragma: no cover - argparse restricts the choices
        raise UsageError(f"--format {args.format}: only photon-hdf5 is supported")
    try:
        out = export_photon_hdf5(args.run, args.out, overwrite=args.force)
    except (RunFileError, FileExistsError) as exc:
        raise _user_error(exc) from None
    print(str(out))
    return EXIT_OK


def cmd_analyse(args: argparse.Namespace) -> int:
    from hbtscope.reanalyse import RunFileError, analyse_run, redraw

    if len(args.run) > 1 or Path(args.run[0]).is_dir():  # a directory: the archive's runs
        from hbtscope.archive_cli import cmd_analyse_archive

        return cmd_analyse_archive(args)
    args.run = args.run[0]
    try:
        result = analyse_run(args.run)
        if args.figure:
            png = redraw(args.run)
            result["figure"] = str(png) if png is not None else None
    except RunFileError as exc:
        raise _user_error(exc) from None
    result.pop("arrays", None)
    if args.json:
        print(json.dumps(_clean(result)))
        return EXIT_OK
    print(f"{result['procedure']} run {result['file']} ({result['status']})")
    for key, value in result.items():
        if key in ("procedure", "file", "status"):
            continue
        err = result.get(f"{key}_err")
        if key.endswith("_err") and key[:-4] in result:
            continue
        if isinstance(value, float) and err is not None and isinstance(err, float):
            print(f"  {key} = {value:.6g} ± {err:.2g}")
        else:
            print(f"  {key} = {value}")
    return EXIT_OK


def cmd_gui(args: argparse.Namespace) -> int:
    """The live dashboard (PyQt5): imported only here, so the rest runs without a display."""
    from hbtscope.gui.app import run_gui

    return run_gui(args.setup, args.out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hbtscope", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--debug", action="store_true", help="show the Python traceback of an unexpected error"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p_demo = sub.add_parser(
        "demo", help="an emitter survey on the simulated microscope, ending in its report"
    )
    p_demo.add_argument(
        "--quick", action="store_true", help="only find the demo emitter and measure its g2"
    )
    p_demo.add_argument("--setup", help="setup file (default: the bundled simulated microscope)")
    p_demo.add_argument("--out", help="directory for run files (default: the setup's data_dir)")
    p_demo.add_argument("--json", action="store_true", help="print one JSON object")
    p_demo.set_defaults(func=cmd_demo)

    p_run = sub.add_parser("run", help="run one procedure")
    p_run.add_argument("procedure", help="procedure name (see `hbtscope procedures`)")
    p_run.add_argument("--setup", help="setup file (default: the bundled simulated microscope)")
    p_run.add_argument(
        "--set",
        action="append",
        metavar="NAME=VALUE",
        help="set a procedure parameter (repeatable)",
    )
    p_run.add_argument("--out", help="directory for run files (default: the setup's data_dir)")
    p_run.add_argument("--json", action="store_true", help="print one JSON object")
    p_run.set_defaults(func=cmd_run)

    p_list = sub.add_parser("procedures", help="list procedures and their parameters")
    p_list.set_defaults(func=cmd_procedures)

    p_dev = sub.add_parser("devices", help="roles, drivers, connection state and settings")
    p_dev.add_argument("--setup", help="setup file (default: the bundled simulated microscope)")
    p_dev.add_argument("--json", action="store_true", help="print one JSON object")
    p_dev.set_defaults(func=cmd_devices)

    p_imp = sub.add_parser("import", help="import a PicoQuant PTU file (T2/T3) into a run file")
    p_imp.add_argument("file", help="the .ptu file")
    p_imp.add_argument("--out", help="directory for the run file (default: current directory)")
    p_imp.add_argument("--json", action="store_true", help="print one JSON object")
    p_imp.set_defaults(func=cmd_import)

    p_exp = sub.add_parser("export", help="export a run's time tags to another format")
    p_exp.add_argument("run", help="the run file (.h5)")
    p_exp.add_argument(
        "--format", choices=["photon-hdf5"], default="photon-hdf5", help="output format"
    )
    p_exp.add_argument("--out", help="output file (default: <run>.photon.hdf5 beside the run)")
    p_exp.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p_exp.set_defaults(func=cmd_export)

    p_an = sub.add_parser(
        "analyse", aliases=["analyze"], help="recompute a run's analysis from its run file"
    )
    p_an.add_argument(
        "run", nargs="+", help="the run file (.h5), or directories of run files (archive mode)"
    )
    p_an.add_argument("--json", action="store_true", help="print one JSON object")
    p_an.add_argument(
        "--figure", action="store_true", help="also re-draw the run's figure (<run>.png)"
    )
    from hbtscope import archive_cli, queue_cli

    archive_cli.add_archive_arguments(p_an)
    p_an.set_defaults(func=cmd_analyse)
    archive_cli.add_parser(sub)
    p_gui = sub.add_parser("gui", help="the live dashboard (docs/gui.md)")
    p_gui.add_argument("--setup", help="setup file (default: the bundled simulated microscope)")
    p_gui.add_argument("--out", help="directory for run files (default: the setup's data_dir)")
    p_gui.set_defaults(func=cmd_gui)

    queue_cli.add_parser(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a service manager, a closed terminal): handled like Ctrl+C."""


class _Termination:
    """How SIGTERM and SIGHUP stop the command.

    Outside a run the handler raises :class:`Terminated` (handled like Ctrl+C). During a run
    (:meth:`run`) raising at an arbitrary point is unsafe: the signal may land inside a
    compiled kernel's call or an HDF5 call (seen: a segmentation fault of a confocal scan, and
    ``SystemError`` from a numba dispatcher). There the first signal only sets the run's stop
    event: the procedure stops at its next ``check_stop`` (status ``aborted``, light sources
    off) and :class:`Terminated` is raised after the run has returned. A second signal, or
    :data:`FORCE_AFTER_S` seconds without the run ending (a procedure waiting long between
    its checks), raises at once, as before.
    """

    FORCE_AFTER_S = 10.0

    def __init__(self) -> None:
        self.received = ""
        self.stop_event: threading.Event | None = None

    def handler(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.stop_event is None or self.received or signum == getattr(signal, "SIGALRM", -1):
            raise Terminated(self.received or name)
        self.received = name
        self.stop_event.set()
        if hasattr(signal, "setitimer"):
            signal.setitimer(signal.ITIMER_REAL, self.FORCE_AFTER_S)

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for name in ("SIGTERM", "SIGHUP", "SIGALRM"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), self.handler)

    def run(self, run: Any) -> Any:
        """``run(stop_event)`` with signals turned into a stop request; then
        :class:`Terminated` if one came."""
        self.stop_event, self.received = threading.Event(), ""
        try:
            outcome = run(self.stop_event)
        finally:
            if hasattr(signal, "setitimer"):
                signal.setitimer(signal.ITIMER_REAL, 0)
            self.stop_event = None
        if self.received:
            raise Terminated(self.received)
        return outcome


_TERMINATION = _Termination()


def _abort_on_termination() -> None:
    """SIGTERM and SIGHUP abort a run like Ctrl+C: status ``aborted``, light sources off."""
    _TERMINATION.install()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _abort_on_termination()
    try:
        return args.func(args)
    except (SetupFileError, UsageError, QueueFileError, QueueUsageError, ArchiveUsageError) as exc:
        print(f"hbtscope: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ParameterError, OutputDirError) as exc:
        print(f"hbtscope: {exc}; nothing was moved or switched on", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        why = f"{exc.args[0]} received" if isinstance(exc, Terminated) else "interrupted"
        print(f"hbtscope: {why}; instruments left in safe state", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one clear line, not a traceback, for the user
        signal_exc = interrupt_in_chain(exc)
        if signal_exc is not None:  # the signal arrived inside a compiled kernel's call
            why = f"{signal_exc.args[0]} received" if isinstance(signal_exc, Terminated) else ""
            print(
                f"hbtscope: {why or 'interrupted'}; instruments left in safe state",
                file=sys.stderr,
            )
            return 130
        if args.debug:
            raise
        outcome = getattr(exc, "run_outcome", None)
        where = f" (run file: {outcome.path})" if outcome is not None else ""
        print(f"hbtscope: {type(exc).__name__}: {exc}{where}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
