"""The evaluation's outputs: report.json (every number), report.html (self-contained), a headline table.

The HTML embeds its plots and sample frames as base64 PNG, so it is one file that
opens offline. Note that its sample frames show the original faces: it is a report
for whoever owns the footage, not something to share with the masked video.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..video.outfile import write_atomically
from .runner import CLINICAL, OUTPUTS, ClipRun, Evaluation

LABELS = {"mask": "digital mask", "raw": "raw original", "recoded": "original, JPEG q95 (tracker floor)", "eye_crop": "eye-region crop", "blur": "face blur", "pixelate": "face pixelation"}


@dataclass(frozen=True)
class Target:
    """One of the issue's targets, checked on the mask's pooled numbers; `ok` None: reported only."""

    name: str
    group: str
    text: str
    value: Callable[[dict], float | None]
    ok: Callable[[float, dict], bool] | None


def _get(results: dict, *keys: str) -> float | None:
    node = results
    for key in keys:
        if node is None:
            return None
        node = node[key]
    return node


def _fid(*keys: str) -> Callable[[dict], float | None]:
    return lambda r: _get(r, "fidelity", "pooled", "mask", *keys)


def _clin(*keys: str) -> Callable[[dict], float | None]:
    return lambda r: _get(r, "fidelity", "clinical", "pooled", "mask_drawn", *keys)


def _priv(*keys: str) -> Callable[[dict], float | None]:
    return lambda r: _get(r, "privacy", "mask", *keys)


def _const(*keys: str) -> Callable[[dict], float | None]:
    return lambda r: _get(r, "privacy", "constant_channels", *keys)


def _near_chance(*path: str) -> Callable[[float, dict], bool]:
    # "Within 2 points of chance" read as "at most chance + 2 points": below chance
    # (e.g. no face detected at all) is no privacy risk.
    return lambda v, r: v <= _get(r, "privacy", *path, "chance") + 0.02


PRIMARY, PRIVACY, READABILITY = "clinical (drawn)", "privacy", "readability (old protocol: re-tracked)"
TARGETS = (
    Target("mrd1", PRIMARY, "MRD1 error <= 0.05 iris diameters (mean)", _clin("mrd1", "mean"), lambda v, r: v <= 0.05),
    Target("mrd2", PRIMARY, "MRD2 error <= 0.05 iris diameters (mean)", _clin("mrd2", "mean"), lambda v, r: v <= 0.05),
    Target("place_h", PRIMARY, "iris place, horizontal, error <= 0.03 fissure widths (mean)", _clin("place_h", "mean"), lambda v, r: v <= 0.03),
    Target("place_v", PRIMARY, "iris place, vertical, error <= 0.03 fissure widths (mean)", _clin("place_v", "mean"), lambda v, r: v <= 0.03),
    Target("sclera_above", PRIMARY, "scleral show above agreement >= 0.95", _clin("sclera_above", "agreement"), lambda v, r: v >= 0.95),
    Target("sclera_below", PRIMARY, "scleral show below agreement >= 0.95", _clin("sclera_below", "agreement"), lambda v, r: v >= 0.95),
    Target("closure_f1", PRIMARY, "full-closure events F1 >= 0.95", _clin("closures", "f1"), lambda v, r: v >= 0.95),
    Target("deviation_h", PRIMARY, "horizontal deviation error <= 2 PD (mean)", _clin("deviation_h_pd", "mean"), lambda v, r: v <= 2.0),
    Target("deviation_v", PRIMARY, "vertical deviation error <= 2 PD (mean)", _clin("deviation_v_pd", "mean"), lambda v, r: v <= 2.0),
    Target("pixel_check", PRIMARY, "mask frames whose pixels confirm the drawn eyes (share)",
           lambda r: _get(r, "fidelity", "pixel_check", "pooled", "share"), None),
    Target("identification", PRIVACY, "rank-1 identification <= chance + 2 points", _priv("identification", "rank1"), _near_chance("mask", "identification")),
    Target("verification", PRIVACY, "verification (< 0.6 of own original) = 0%", _priv("verification", "share"), lambda v, r: v == 0.0),
    Target("mask2mask_constant", PRIVACY, "Mask2Mask within clips, every clinical channel constant <= chance + 2 points",
           _const("mask2mask", "rank1"), _near_chance("constant_channels", "mask2mask")),
    Target("mask2mask_across_constant", PRIVACY, "Mask2Mask across clips, every clinical channel constant <= chance + 2 points",
           _const("mask2mask_across", "rank1"), _near_chance("constant_channels", "mask2mask_across")),
    Target("mask2mask", PRIVACY, "Mask2Mask within clips (clinical channels kept)", _priv("mask2mask", "rank1"), None),
    Target("mask2mask_across", PRIVACY, "Mask2Mask across clips of one person (clinical channels kept)", _priv("mask2mask_across", "rank1"), None),
    Target("eye_region", READABILITY, "eye-region landmark error <= 0.8% of width (mean)", _fid("eye_region_error_pct_width", "mean"), lambda v, r: v <= 0.8),
    Target("gaze_right", READABILITY, "gaze error, right eye <= 2 deg (mean)", _fid("gaze_error_deg", "right", "mean"), lambda v, r: v <= 2.0),
    Target("gaze_left", READABILITY, "gaze error, left eye <= 2 deg (mean)", _fid("gaze_error_deg", "left", "mean"), lambda v, r: v <= 2.0),
    Target("retracked_mrd1", READABILITY, "MRD1 error <= 0.05 iris diameters (mean)", _fid("lid_error_iris", "mrd1", "mean"), lambda v, r: v <= 0.05),
    Target("retracked_mrd2", READABILITY, "MRD2 error <= 0.05 iris diameters (mean)", _fid("lid_error_iris", "mrd2", "mean"), lambda v, r: v <= 0.05),
    Target("blink_f1", READABILITY, "blink F1 >= 0.95", _fid("blinks", "f1"), lambda v, r: v >= 0.95),
)


def target_rows(results: dict) -> list[dict]:
    """Each target with the mask's measured value and pass / FAIL / n/a (nothing to measure) / reported."""
    rows = []
    for t in TARGETS:
        value = t.value(results)
        if value is None:
            verdict = "n/a"
        elif t.ok is None:
            verdict = "reported"
        else:
            verdict = "pass" if t.ok(value, results) else "FAIL"
        rows.append({"target": t.name, "group": t.group, "text": t.text, "measured": value, "result": verdict})
    return rows


