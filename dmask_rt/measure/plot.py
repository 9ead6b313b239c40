"""A one-page picture of a session's measurements: lids, openness with lid events, eyes.

Three panels over time: MRD1 and MRD2 per eye (mm); openness per eye with blinks, winks
and closures shaded; horizontal and vertical eye rotation per eye (degrees). Matplotlib
with the Agg backend: no display needed.
"""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402

from .eyelids import EYE_SIDES  # noqa: E402
from .series import MeasureSeries  # noqa: E402

_EYE_STYLE = {"r": {"color": "tab:blue", "label": "right eye"}, "l": {"color": "tab:orange", "label": "left eye"}}
_EVENT_COLOUR = {"blink": "0.85", "wink": "tab:purple", "closure": "tab:red"}


def plot_series(series: MeasureSeries, title: str) -> bytes:
    """PNG bytes of the three-panel plot of `series`."""
    t = np.array(series.times)
    fig, (lids, openness, eyes) = plt.subplots(3, 1, figsize=(11, 8), sharex=True, constrained_layout=True)
    for s in EYE_SIDES:
        style = _EYE_STYLE[s]
        lids.plot(t, series.column(f"mrd1_{s}_mm"), color=style["color"], label=f"MRD1 {style['label']}")
        lids.plot(t, -series.column(f"mrd2_{s}_mm"), color=style["color"], ls="--", label=f"-MRD2 {style['label']}")
        openness.plot(t, series.column(f"openness_{s}"), **style)
        eyes.plot(t, series.column(f"eye_{s}_horizontal_deg"), color=style["color"], label=f"horizontal, {style['label']}")
        eyes.plot(t, series.column(f"eye_{s}_vertical_deg"), color=style["color"], ls=":", label=f"vertical, {style['label']}")
    for event in series.lid_events():
        openness.axvspan(event.start_s, event.end_s, color=_EVENT_COLOUR[event.kind], alpha=0.4, lw=0)
    lids.axhline(0, color="0.5", lw=0.5)
    lids.set_ylabel("lid margin to pupil (mm)")
    openness.set_ylabel("openness (1 = template)")
    eyes.set_ylabel("eye rotation (deg)")
    eyes.set_xlabel("time (s)")
    for ax in (lids, openness, eyes):
        ax.legend(loc="upper right", fontsize=7, ncol=2)
        ax.grid(alpha=0.3)
    openness.set_title("shaded: blinks (grey), winks (purple), closures (red)", fontsize=8)
    fig.suptitle(title)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=90)
    plt.close(fig)
    return out.getvalue()
