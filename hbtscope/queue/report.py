"""The emitter survey report of a queue: one HTML page, a JSON and a CSV table.

Built from the queue directory alone -- the journal and the run files it names -- so
``hbtscope report QUEUE_DIR`` gives the same page on any machine, at any time after the night.
One row per emitter with each measurement's numbers and uncertainties (from the analysis the
run stored, as its ``summary``; a measurement run twice for one emitter is ``g2`` then
``g2_2``) and the links to its run files; the failures and skips with
their reasons; and the population figures of the papers where the data are there: the CEW
histogram and g2(0) versus CEW (Pierini et al. 2020 Figs. 3/6, D'Amato et al. 2023 Fig. 3),
the P_sat distribution, lifetimes and ON fractions. The single-photon cut is the lab's rule,
g2(0) + 2σ < 0.5; the fraction that passes carries its Wilson 68 % interval.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hbtscope.queue.journal import Journal, item_states

REPORT_HTML, REPORT_JSON, REPORT_CSV = "report.html", "report.json", "report.csv"
#: the lab's purity rule: keep an emitter when g2(0) + 2 sigma < 0.5
PURITY_LIMIT = 0.5


@dataclass
class EmitterRow:
    """One emitter's line of the survey."""

    name: str
    x_um: float = math.nan
    y_um: float = math.nan
    values: dict[str, Any] = field(default_factory=dict)  # "measurement.key" -> number
    runs: dict[str, str] = field(default_factory=dict)  # measurement -> run file (relative)
    problems: list[str] = field(default_factory=list)

    def number(self, key: str) -> float:
        v = self.values.get(key)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan

    @property
    def single_photon(self) -> bool | None:
        """g2(0) + 2σ < 0.5 (None without a g2 result)."""
        g, s = self.number("g2.g2_0"), self.number("g2.g2_0_err")
        if not (math.isfinite(g) and math.isfinite(s)):
            return None
        return g + 2 * s < PURITY_LIMIT