# --- tables ----------------------------------------------------------------------------

def _num(value: float | None, fmt: str = "{:.2f}", scale: float = 1.0) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else fmt.format(value * scale)


def _pct(value: float | None) -> str:
    return _num(value, "{:.1f}%", 100)


CLINICAL_LABELS = {"mask_drawn": "digital mask, as drawn", "mask_pixels": "digital mask, as its pixels show",
                   "mask": "digital mask, re-tracked (readability)"}
CLINICAL_COLUMNS = ("output", "read", "MRD1 err", "MRD2 err", "upper lid mid err", "lower lid mid err", "place h err", "place v err", "sclera above agrees",
                    "sclera below agrees", "closure F1", "deviation H err PD", "deviation V err PD", "within 2 PD H / V")
CLINICAL_INTRO = ("Clinical fidelity (primary): the original read by the tracker's eye outlines, the mask by the "
                  "outlines it draws (and, beside, by its pixels and re-tracked), the baselines by the tracker; per eye "
                  "and frame, mean errors (MRD and the lids' height at the fissure's middle in iris diameters, iris place in fissure widths, deviation between the "
                  "eyes in prism dioptres), agreements as shares; `read` = frames with a face read in both:")
FIDELITY_COLUMNS = ("output", "tracked", "eye err %w", "eye err /IOD", "gaze R deg", "gaze L deg",
                    "MRD1 err", "MRD2 err", "fissure err", "blink F1", "kappa", "head pose deg")
