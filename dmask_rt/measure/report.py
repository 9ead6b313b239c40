"""A session summary (`MeasureSeries.summary()`) as a short plain-text report for a clinician."""
from __future__ import annotations


def _num(value: float | None, fmt: str = ".1f") -> str:
    return "n/a" if value is None else format(value, fmt)


def format_summary(summary: dict) -> str:
    """Lines of text: lids per eye, alignment, lid events, nystagmus; medians (IQR) over open-eye frames."""
    lines = [
        f"{summary['frames']} frames, {summary['frames_with_face']} with a face, "
        f"{summary['frames_eyes_open']} with both eyes open, {_num(summary['duration_s'])} s",
        f"Lids (median (IQR) over open-eye frames; mm, and iris diameters of {summary['iris_diameter_mm']} mm):",
    ]
    for side, name in (("r", "right"), ("l", "left")):
        eye = summary["eyes"][side]
        parts = [
            f"{label} {_num(eye[f'{key}_mm']['median'])} ({_num(eye[f'{key}_mm']['iqr'])}) mm"
            f" = {_num(eye[f'{key}_iris']['median'], '.2f')} iris"
            for key, label in (("mrd1", "MRD1"), ("mrd2", "MRD2"), ("fissure_height", "fissure height"))
        ]
        parts.append(f"openness {_num(eye['openness']['median'], '.2f')}")
        lines.append(f"  {name} eye: " + ", ".join(parts))
    a = summary["alignment"]
    lines += [
        f"  MRD1 right - left: {_num(a['mrd1_asymmetry_mm']['median'])} mm",
        "Eye alignment, right - left (+ horizontal = converging, + vertical = right eye higher):",
        f"  deviation from fixating the camera: horizontal {_num(a['deviation_horizontal_deg']['median'])} deg"
        f" ({_num(a['deviation_horizontal_pd']['median'])} PD), IQR {_num(a['deviation_horizontal_deg']['iqr'])} deg;"
        f" vertical {_num(a['deviation_vertical_deg']['median'])} deg"
        f" ({_num(a['deviation_vertical_pd']['median'])} PD), IQR {_num(a['deviation_vertical_deg']['iqr'])} deg",
        f"  = angle difference {_num(a['difference_horizontal_deg']['median'])} deg horizontal"
        f" minus the {_num(a['vergence_deg']['median'])} deg convergence that looking into the camera needs",
        f"  common gaze IQR: horizontal {_num(a['gaze_horizontal_deg']['iqr'])} deg,"
        f" vertical {_num(a['gaze_vertical_deg']['iqr'])} deg",
    ]
    ev = summary["lid_events"]
    lines.append(
        f"Lid events: {ev['blinks']} blinks ({_num(ev['blink_rate_per_min'])}/min), {ev['closures']} longer closures, "
        f"winks right {ev['winks_r']}, left {ev['winks_l']}"
    )
    for e in ev["events"]:
        lines.append(f"  {e['kind']} ({e['eyes']}) at {e['start_s']:.2f} s, {1000 * e['duration_s']:.0f} ms")
    lines.append("Nystagmus (sustained over >= 2 windows):")
    for key, name in (("both", "both eyes"), ("r", "right eye"), ("l", "left eye")):
        v = summary["nystagmus"][key]
        found = "none" if v["verdict"] == "none" else (
            f"{v['verdict']}, {_num(v['frequency_hz'])} Hz, amplitude horizontal {_num(v['amplitude_horizontal_deg'])}"
            f" / vertical {_num(v['amplitude_vertical_deg'])} deg, {v['start_s']:.1f}-{v['end_s']:.1f} s"
        )
        lines.append(f"  {name}: {found} ({v['windows_detected']} of {v['windows']} windows significant)")
    return "\n".join(lines)