def wilson_interval(k: int, n: int, z: float = 1.0) -> tuple[float, float]:
    """Wilson score interval of a binomial fraction k/n (z = 1: 68 %); (0, 1) for n = 0
    (Wilson 1927)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def collect(queue_dir: str | Path) -> dict[str, Any]:
    """Everything the report shows, from the journal and run files of ``queue_dir``."""
    queue_dir = Path(queue_dir)
    records = Journal(queue_dir).records()
    if not records:
        raise FileNotFoundError(f"{queue_dir}: no queue journal there")
    rows: dict[str, EmitterRow] = {}
    for r in records:
        if r["event"] == "emitters_selected":
            for e in r.get("emitters", []):
                rows.setdefault(e["name"], EmitterRow(e["name"], e["x_um"], e["y_um"]))
    failures = []
    other_runs = []
    for key, state in item_states(records).items():
        emitter, measurement = state.get("emitter"), state.get("measurement", "")
        status = state.get("status")
        if status in ("failed", "skipped", "interrupted", "aborted"):
            failures.append(
                {
                    "key": key,
                    "emitter": emitter,
                    "measurement": measurement,
                    "status": status,
                    "reason": state.get("error") or state.get("reason") or "",
                }
            )
        if emitter is None:
            if state.get("run"):
                other_runs.append({"key": key, "measurement": measurement, "run": state["run"]})
            continue
        row = rows.setdefault(emitter, EmitterRow(emitter))
        if status != "finished":
            row.problems.append(f"{measurement}: {status} {state.get('error') or ''}".strip())
            continue
        if measurement == "refocus" or key.split("/")[-1].startswith("refocus"):
            label = "refocus"  # the last refocus of the emitter
        else:  # a measurement run twice for one emitter: g2, g2_2, ...
            n = sum(1 for m in row.runs if m == measurement or m.startswith(f"{measurement}_"))
            label = measurement if n == 0 else f"{measurement}_{n + 1}"
        if state.get("run"):
            row.runs[label] = _relative(state["run"], queue_dir)
        for k, v in (state.get("summary") or {}).items():
            if isinstance(v, int | float | str | bool) or v is None:
                row.values[f"{label}.{k}"] = v
    ended = [r for r in records if r["event"] == "queue_ended"]
    started = [r for r in records if r["event"] == "queue_started"]
    emitters = list(rows.values())
    return {
        "queue_dir": str(queue_dir),
        "name": started[0].get("name", "") if started else "",
        "started": started[0]["time"] if started else "",
        "ended": ended[-1]["time"] if ended else "",
        "status": ended[-1]["status"] if ended else "running",
        "emitters": emitters,
        "failures": failures,
        "other_runs": other_runs,
        "population": population(emitters),
    }


def _relative(path: str, base: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)


def _finite(rows: list[EmitterRow], key: str) -> list[float]:
    return [v for v in (r.number(key) for r in rows) if math.isfinite(v)]


def _lifetimes(rows: list[EmitterRow]) -> list[float]:
    """Per emitter the bright-state lifetime, or the whole trace's when the trace showed no
    grey level to separate it from (ns)."""
    out = []
    for r in rows:
        tau = r.number("tttr_trace.tau_bright_ns")
        if not math.isfinite(tau):
            tau = r.number("tttr_trace.tau_total_ns")
        if math.isfinite(tau):
            out.append(tau)
    return out


def population(rows: list[EmitterRow]) -> dict[str, Any]:
    """The survey's population numbers: counts, the single-photon fraction with its Wilson
    interval, CEW mean and spread, P_sat median and spread, lifetime and ON fraction means."""
    judged = [r.single_photon for r in rows if r.single_photon is not None]
    k = sum(judged)
    lo, hi = wilson_interval(k, len(judged))
    out: dict[str, Any] = {
        "n_emitters": len(rows),
        "n_with_g2": len(judged),
        "n_single_photon": k,
        "single_photon_fraction": k / len(judged) if judged else math.nan,
        "single_photon_fraction_68": [lo, hi],
    }
    for name, key in (
        ("cew_nm", "spectrum_series.cew_first_nm"),
        ("fwhm_nm", "spectrum_series.fwhm_mean_nm"),
        ("P_sat_W", "saturation.P_sat_W"),
        ("I_sat_W_um2", "saturation.I_sat_W_um2"),
        ("tau_bright_ns", "tttr_trace.tau_bright_ns"),
        ("on_fraction", "tttr_trace.on_fraction"),
        ("g2_0", "g2.g2_0"),
    ):
        xs = sorted(_finite(rows, key))
        if xs:
            mean = sum(xs) / len(xs)
            sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
            out[name] = {"n": len(xs), "mean": mean, "sd": sd, "median": xs[len(xs) // 2]}
    return out


# ----------------------------------------------------------------------------- output
def _columns(rows: list[EmitterRow]) -> list[str]:
    keys: list[str] = []
    for r in rows:
        for k in r.values:
            if k not in keys:
                keys.append(k)
    return keys


def collect_from_catalog(catalog: str | Path, filters: list[str] | tuple = ()) -> dict[str, Any]:
    """What the report shows, from a run catalogue (``hbtscope catalog update``) instead of a
    queue directory: the runs that pass ``filters`` and name an ``emitter``, one row per
    emitter (the newest run of each measurement wins; a measurement's values are its
    analysis scalars, uncertainties as ``<key>_err``), every failed run as a failure."""
    from hbtscope.archive.catalog import Catalog

    with Catalog(catalog, create=False) as cat:
        runs = cat.query(list(filters))
    rows: dict[str, EmitterRow] = {}
    failures = []
    for run in sorted(runs, key=lambda r: str(r.get("start_time") or "")):
        emitter, measurement = run.get("emitter") or "", str(run.get("measurement") or "")
        status = str(run.get("status") or "")
        if status != "finished":
            failures.append(
                {
                    "key": run["path"],
                    "emitter": emitter or None,
                    "measurement": measurement,
                    "status": status,
                    "reason": str(run.get("error") or run.get("problem") or ""),
                }
            )
            continue
        if not emitter:
            continue
        row = rows.setdefault(emitter, EmitterRow(emitter))
        row.runs[measurement] = str(run["path"])
        for k, v in (run.get("results") or {}).items():
            if isinstance(v, int | float | str | bool):
                row.values[f"{measurement}.{k}"] = v
        for k, v in (run.get("truth") or {}).items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                row.values.setdefault(f"{measurement}.truth_{k}", v)
        params = run.get("parameters") or {}
        for axis in ("x_um", "y_um"):
            v = params.get(axis)
            if isinstance(v, int | float) and math.isfinite(v):
                setattr(row, axis, float(v))
    emitters = list(rows.values())
    times = [str(r.get("start_time") or "") for r in runs]
    return {
        "queue_dir": str(catalog),
        "name": f"catalogue {Path(catalog).name}"
        + (f" ({' and '.join(filters)})" if filters else ""),
        "started": min(times) if times else "",
        "ended": max(times) if times else "",
        "status": "catalogue",
        "emitters": emitters,
        "failures": failures,
        "other_runs": [],
        "population": population(emitters),
    }


def write_report(queue_dir: str | Path, data: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write report.html, report.json and report.csv into ``queue_dir``; their paths.
    ``data``: what to show (default: :func:`collect` of the queue directory)."""
    queue_dir = Path(queue_dir)
    data = collect(queue_dir) if data is None else data
    rows: list[EmitterRow] = data["emitters"]
    columns = _columns(rows)
    table = [
        {
            "emitter": r.name,
            "x_um": r.x_um,
            "y_um": r.y_um,
            "single_photon": r.single_photon,
            **{c: r.values.get(c) for c in columns},
            "runs": r.runs,
            "problems": r.problems,
        }
        for r in rows
    ]
    out = {k: v for k, v in data.items() if k != "emitters"}
    out["emitters"] = table
    paths = {
        "json": queue_dir / REPORT_JSON,
        "csv": queue_dir / REPORT_CSV,
        "html": queue_dir / REPORT_HTML,
    }
    paths["json"].write_text(json.dumps(_json_safe(out), indent=1), encoding="utf-8")
    with paths["csv"].open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["emitter", "x_um", "y_um", "single_photon", *columns, "runs", "problems"])
        for t in table:
            writer.writerow(
                [t["emitter"], t["x_um"], t["y_um"], t["single_photon"]]
                + [t[c] for c in columns]
                + [";".join(f"{m}={p}" for m, p in t["runs"].items()), "; ".join(t["problems"])]
            )
    paths["html"].write_text(_html(data, columns), encoding="utf-8")
    return paths


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(value: Any, err: Any = None) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int | float):
        if not math.isfinite(value):
            return "–"
        text = f"{value:.4g}"
        if isinstance(err, int | float) and math.isfinite(err):
            text += f" ± {err:.2g}"
        return text
    return html.escape(str(value))