OCULAR_COLUMNS = ("output", "MRD1 err", "MRD2 err", "fissure err", "openness err", "eye angle err deg",
                  "deviation horiz. err deg", "deviation vert. err deg", "lid events F1", "nystagmus verdict agrees")
PRIVACY_COLUMNS = ("output", "rank-1 (chance; answer-independent)", "rank-1 of detected", "Mask2Mask within clips (chance)",
                   "Mask2Mask across clips (chance)", "verified < 0.6", "face detected")


def clinical_rows(results: dict, clip: str | None = None) -> list[list[str]]:
    """The clinical table's rows, pooled over the clips or of one clip (`clip`: its key)."""
    rows = []
    table = results["fidelity"]["clinical"]["pooled"] if clip is None else results["fidelity"]["clinical"]["per_clip"][clip]
    for name in CLINICAL:
        c = table.get(name)
        if not c:
            continue
        m = lambda *k: _get(c, *k)  # noqa: E731
        rows.append([CLINICAL_LABELS.get(name, LABELS.get(name, name)), _pct(m("read_share")),
                     _num(m("mrd1", "mean"), "{:.3f}"), _num(m("mrd2", "mean"), "{:.3f}"),
                     _num(m("upper_mid", "mean"), "{:.3f}"), _num(m("lower_mid", "mean"), "{:.3f}"),
                     _num(m("place_h", "mean"), "{:.3f}"), _num(m("place_v", "mean"), "{:.3f}"),
                     _num(m("sclera_above", "agreement")), _num(m("sclera_below", "agreement")), _num(m("closures", "f1")),
                     _num(m("deviation_h_pd", "mean"), "{:.1f}"), _num(m("deviation_v_pd", "mean"), "{:.1f}"),
                     f"{_pct(m('deviation_h_pd', 'within_tolerance'))} / {_pct(m('deviation_v_pd', 'within_tolerance'))}"])
    rows.append(["target (mask, as drawn)", "", "<= 0.050", "<= 0.050", "", "", "<= 0.030", "<= 0.030", ">= 0.95", ">= 0.95",
                 ">= 0.95", "<= 2.0", "<= 2.0", ""])
    return rows


def pixel_check_text(results: dict) -> str:
    """One paragraph: how many mask frames the pixels confirm, and the residuals behind it."""
    check = results["fidelity"]["pixel_check"]["pooled"]
    if not check["frames"]:
        return "Pixel check: no drawn frames (pre-masked videos carry no drawn geometry)."
    res = check["residuals_px"]
    parts = [f"{name.replace('_', ' ')} median {_num(res[name]['median'])} px, |.| p90 {_num(res[name]['abs_p90'])} px, "
             f"within 1 px {_pct(res[name]['within_1px'])}" for name in ("upper_lid", "lower_lid", "iris_centre")]
    tolerance = next(iter(results["fidelity"]["pixel_check"]["per_clip"].values()))["tolerance_px"]
    return (f"Pixel check: {check['confirmed']} of {check['frames']} mask frames ({_pct(check['share'])}) show in their "
            f"pixels the eyes they report drawing (shut exactly when no eyeball pixel shows; lid margins at the iris "
            f"centre and the limbus centre within {tolerance} px). Pixels minus drawn: " + "; ".join(parts) + ".")


def fidelity_rows(results: dict) -> list[list[str]]:
    rows = []
    for name in OUTPUTS:
        f = results["fidelity"]["pooled"][name]
        m = lambda *k: _get(f, *k)  # noqa: E731
        rows.append([LABELS[name], _pct(m("tracked_share")),
                     _num(m("eye_region_error_pct_width", "mean"), "{:.2f}%"), _num(m("eye_region_error_iod", "mean"), "{:.3f}"),
                     _num(m("gaze_error_deg", "right", "mean"), "{:.1f}"), _num(m("gaze_error_deg", "left", "mean"), "{:.1f}"),
                     _num(m("lid_error_iris", "mrd1", "mean"), "{:.3f}"), _num(m("lid_error_iris", "mrd2", "mean"), "{:.3f}"),
                     _num(m("lid_error_iris", "fissure", "mean"), "{:.3f}"),
                     _num(m("blinks", "f1")), _num(m("blinks", "kappa")), _num(m("head_pose_error_deg", "mean"), "{:.1f}")])
    rows.append(["target (mask)", "", "<= 0.80%", "", "<= 2.0", "<= 2.0", "<= 0.050", "<= 0.050", "", ">= 0.95", "(> 0.8 paper)", ""])
    return rows


