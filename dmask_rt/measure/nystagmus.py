"""Nystagmus: a rhythmic eye oscillation, looked for in sliding windows of the eye angles.

For each window (default 2 s, stepped by half a window) of one eye's horizontal and
vertical angle (degrees; or of both eyes' mean, the conjugate movement):

1. Resample on the timestamps to a uniform grid at the series' median frame rate
   (linear interpolation), so a variable frame rate does not smear the spectrum;
   a window with a gap over `max_gap_s` (no face) is skipped.
2. Remove a straight line (least squares): slow drift and the mean gaze are not nystagmus.
3. Peak, per axis: the highest local maximum of the 8x zero-padded, Hann-windowed
   periodogram strictly inside the band [2 / T, min(`max_hz`, 0.45 x frame rate)] (at
   least two cycles in the window; 1-8 Hz at the default 2 s). A spectrum that only
   falls (or rises) across the band has no rhythm: that axis is "none".
4. Amplitude per axis at a frequency f: a least-squares fit of a + b t + c cos(2 pi f t) + d sin(2 pi f t);
   amplitude = sqrt(c^2 + d^2) degrees, i.e. half the peak-to-peak of the fundamental.
5. Significance (the noise-floor criterion), per axis: the F statistic of adding that
   sinusoid to the line, F = ((RSS_0 - RSS_1) / 2) / (RSS_1 / (N - 4)), gives the chance
   p_1 that white noise explains as much at one frequency; the search over the band
   gives noise about m = 2 T (f_max - f_min) chances, so p = 1 - (1 - p_1)^m. The window
   holds nystagmus when the smaller p over the two axes is below `alpha` / 2 (Bonferroni
   over the axes; default alpha = 0.01: white noise alone raises a false alarm in
   0.7-0.8% of windows in simulation at 25-60 fps) AND the amplitude is at least
   `min_amplitude_deg` (0.5 deg, about twice the amplitude's standard error for 1.5 deg
   per-frame noise over 60 frames). Otherwise the window's verdict is "none"; the
   frequency and amplitude of its strongest peak are still reported.
6. Frequency: the peak of the axis with the smaller p; both axes' amplitudes are
   reported at that frequency.
7. Direction from the two amplitudes: the horizontal share of the power
   A_h^2 / (A_h^2 + A_v^2) above 0.8 is "horizontal", below 0.2 "vertical", else
   "oblique" (0.8 = an amplitude ratio of 2:1, about 27 degrees off an axis).

Trust: the per-frame eye-angle noise of the fit is about 1-2 degrees at webcam
distances (tests/test_fit.py, tests/test_measure.py), white from frame to frame, and
the fit does not smooth eye angles over time; a 2-degree, 3-Hz oscillation then stands
far above the noise floor (recovered as 3.0 Hz, 1.8-2.2 degrees through the real fitter).
The method sees rotations of the eyeball in two axes only: torsional nystagmus is
invisible. Its null hypothesis is white noise, and real eyes that look around are not
white: a single gaze shift is a step whose spectrum only falls from the band's lowest
frequency (no interior peak, so never significant), but repeated shifts every half
second look like a slow oscillation, and so can blinks: frames around them, with the
iris partly covered, are best left out (`series.py` does). On the development clips
(normal eyes, none fixating) single windows still reach significance during gaze
shifts, talking and blinking (p02, p03, p06, p08: up to 5 of 12 windows), and p03,
whose head sways side to side at about 1-2 Hz while he talks, is called a sustained
2.3 Hz vertical oscillation of 3.5 degrees (his eyes do swing in the fitted head by up
to +-15 degrees; turning them into the camera frame with the head pose does not remove
it). Before partly open frames were left out, p02's looking around also read as a
sustained 1.8 Hz "oblique" nystagmus. So the test means something only with the head
still and the gaze on a fixed target, as in a clinical examination; a finding should
be checked on the video.

In simulation (2 degrees in 1.3 degrees of white noise, 2 s windows at 30 fps) rhythms
from 1.2 Hz to just under `max_hz` (8 Hz) are found in every window; 1.0 Hz (two
cycles, at the band's edge) rarely is: use a longer window for slower nystagmus.
Nothing above 0.45 x the frame rate is searched (13.5 Hz at 30 fps).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class NystagmusWindow:
    start_s: float
    end_s: float
    detected: bool
    frequency_hz: float        # of the strongest in-band peak, also when not detected; NaN: no peak at all
    amplitude_deg: tuple[float, float]  # (horizontal, vertical), half peak-to-peak at that frequency
    direction: str             # "horizontal", "vertical", "oblique" or "none"
    p_value: float             # step 5's p, the smaller over the two axes (compare with alpha / 2)


def resample(times: np.ndarray, values: np.ndarray, rate_hz: float, start: float, end: float) -> tuple[np.ndarray, np.ndarray]:
    """(t, x): `values` (N, ...) linearly interpolated at t = start + n / rate_hz within [start, end)."""
    grid = start + np.arange(int(round((end - start) * rate_hz))) / rate_hz
    columns = [np.interp(grid, times, values[:, k]) for k in range(values.shape[1])]
    return grid, np.column_stack(columns)


def analyse_window(
    t: np.ndarray,
    angles: np.ndarray,
    max_hz: float = 8.0,
    alpha: float = 0.01,
    min_amplitude_deg: float = 0.5,
) -> NystagmusWindow:
    """Verdict for one uniformly sampled window: `t` (N,) s, `angles` (N, 2) [horizontal, vertical] deg."""
    n = len(t)
    dt = (t[-1] - t[0]) / (n - 1)
    duration = n * dt
    tt = t - t[0]
    ramp = np.column_stack([np.ones(n), tt])
    x = angles - ramp @ np.linalg.lstsq(ramp, angles, rcond=None)[0]
    low, high = 2.0 / duration, min(max_hz, 0.45 / dt)
    # The peak is searched continuously, not on the Fourier grid alone: that gives noise
    # about twice as many chances as the grid's frequencies (2x matches a 1% false-alarm
    # rate at alpha = 0.01 in simulation with white noise).
    m = 2 * max(1, int(np.floor(high * duration)) - int(np.ceil(low * duration)) + 1)
    peaks = [_spectral_peak(x[:, a], dt, low, high) for a in range(2)]
    p_values = [1.0 if f is None else _peak_p_value(tt, x[:, a], f, m) for a, f in enumerate(peaks)]
    axis = int(np.argmin(p_values))
    frequency = peaks[axis] if peaks[axis] is not None else math.nan
    amplitudes = (math.nan, math.nan) if math.isnan(frequency) else tuple(float(v) for v in _sinusoid(tt, x, frequency)[0])
    share = amplitudes[0] ** 2 / max(amplitudes[0] ** 2 + amplitudes[1] ** 2, 1e-12)
    detected = min(p_values) < alpha / 2 and max(amplitudes) >= min_amplitude_deg
    direction = "none"
    if detected:
        direction = "horizontal" if share > 0.8 else "vertical" if share < 0.2 else "oblique"
    return NystagmusWindow(float(t[0]), float(t[0] + duration), detected, frequency, amplitudes, direction, min(p_values))


def nystagmus_windows(
    times: np.ndarray,
    angles: np.ndarray,
    window_s: float = 2.0,
    max_gap_s: float = 0.2,
    **criteria: float,
) -> list[NystagmusWindow]:
    """`analyse_window` over windows of `window_s` stepped by half of it.

    `times` (N,) s, possibly irregular; `angles` (N, 2) [horizontal, vertical] degrees,
    NaN rows (no face) dropped. `criteria` go to `analyse_window`.
    """
    times = np.asarray(times, float)
    angles = np.asarray(angles, float)
    keep = np.isfinite(angles).all(axis=1)
    times, angles = times[keep], angles[keep]
    if len(times) < 2:
        return []
    rate = 1.0 / float(np.median(np.diff(times)))
    out = []
    start = times[0]
    while start + window_s <= times[-1] + 1.5 / rate:  # the last frame covers one interval
        inside = (times >= start - 1e-9) & (times < start + window_s)
        span = times[inside]
        gaps = np.diff(np.concatenate([[start], span, [start + window_s]]))
        if len(span) >= 8 and gaps.max() <= max_gap_s:  # 8: well over the fit's 4 parameters
            out.append(analyse_window(*resample(times, angles, rate, start, start + window_s), **criteria))
        start += window_s / 2
    return out


def _spectral_peak(x: np.ndarray, dt: float, low: float, high: float) -> float | None:
    """Frequency of the highest local maximum of the 8x zero-padded, Hann-windowed
    periodogram strictly inside [low, high]; None when the spectrum only falls or rises
    across the band (drift and gaze shifts: no rhythm to speak of)."""
    n_fft = 8 * len(x)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n_fft)) ** 2
    freqs = np.fft.rfftfreq(n_fft, dt)
    i = np.arange(1, len(freqs) - 1)
    local_max = (spectrum[i] > spectrum[i - 1]) & (spectrum[i] >= spectrum[i + 1]) & (freqs[i] > low) & (freqs[i] < high)
    if not local_max.any():
        return None
    candidates = i[local_max]
    return float(freqs[candidates[np.argmax(spectrum[candidates])]])


def _sinusoid(t: np.ndarray, x: np.ndarray, frequency: float) -> tuple[np.ndarray, np.ndarray]:
    """Per column of `x` (N, K): amplitude sqrt(c^2 + d^2) of the least-squares fit
    a + b t + c cos(wt) + d sin(wt), and the fit's residual sum of squares."""
    w = 2 * math.pi * frequency
    design = np.column_stack([np.ones_like(t), t, np.cos(w * t), np.sin(w * t)])
    coef = np.linalg.lstsq(design, x, rcond=None)[0]
    rss = ((x - design @ coef) ** 2).sum(axis=0)
    return np.hypot(coef[2], coef[3]), rss


def _peak_p_value(t: np.ndarray, x: np.ndarray, frequency: float, m: int) -> float:
    """Chance that white noise alone explains the sinusoid at `frequency` as well, searching m frequencies.

    F = ((RSS_0 - RSS_1) / 2) / (RSS_1 / (N - 4)) for the line alone (RSS_0, x is already
    detrended) against line + sinusoid (RSS_1); p = 1 - (1 - P(F_{2, N-4} > F))^m.
    """
    n = len(x)
    rss0 = float((x**2).sum())
    rss1 = float(_sinusoid(t, x[:, None], frequency)[1][0])
    if rss0 <= 0:
        return 1.0
    f_stat = ((rss0 - rss1) / 2) / max(rss1 / (n - 4), 1e-300)
    p_single = float(stats.f.sf(f_stat, 2, n - 4))
    return float(-np.expm1(m * np.log1p(-min(p_single, 1 - 1e-16))))
