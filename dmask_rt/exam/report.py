"""The exam's results (`analysis.analyse`) as one self-contained HTML page for the doctor.

No external resources: inline CSS, the traces as a base64 PNG (matplotlib, Agg backend),
every text escaped. The nine-gaze chart is drawn as ophthalmologists read it, from the
examiner's view: the patient's right gaze on the chart's LEFT, up at the top. The patient
is named only as "masked consultation": the results hold no identity.
"""
from __future__ import annotations

import base64
import html
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402

#: The chart's rows, examiner's view: the patient's right gaze on the left.
NINE_GAZE = (("up_right", "up", "up_left"), ("right", "primary", "left"), ("down_right", "down", "down_left"))
SIDES = {"r": "right", "l": "left"}
AXES = ("horizontal", "vertical")

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:.25em .5em;font-size:.9em;vertical-align:top}
th{background:#f2f2f2}.nine td{width:14em;height:6em}.nine .pos{font-weight:bold;color:#555}
.dev{font-size:1.1em}.warn{color:#a00;font-weight:bold}.muted{color:#777}img{max-width:100%}
"""


def _e(text: object) -> str:
    return html.escape(str(text))


def _missing(value: float | None) -> bool:
    return value is None or not np.isfinite(value)


def _pm(vs: dict | None, fmt: str = ".1f", unit: str = "") -> str:
    """"value ± sd unit" of a {"value", "sd"} (1 sd), or "–" (None or NaN)."""
    if not vs or _missing(vs.get("value")):
        return "–"
    sd = "" if _missing(vs.get("sd")) else f" ± {format(vs['sd'], fmt)}"
    return f"{format(vs['value'], fmt)}{sd}{unit}"


def _num(value: float | None, fmt: str = ".1f", unit: str = "") -> str:
    return "–" if _missing(value) else f"{format(value, fmt)}{unit}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    """An HTML table; cells are escaped here."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _status(entry: dict) -> str:
    return entry["status"] + (f" ({entry['reason']})" if entry.get("reason") else "")


def nine_gaze_chart(motility: dict) -> str:
    """The 3x3 chart: per position the deviation (PD ± 1 sd, ET/XT/HT) and each eye's rotation minus target."""
    rows = []
    for line in NINE_GAZE:
        cells = []
        for pos in line:
            m = motility.get(pos)
            parts = [f'<div class="pos">{_e(pos.replace("_", " "))}</div>']
            if m is None or m["status"] != "measured" or not m.get("deviation"):
                parts.append(f'<div class="muted">{_e(_status(m) if m else "not reached")}</div>')
            else:
                d = m["deviation"]
                parts.append(f'<div class="dev">{_e(d["words"])}</div>')
                parts.append(f"<div>H {_e(_pm(d['horizontal_pd'], unit=' PD'))}, V {_e(_pm(d['vertical_pd'], unit=' PD'))}</div>")
                for s, name in SIDES.items():
                    eye = m["eyes"][s]
                    parts.append(f"<div>{_e(name)} eye vs target: H {_e(_pm(eye['vs_target_horizontal_deg'], unit='°'))},"
                                 f" V {_e(_pm(eye['vs_target_vertical_deg'], unit='°'))}</div>")
            cells.append(f'<td data-gaze="{_e(pos)}">{"".join(parts)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return ('<table class="nine">' + "".join(rows) + "</table>"
            "<p class='muted'>Examiner's view: the patient's right gaze on the chart's left, up at the top. "
            "ET = esotropia (eyes turned in), XT = exotropia, R/L HT = right eye higher. "
            "An eye's rotation minus its target's angle shows under-action (against the gaze) or over-action.</p>")


def traces_png(results: dict) -> bytes:
    """PNG bytes: each eye's calibrated horizontal and vertical angle over the exam, targets dashed, steps shaded."""
    tr = results["traces"]
    t = np.array(tr["time"], float)
    fig, axes = plt.subplots(2, 1, figsize=(12, 6.5), sharex=True, constrained_layout=True)
    colours = {"r": "tab:blue", "l": "tab:orange"}
    for ax, axis in zip(axes, AXES):
        for n, step in enumerate(s for s in results["steps"] if s.get("start_s") is not None and s.get("end_s") is not None):
            name = step["name"]
            ax.axvspan(step["start_s"], step["end_s"], color="0.9" if n % 2 else "0.82", lw=0)
            if axis == "horizontal":
                ax.text((step["start_s"] + step["end_s"]) / 2, 1.0, name.replace("calibration", "cal"), rotation=90,
                        fontsize=6, ha="center", va="top", transform=ax.get_xaxis_transform())
        for s, name in SIDES.items():
            if f"{s}_{axis}_deg" in tr:
                ax.plot(t, np.array(tr[f"{s}_{axis}_deg"], float), color=colours[s], lw=1, label=f"{name} eye")
                ax.plot(t, np.array(tr[f"intended_{s}_{axis}_deg"], float), color=colours[s], lw=1, ls="--",
                        label=f"target, {name} eye")
        ax.set_ylabel(f"{axis} (deg)" + (", + = patient's left" if axis == "horizontal" else ", + = up"))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=7, ncol=4)
    axes[-1].set_xlabel("time (s)")
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=80)
    plt.close(fig)
    return out.getvalue()