def ocular_rows(results: dict) -> list[list[str]]:
    rows = []
    for name in OUTPUTS:
        o = results["fidelity"]["ocular"]["pooled"][name]
        err = lambda group, fmt="{:.3f}": _num(_get(o, "errors", f"group_{group}", "mean"), fmt)  # noqa: E731
        rows.append([LABELS[name], err("mrd1_iris"), err("mrd2_iris"), err("fissure_height_iris"), err("openness"),
                     err("eye_angle_deg", "{:.1f}"), err("deviation_horizontal_deg", "{:.1f}"),
                     err("deviation_vertical_deg", "{:.1f}"), _num(_get(o, "lid_events", "f1")), _pct(o["nystagmus_agreement"])])
    return rows


def privacy_rows(results: dict) -> list[list[str]]:
    rows = []
    for name in OUTPUTS:
        p = results["privacy"][name]
        ident, m2m = p["identification"], p["mask2mask"]
        rows.append([LABELS[name], f"{_pct(ident['rank1'])} ({_pct(ident['chance'])}; {_pct(ident['chance_given_answers'])})",
                     _pct(ident["rank1_detected"]),
                     _attack(m2m), _attack(p["mask2mask_across"]), _pct(p["verification"]["share"]), _pct(p["detection"]["share"])])
    constant = results["privacy"].get("constant_channels")
    if constant:
        rows.append(["every clinical channel constant", "", "", _attack(constant["mask2mask"]),
                     _attack(constant["mask2mask_across"]), "", ""])
    rows.append(["target (mask)", "<= chance + 2 pts", "", "(reported; constant: <= chance + 2 pts)",
                 "(reported; constant: <= chance + 2 pts)", "0%", "(reported)"])
    return rows


def _attack(result: dict | None) -> str:
    if result is None:
        return "n/a"
    given = result.get("chance_given_answers")
    return f"{_pct(result['rank1'])} ({_pct(result['chance'])}" + ("" if given is None else f"; {_pct(given)}") + ")"