def _figures(rows: list[EmitterRow]) -> list[tuple[str, str]]:
    """(caption, base64 PNG) of each population figure the data allow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs: list[tuple[str, str]] = []

    def emit(fig, caption: str) -> None:
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=90)
        plt.close(fig)
        figs.append((caption, base64.b64encode(buf.getvalue()).decode("ascii")))

    for key, label, caption in (
        ("spectrum_series.cew_first_nm", "CEW (nm)", "CEW histogram (Pierini et al. Fig. 3)"),
        ("saturation.I_sat_W_um2", "I_sat (W/µm²)", "saturation intensity distribution"),
        ("saturation.P_sat_W", "P_sat (W)", "saturation power distribution"),
        ("lifetime", "lifetime (ns)", "lifetimes (bright state, else whole trace)"),
        ("tttr_trace.on_fraction", "ON fraction", "ON fractions (10 ms bins)"),
    ):
        xs = _lifetimes(rows) if key == "lifetime" else _finite(rows, key)
        if len(xs) >= 2:
            fig, ax = plt.subplots(figsize=(4.2, 3.0))
            ax.hist(xs, bins=max(5, min(20, len(xs) // 2)), color="tab:blue", alpha=0.8)
            ax.set_xlabel(label)
            ax.set_ylabel("emitters")
            emit(fig, f"{caption} (n = {len(xs)})")
    pts = [
        (r.number("spectrum_series.cew_first_nm"), r.number("g2.g2_0"), r.number("g2.g2_0_err"))
        for r in rows
    ]
    pts = [p for p in pts if all(math.isfinite(v) for v in p)]
    if pts:
        fig, ax = plt.subplots(figsize=(4.2, 3.0))
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts], [p[2] for p in pts], fmt="o", ms=4)
        ax.axhline(PURITY_LIMIT, color="grey", ls="--", lw=0.8)
        ax.set_xlabel("CEW (nm)")
        ax.set_ylabel("g2(0)")
        emit(fig, "g2(0) versus CEW (D'Amato et al. Fig. 3)")
    return figs


def _html(data: dict[str, Any], columns: list[str]) -> str:
    rows: list[EmitterRow] = data["emitters"]
    pop = data["population"]
    shown = [c for c in columns if not c.endswith("_err")]
    head = "".join(
        f"<th>{html.escape(c)}</th>" for c in ["emitter", "x, y (µm)", "1-photon", *shown]
    )
    body = []
    for r in rows:
        cells = [
            html.escape(r.name),
            f"{r.x_um:.2f}, {r.y_um:.2f}" if math.isfinite(r.x_um) else "",
            {True: "yes", False: "no", None: ""}[r.single_photon],
        ]
        cells += [_fmt(r.values.get(c), r.values.get(f"{c}_err")) for c in shown]
        links = " ".join(
            f'<a href="{html.escape(p)}">{html.escape(m)}</a>' for m, p in r.runs.items()
        )
        problems = html.escape("; ".join(r.problems))
        body.append(
            "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + f"<td>{links}</td>"
            f"<td>{problems}</td></tr>"
        )
    frac = pop.get("single_photon_fraction", math.nan)
    lo, hi = pop.get("single_photon_fraction_68", [math.nan, math.nan])
    summary = (
        f"<p>{pop['n_emitters']} emitters; {pop['n_single_photon']} of {pop['n_with_g2']} with "
        f"a g2 pass g2(0) + 2σ &lt; {PURITY_LIMIT} (fraction {_fmt(frac)}, 68 % interval "
        f"{_fmt(lo)}–{_fmt(hi)}).</p>"
    )
    stats = "".join(
        f"<li>{html.escape(k)}: mean {_fmt(v['mean'])}, sd {_fmt(v['sd'])}, median "
        f"{_fmt(v['median'])} (n = {v['n']})</li>"
        for k, v in pop.items()
        if isinstance(v, dict)
    )
    figures = "".join(
        f'<figure><img src="data:image/png;base64,{b64}"><figcaption>{html.escape(c)}'
        "</figcaption></figure>"
        for c, b64 in _figures(rows)
    )
    failures = "".join(
        f"<tr><td>{html.escape(str(f['key']))}</td><td>{html.escape(str(f['emitter'] or ''))}</td>"
        f"<td>{html.escape(f['measurement'])}</td><td>{html.escape(f['status'])}</td>"
        f"<td>{html.escape(f['reason'])}</td></tr>"
        for f in data["failures"]
    )
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Survey {html.escape(data["name"])}</title>
<style>body{{font-family:sans-serif;margin:1.5em}} table{{border-collapse:collapse;font-size:90%}}
td,th{{border:1px solid #ccc;padding:2px 6px}} figure{{display:inline-block;margin:0.5em}}</style>
</head><body>
<h1>Emitter survey: {html.escape(data["name"])}</h1>
<p>{html.escape(data["queue_dir"])} — {html.escape(data["started"])} to
{html.escape(data["ended"] or "still running")}, queue {html.escape(data["status"])}</p>
{summary}<ul>{stats}</ul>
{figures}
<h2>Emitters</h2>
<table><tr>{head}<th>runs</th><th>problems</th></tr>{"".join(body)}</table>
<h2>Failures and skips</h2>
<table><tr><th>item</th><th>emitter</th><th>measurement</th><th>status</th><th>reason</th></tr>
{failures}</table>
</body></html>
"""