def _calibration_section(results: dict) -> str:
    cal = results["calibration"]
    rows = []
    for s, name in SIDES.items():
        eye = cal["eyes"][s]
        rows.append([name, _pm(eye["c_horizontal_mm"], ".2f", " mm"), _pm(eye["c_vertical_mm"], ".2f", " mm"),
                     _pm(eye["rho_horizontal_mm"], ".1f", " mm"), _pm(eye["rho_vertical_mm"], ".1f", " mm"),
                     f"{eye['kappa_horizontal_deg']:g}° / {eye['kappa_vertical_deg']:g}°",
                     f"{_num(eye['residual_horizontal_deg'], '.2f', '°')} / {_num(eye['residual_vertical_deg'], '.2f', '°')}",
                     f"offset: {eye['offset_source']}; gain: {eye['gain_source']['horizontal']}/{eye['gain_source']['vertical']}"])
    notes = "".join(f"<p>{_e(n)}</p>" for n in cal["notes"] if n not in results["summary"]["warnings"])  # those head the page
    return ("<h2>Calibration</h2>" + _table(
        ["eye", "offset c, horizontal", "offset c, vertical", "gain ρ, horizontal", "gain ρ, vertical", "κ used (H/V)",
         "fit residual (H/V, rms)", "from"], rows) + notes
        + f"<p>{_e(results['uncertainty']['statement'])} Every ± is 1 sd.</p>")