def _markdown(columns: tuple[str, ...], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def headline(results: dict) -> str:
    """The headline tables (fidelity, privacy, targets) as Markdown."""
    clips = ", ".join(f"{Path(c['video']).name} ({c['frames']} frames)" for c in results["clips"])
    gallery = results["privacy"]["gallery"]
    targets = [[r["group"], r["text"], _num(r["measured"], "{:.3f}"), r["result"]] for r in target_rows(results)]
    parts = [
        f"Clips: {clips}. Attack gallery: {gallery['identities']} identities, {gallery['embeddings']} embeddings; "
        f"probes every {results['settings']['step']} frames.",
        CLINICAL_INTRO,
        _markdown(CLINICAL_COLUMNS, clinical_rows(results)),
        pixel_check_text(results),
        "Readability (the old protocol: the original and every output through the same tracker; mean over frames "
        "where both show a face; lid errors in iris diameters):",
        _markdown(FIDELITY_COLUMNS, fidelity_rows(results)),
        "Ocular measures as `dmask measure` reads them (original vs output, mean error over frames with the "
        "original's eyes open; lengths in iris diameters):",
        _markdown(OCULAR_COLUMNS, ocular_rows(results)),
        "Privacy (dlib ResNet; a frame without a detected face is not identified; in brackets chance = 1 / "
        "identities, and the rank-1 of the same answers given in a random order):",
        _markdown(PRIVACY_COLUMNS, privacy_rows(results)),
        "Targets (digital mask):",
        _markdown(("group", "target", "measured", "result"), targets),
    ]
    if results["skipped"]:
        parts.append("Skipped: " + "; ".join(f"{s['item']}: {s['reason']}" for s in results["skipped"]))
    return "\n\n".join(parts)


# --- JSON ------------------------------------------------------------------------------

def jsonable(value: object) -> object:
    """Numbers and containers as JSON values; numpy arrays as (nested) lists; NaN and inf as null."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(np.round(value.astype(float), 5).tolist())
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    return value


def _series_json(run: ClipRun) -> dict:
    """Per-frame measures of the original and the mask, for anyone re-plotting them."""
    out = {}
    for name in ("original", "mask"):
        s = run.series[name]
        out[name] = {"face": s.found, "openness": s.openness, "mrd_iris": s.lids, "eye_angles_deg": s.eye_angles,
                     "head_angles_deg": s.head_angles}
    out["mask"]["fit_rms_px"] = run.fit_rms_px
    return out


def to_json(evaluation: Evaluation) -> dict:
    """report.json: the results, the targets' verdicts and the per-frame measures."""
    results = dict(evaluation.results)
    results["targets"] = target_rows(results)
    results["series"] = {Path(r.path).name: _series_json(r) for r in evaluation.runs}
    return jsonable(results)


# --- HTML ------------------------------------------------------------------------------

def _png(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _trace_plot(run: ClipRun) -> str:
    import matplotlib.pyplot as plt

    o, m = run.series["original"], run.series["mask"]
    panels = [
        ("openness (right eye)", o.openness[:, 0], m.openness[:, 0]),
        ("openness (left eye)", o.openness[:, 1], m.openness[:, 1]),
        ("MRD1 right (iris d.)", o.lids[:, 0, 0], m.lids[:, 0, 0]),
        ("gaze horizontal right (deg)", o.eye_angles[:, 0, 0], m.eye_angles[:, 0, 0]),
        ("gaze vertical right (deg)", o.eye_angles[:, 0, 1], m.eye_angles[:, 0, 1]),
        ("head yaw (deg)", o.head_angles[:, 0], m.head_angles[:, 0]),
    ]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 1.6 * len(panels)), sharex=True)
    for ax, (title, a, b) in zip(axes, panels):
        ax.plot(a, label="original", lw=1.2)
        ax.plot(b, label="mask", lw=1.2)
        ax.set_ylabel(title, fontsize=7, rotation=0, ha="right")
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7, loc="upper right")
    axes[-1].set_xlabel("frame")
    return _png(fig)