def report_html(results: dict, record: dict) -> str:
    """The whole report page (module docstring)."""
    motility = results["nine_gaze"]
    lid_rows = [[pos.replace("_", " ")] + [
        _num(motility[pos]["eyes"][s][f"{m}_mm"], ".1f", " mm") if motility.get(pos, {}).get("eyes") else "–"
        for m in ("mrd1", "mrd2") for s in SIDES] for line in NINE_GAZE for pos in line]
    lag_rows = [[name, SIDES[s],
                 _num(e["slope_mm_per_10deg_down"], ".2f", f" ± {_num(e['slope_se'], '.2f')} mm"),
                 _num(e["scleral_show_mm"], ".1f", " mm"), e["verdict"] + (f" ({e['reason']})" if e.get("reason") else "")]
                for name, lag in results["lid_lag"].items() for s, e in (lag.get("eyes") or {}).items()]
    lag_rows += [[name, "", "", "", _status(lag)] for name, lag in results["lid_lag"].items() if not lag.get("eyes")]
    closure_rows = [[SIDES[s], _num(e["gap_mm"], ".1f", " mm"), e["verdict"]]
                    for c in results["closure"].values() for s, e in (c.get("eyes") or {}).items()]
    rest_parts = []
    for rest in results["rest"].values():
        if rest["status"] != "measured":
            rest_parts.append(f"<p>Rest: {_e(_status(rest))}</p>")
            continue
        sd = rest["fixation_sd_deg"]
        rest_parts.append(f"<p>Blinks: {rest['blinks']} in {rest['duration_s']:.0f} s = {_e(_num(rest['blink_rate_per_min']))} per minute. "
                          "Fixation stability (sd of the calibrated angles, blinks left out): "
                          + _e(", ".join(f"{SIDES[s]} eye H {_num(sd[s]['horizontal'], '.2f', '°')} V {_num(sd[s]['vertical'], '.2f', '°')}"
                                         for s in SIDES)) + "</p>")
    nys_rows = [[name, n.get("gaze") or "primary"] + [
        (n[k]["verdict"] + (f", {n[k]['frequency_hz']:.1f} Hz" if n[k].get("frequency_hz") else "")) if k in n else _status(n)
        for k in ("both", "r", "l")] for name, n in results["nystagmus"].items()]
    cover_parts = []
    for name, c in results["cover"].items():
        text = c.get("finding") or _status(c)
        movement = (f" (movement H {_pm(c['movement_horizontal_deg'], unit='°')}, V {_pm(c['movement_vertical_deg'], unit='°')})"
                    if c.get("movement_horizontal_deg") else "")
        cover_parts.append(f"<p><b>{_e(name.replace('_', ' '))}</b>: {_e(text + movement)}</p>")
        if c.get("warning"):
            cover_parts.append(f"<p class='warn'>{_e(c['warning'])}</p>")
    step_rows = [[s["name"], _status(s), s["deviation"]["words"] if s.get("deviation") else ""] for s in results["steps"]]
    missing = results["summary"]["not_measured"]
    missing_html = ("<ul>" + "".join(f"<li>{_e(m['step'])}: {_e(m['reason'])}</li>" for m in missing) + "</ul>") if missing else "<p>none</p>"
    not_reached = results["summary"]["not_reached"]
    png = base64.b64encode(traces_png(results)).decode("ascii") if len((results["traces"] or {}).get("time", [])) > 1 else None
    started = record.get("started") or results.get("started") or "unknown"
    body = [
        "<h1>Guided eye examination</h1>",
        f"<p>Date: {_e(started)}. Patient: masked consultation.</p>",
        *(f"<p class='warn'>{_e(w)}</p>" for w in results["summary"]["warnings"]),
        _calibration_section(results),
        "<h2>Nine gaze positions: deviation between the eyes</h2>", nine_gaze_chart(motility),
        "<h2>Eye angles over the exam</h2>",
        (f'<img alt="eye angles over the exam" src="data:image/png;base64,{png}">' if png else "<p>no traces in these results</p>"),
        "<p class='muted'>Calibrated visual-axis angles (solid) and the targets' angles for each eye (dashed); steps shaded.</p>",
        "<h2>Lids per gaze position (MRD1, MRD2)</h2>",
        _table(["position", "MRD1 right", "MRD1 left", "MRD2 right", "MRD2 left"], lid_rows),
        "<h2>Lid lag (pursuit)</h2>",
        _table(["step", "eye", "MRD1 rise per 10° down", "sclera above iris", "verdict"], lag_rows),
        "<h2>Gentle closure</h2>",
        _table(["eye", "gap left", "verdict"], closure_rows)
        + "".join(f"<p class='muted'>Complete below {c['threshold_mm']:g} mm. {_e(_status(c))}</p>" for c in results["closure"].values()),
        "<h2>Rest: blinks and fixation</h2>", *rest_parts,
        "<h2>Nystagmus</h2>", _table(["step", "gaze", "both eyes", "right eye", "left eye"], nys_rows),
        "<h2>Cover-uncover</h2>", *cover_parts,
        "<h2>Steps</h2>", _table(["step", "status", "deviation"], step_rows),
        "<h2>Not measured</h2>", missing_html,
        f"<p>Not reached: {_e(', '.join(not_reached) if not_reached else 'none')}</p>",
    ]
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Guided eye examination</title>"
            f"<style>{_CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n")