def _histograms(evaluation: Evaluation) -> str:
    import matplotlib.pyplot as plt

    per_clip = evaluation.results["fidelity"]["per_clip"].values()
    panels = [("eye-region error (% width)", lambda p: p["eye_region_error_pct_width"], 0.8),
              ("gaze error (deg, both eyes)", lambda p: p["gaze_error_deg"], 2.0),
              ("MRD1 error (iris diameters)", lambda p: p["lid_error_iris"][:, :, 0], 0.05),
              ("head pose error (deg)", lambda p: p["head_pose_error_deg"], None)]
    fig, axes = plt.subplots(1, len(panels), figsize=(13, 2.8))
    for ax, (title, pick, target) in zip(axes, panels):
        for name in ("mask", "blur", "pixelate", "eye_crop"):
            values = np.concatenate([np.ravel(pick(clip[name]["per_frame"])) for clip in per_clip])
            values = values[np.isfinite(values)]
            if len(values):
                ax.hist(values, bins=30, histtype="step", label=LABELS[name])
        if target is not None:
            ax.axvline(target, color="k", ls="--", lw=1)
        ax.set_title(title, fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    return _png(fig)


def _samples(run: ClipRun) -> str:
    width = max(r.shape[1] for r in run.samples)
    grid = np.vstack([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in run.samples])
    png = cv2.imencode(".png", grid[:, :, ::-1])[1]
    return base64.b64encode(png.tobytes()).decode()


def _table_html(columns: tuple[str, ...], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def to_html(evaluation: Evaluation) -> str:
    """The self-contained HTML report."""
    results = evaluation.results
    targets = [[r["group"], r["text"], _num(r["measured"], "{:.3f}"), r["result"]] for r in target_rows(results)]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>dmask evaluation</title><style>"
        "body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #bbb;padding:3px 8px;font-size:13px;text-align:right}td:first-child{text-align:left}"
        "img{max-width:100%}</style></head><body>",
        "<h1>dmask evaluation</h1>",
        f"<p>{html.escape(headline(results).split(chr(10))[0])}</p>",
        "<h2>Clinical fidelity (primary)</h2>",
        f"<p>{html.escape(CLINICAL_INTRO)}</p>",
        _table_html(CLINICAL_COLUMNS, clinical_rows(results)),
        f"<p>{html.escape(pixel_check_text(results))}</p>",
        "<h2>Readability (secondary, the old protocol): fidelity</h2>",
        "<p>Original vs each output, tracked with the same tracker; means over frames where both show a face. "
        "Lid errors (MRD1, MRD2, fissure) in iris diameters.</p>",
        _table_html(FIDELITY_COLUMNS, fidelity_rows(results)),
        "<h2>Readability (secondary): ocular measures</h2>",
        "<p>What <code>dmask measure</code> and the doctor's page read, from the fits of the original and of each "
        "output: mean error over frames with the original's eyes open (lengths in iris diameters); lid events "
        "(blinks, winks, closures) agree when the same eyes close at overlapping times; nystagmus: the share of "
        "clips whose verdict is the same.</p>",
        _table_html(OCULAR_COLUMNS, ocular_rows(results)),
        "<h2>Baseline table: privacy</h2>",
        f"<p>Attacker: {html.escape(results['settings']['attacker'])}. A probe frame without a detected face counts as not identified.</p>",
        _table_html(PRIVACY_COLUMNS, privacy_rows(results)),
        "<h2>Targets (digital mask)</h2>",
        _table_html(("group", "target", "measured", "result"), targets),
        "<h2>Error histograms (all clips)</h2>",
        _img(_histograms(evaluation), "error histograms"),
    ]
    fit = results["fidelity"]["fit_rms_px"]["pooled"]
    parts.append(f"<p>Mask fit residual (RMS landmark reprojection error): mean {_num(fit['mean'])} px, "
                 f"p95 {_num(fit['p95'])} px over {fit['n']} frames.</p>")
    for key, run in zip(results["fidelity"]["clinical"]["per_clip"], evaluation.runs):
        name = Path(run.path).name
        parts.append(f"<h2>{html.escape(name)} ({run.width}x{run.height}, {len(run.series['original'].found)} frames)</h2>")
        check = results["fidelity"]["pixel_check"]["per_clip"][key]
        parts.append("<h3>Clinical fidelity</h3>" + _table_html(CLINICAL_COLUMNS, clinical_rows(results, key)[:-1])
                     + f"<p>Pixel check: {check['confirmed']} of {check['frames']} mask frames confirmed "
                     f"({_pct(check['share'])}); failed checks per eye: {html.escape(str(check['failed_checks_per_eye']))}.</p>")
        parts.append("<h3>Per-frame traces: original vs mask</h3>" + _img(_trace_plot(run), f"traces {name}"))
        if run.samples:
            parts.append("<h3>Sample frames: original | mask | eye crop | blur | pixelation</h3>" + _img(_samples(run), f"samples {name}"))
    if results["skipped"]:
        parts.append("<h2>Skipped</h2><ul>" + "".join(
            f"<li>{html.escape(s['item'])}: {html.escape(s['reason'])}</li>" for s in results["skipped"]) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write(evaluation: Evaluation, out_dir: Path) -> tuple[Path, Path]:
    """Write report.json and report.html into `out_dir` (created if missing); returns both paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out_dir / "report.json", out_dir / "report.html"
    write_atomically(json_path, json.dumps(to_json(evaluation), indent=1).encode())
    write_atomically(html_path, to_html(evaluation).encode())
    return json_path, html_path
