"""Nystagmus: a rhythmic eye oscillation, looked for in sliding windows of the eye angles.

For each window (default 2 s, stepped by half a window) of one eye's horizontal and
vertical angle in the head (degrees; or of both eyes' mean, the conjugate movement):

1. Resample on the timestamps to a uniform grid at the series' median frame rate
   (linear interpolation), so a variable frame rate does not smear the spectrum;
   a window with a gap over `max_gap_s` (no face) is skipped.
2. Remove the null model by least squares: a straight line (slow drift and the mean gaze
   are not nystagmus) and, when the head pose is given, the head's yaw, pitch, roll, x,
   y, z and their time derivatives (12 regressors, `head_covariates`):

       x(t) = a + b t + sum_k g_k h_k(t) + sum_k g'_k dh_k/dt(t) + residual.

   Why: the fitted eye angles follow head motion. The fit used to smooth the head pose
   it fitted the eyes against, so while the head moved the pose lagged and the eye
   angles took up the difference, an error of about (lag) x (head velocity), plus
   couplings between pose and eye angle; to first order both are linear in the pose and
   its velocity. On p03 (head swaying side to side at 1.1 Hz, x +-15 mm, yaw +-6 deg,
   roll +-4 deg, and up and down at twice that) the eye angles then swung +-15 deg
   horizontally and, at 2.2 Hz, +-8 deg vertically in the fitted head, and these 12
   regressors explained 94-99% of their variance (R^2 of the mean: 0.99 horizontal,
   0.94 vertical; pose alone 0.12 and 0.33). It is not the vestibulo-ocular reflex: the
   eyes moved with the head, not against it, and the eye angles that would fixate the
   camera explain under 2%. The fit now smooths only what it shows (`fit/fitter.py`),
   which cut the swing from an SD of 6.8-7.6 to 2.6-3.3 deg (0.9-1.0 with the head
   still), but not to nothing: without these regressors the single-eye signals of p02,
   p03, p05 and p07 were still called sustained nystagmus; with them, none is.
3. Peak, per axis: the highest local maximum of the 8x zero-padded, Hann-windowed
   periodogram of the residual strictly inside the band [2 / T, min(`max_hz`, 0.45 x
   frame rate)] (at least two cycles in the window; 1-8 Hz at the default 2 s). A
   spectrum that only falls (or rises) across the band has no rhythm: that axis is "none".
4. Amplitude per axis at a frequency f: the least-squares fit of the null model plus
   c cos(2 pi f t) + d sin(2 pi f t); amplitude = sqrt(c^2 + d^2) degrees, i.e. half the
   peak-to-peak of the fundamental.
5. Significance (the noise-floor criterion), per axis: the F statistic of adding that
   sinusoid to the null model with p parameters (2, or 14 with the head: its rank),
   F = ((RSS_0 - RSS_1) / 2) / (RSS_1 / (N - p - 2)), gives the chance p_1 that white
   noise explains as much at one frequency (exact for any fixed regressors); the search
   over the band gives noise about m = 2 T (f_max - f_min) chances, so
   p = 1 - (1 - p_1)^m. The window holds nystagmus when the smaller p over the two axes
   is below `alpha` / 2 (Bonferroni over the axes; default alpha = 0.01) AND the
   amplitude is at least `min_amplitude_deg` (0.5 deg, about twice the amplitude's
   standard error for 1.5 deg per-frame noise over 60 frames). Otherwise the window's
   verdict is "none"; the frequency and amplitude of its strongest peak are still reported.
6. Frequency: the peak of the axis with the smaller p; both axes' amplitudes are
   reported at that frequency.
7. Direction from the two amplitudes: the horizontal share of the power
   A_h^2 / (A_h^2 + A_v^2) above 0.8 is "horizontal", below 0.2 "vertical", else
   "oblique" (0.8 = an amplitude ratio of 2:1, about 27 degrees off an axis).
8. Conjugacy, for the mean of the two eyes only (`eyes` given): a detected window stays
   detected only when each eye alone, at the window's frequency and on its larger axis,
   has the sinusoid with single-frequency p_1 < alpha (no search: m = 1), and the two
   eyes' (c, d) point within 90 degrees of each other (same phase, not opposite).
   Nystagmus is nearly always conjugate; the fit's noise, a glasses reflection on one
   lens, a lid over one iris are not. A one-eyed (dissociated) nystagmus still shows in
   that eye's own signal, which is not asked to be conjugate.

Trust. False alarms, simulated white noise (1.3 deg, 2 s windows): without the head
0.85-0.9% of windows at 25-60 fps; with the head pose of the development clips as
regressors 0.5-0.8% (the test is exact, slightly conservative with the peak search
on fewer degrees of freedom). The mean of two eyes with independent noise: 0.8% of its
windows significant, 0.1% also conjugate. Over 300 simulated 10 s stretches of noise
(with a wandering head) no sustained verdict.
What the head regressors cost: 12 of the window's 60 samples, and the real pose and
its velocity carry energy in the nystagmus band, so they take up part of a true beat.
Per window, a 3 Hz beat in 1.3 deg white noise with the head pose of the development
clips as regressors (without them in brackets) is found in one signal at 1.0 deg 11%
(42%), 1.5 deg 47% (95%), 2.0 deg 79% (100%) of windows; in the conjugate mean of two
such eyes, conjugacy included, at 1.0 deg 27% (90% without head or conjugacy), 1.5 deg
74% (100%), 2.0 deg 89% (100%). A sustained verdict needs two consecutive windows, so
over 10 s a 1.5-degree conjugate beat is called in practically every simulated stretch;
over 3 s, with a smoothly wandering head, 1.5 deg in 82% and 2 deg in 97%. Through the
real fitter a 2-degree, 3-Hz oscillation is recovered as 3.0 Hz, 1.7-2.3 degrees
(tests/test_measure.py); the per-frame eye-angle noise of the fit is about 1-2 degrees
at webcam distances, white from frame to frame, and the fit does not smooth eye angles.
A beat at the frequency at which the head itself moves is partly taken for head motion:
with the head still, as in a clinical examination, nothing is lost but the degrees of
freedom.

Limits. The method sees rotations of the eyeball in two axes only: torsional nystagmus
is invisible. Its null hypothesis is white noise, and real eyes that look around are
not white: a single gaze shift is a step whose spectrum only falls from the band's
lowest frequency (no interior peak, so never significant), but repeated shifts every
half second look like a slow oscillation, and so can blinks: frames around them, with
the iris partly covered, are best left out (`series.py` does). On the development clips
(normal eyes, none fixating) single windows still reach significance during gaze
shifts, talking and blinking: with steps 2 and 8, up to 3 of a signal's windows (p03's
right eye 3 of 6, at 4.3, 5.1 and 3.1 Hz; p02 1 of 11; p04, p06 1), never two
consecutive at agreeing frequencies, so every clip reads "none". Before, p03 read a
sustained 2.3 Hz vertical nystagmus of 3.5 deg (5 of 6 windows of the mean), and p02's
looking around, before partly open frames were left out, a 1.8 Hz "oblique" one. So
the test means most with the head still and the gaze on a fixed target, as in a
clinical examination; a finding should be checked on the video.

Rhythms from 1.2 Hz to just under `max_hz` (8 Hz) are searched and found; 1.0 Hz (two
cycles, at the band's edge) rarely is: use a longer window for slower nystagmus.
Nothing above 0.45 x the frame rate is searched (13.5 Hz at 30 fps).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

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


def head_covariates(t: np.ndarray, head: np.ndarray) -> np.ndarray:
    """(N, 2K) nuisance regressors of a uniformly sampled window: the head pose `head` (N, K)
    and its time derivative (central differences), step 2 of the module docstring."""
    return np.column_stack([head, np.gradient(head, t, axis=0)])


def analyse_window(
    t: np.ndarray,
    angles: np.ndarray,
    covariates: np.ndarray | None = None,
    max_hz: float = 8.0,
    alpha: float = 0.01,
    min_amplitude_deg: float = 0.5,
) -> NystagmusWindow:
    """Verdict for one uniformly sampled window: `t` (N,) s, `angles` (N, 2) [horizontal, vertical] deg,
    `covariates` (N, K) nuisance regressors (e.g. `head_covariates`) removed with the line."""
    n = len(t)
    dt = (t[-1] - t[0]) / (n - 1)
    duration = n * dt
    tt = t - t[0]
    null = _null_basis(tt, covariates)
    x = angles - null @ (null.T @ angles)
    low, high = 2.0 / duration, min(max_hz, 0.45 / dt)
    # The peak is searched continuously, not on the Fourier grid alone: that gives noise
    # about twice as many chances as the grid's frequencies (2x matches a 1% false-alarm
    # rate at alpha = 0.01 in simulation with white noise).
    m = 2 * max(1, int(np.floor(high * duration)) - int(np.ceil(low * duration)) + 1)
    peaks = [_spectral_peak(x[:, a], dt, low, high) for a in range(2)]
    p_values = [1.0 if f is None else _peak_p_value(tt, null, x[:, a], f, m) for a, f in enumerate(peaks)]
    axis = int(np.argmin(p_values))
    frequency = peaks[axis] if peaks[axis] is not None else math.nan
    amplitudes = (math.nan, math.nan) if math.isnan(frequency) else tuple(float(v) for v in _sinusoid(tt, null, x, frequency)[0])
    share = amplitudes[0] ** 2 / max(amplitudes[0] ** 2 + amplitudes[1] ** 2, 1e-12)
    detected = min(p_values) < alpha / 2 and max(amplitudes) >= min_amplitude_deg
    direction = "none"
    if detected:
        direction = "horizontal" if share > 0.8 else "vertical" if share < 0.2 else "oblique"
    return NystagmusWindow(float(t[0]), float(t[0] + duration), detected, frequency, amplitudes, direction, min(p_values))


def conjugate(
    t: np.ndarray,
    window: NystagmusWindow,
    right: np.ndarray,
    left: np.ndarray,
    covariates: np.ndarray | None = None,
    alpha: float = 0.01,
) -> bool:
    """Step 8: do both eyes (`right`, `left`: (N, 2) deg on the window's grid `t`) carry the
    mean's oscillation? Each eye alone, at the window's frequency and on its dominant axis,
    has single-frequency p_1 < `alpha` and the two eyes' phases differ by under 90 degrees."""
    if not window.detected:
        return False
    tt = t - t[0]
    null = _null_basis(tt, covariates)
    axis = int(np.argmax(window.amplitude_deg))
    phases = []
    for eye in (right, left):
        x = eye[:, axis] - null @ (null.T @ eye[:, axis])
        if _peak_p_value(tt, null, x, window.frequency_hz, 1) >= alpha:
            return False
        phases.append(_sinusoid(tt, null, x[:, None], window.frequency_hz)[2][:, 0])
    return float(phases[0] @ phases[1]) > 0


def nystagmus_windows(
    times: np.ndarray,
    angles: np.ndarray,
    window_s: float = 2.0,
    max_gap_s: float = 0.2,
    head: np.ndarray | None = None,
    eyes: tuple[np.ndarray, np.ndarray] | None = None,
    **criteria: float,
) -> list[NystagmusWindow]:
    """`analyse_window` over windows of `window_s` stepped by half of it.

    `times` (N,) s, possibly irregular; `angles` (N, 2) [horizontal, vertical] degrees,
    NaN rows (no face) dropped. `head` (N, K): the head pose (step 2; rows with NaN
    dropped too), None: none. `eyes` (right, left), each (N, 2): when `angles` is their
    mean, a detected window must also be `conjugate` (step 8), else it is not detected.
    `criteria` go to `analyse_window`.
    """
    times = np.asarray(times, float)
    angles = np.asarray(angles, float)
    columns = [angles]
    if head is not None:
        columns.append(np.asarray(head, float))
    if eyes is not None:
        columns += [np.asarray(e, float) for e in eyes]
    series = np.column_stack(columns)
    keep = np.isfinite(series).all(axis=1)
    times, series = times[keep], series[keep]
    if len(times) < 2:
        return []
    rate = 1.0 / float(np.median(np.diff(times)))
    n_head = 0 if head is None else columns[1].shape[1]
    out = []
    start = times[0]
    while start + window_s <= times[-1] + 1.5 / rate:  # the last frame covers one interval
        inside = (times >= start - 1e-9) & (times < start + window_s)
        span = times[inside]
        gaps = np.diff(np.concatenate([[start], span, [start + window_s]]))
        if len(span) >= 8 and gaps.max() <= max_gap_s:  # 8: well over the fit's 4 parameters
            grid, values = resample(times, series, rate, start, start + window_s)
            covariates = None if head is None else head_covariates(grid, values[:, 2 : 2 + n_head])
            window = analyse_window(grid, values[:, :2], covariates, **criteria)
            if eyes is not None and window.detected:
                right, left = values[:, 2 + n_head : 4 + n_head], values[:, 4 + n_head :]
                if not conjugate(grid, window, right, left, covariates, criteria.get("alpha", 0.01)):
                    window = replace(window, detected=False, direction="none")
            out.append(window)
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


def _null_basis(t: np.ndarray, covariates: np.ndarray | None) -> np.ndarray:
    """(N, p) orthonormal basis of the null model: a + b t, plus the covariates (centred, each
    scaled to unit length; columns that add nothing, e.g. a head held perfectly still, are
    dropped so p is the true number of fitted parameters)."""
    columns = [np.ones_like(t), t]
    if covariates is not None and covariates.size:
        columns += list((covariates - covariates.mean(axis=0)).T)
    design = np.column_stack(columns)
    design = design / np.maximum(np.linalg.norm(design, axis=0), 1e-300)
    u, s, _ = np.linalg.svd(design, full_matrices=False)
    return u[:, : int((s > s[0] * 1e-8).sum())]


def _sinusoid(t: np.ndarray, null: np.ndarray, x: np.ndarray, frequency: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of `x` (N, K), already orthogonal to the null basis `null`: the amplitude
    sqrt(c^2 + d^2) of the least-squares fit null + c cos(wt) + d sin(wt), the fit's
    residual sum of squares, and (c, d) (2, K)."""
    w = 2 * math.pi * frequency
    wave = np.column_stack([np.cos(w * t), np.sin(w * t)])
    wave = wave - null @ (null.T @ wave)
    coef = np.linalg.lstsq(wave, x, rcond=None)[0]
    rss = ((x - wave @ coef) ** 2).sum(axis=0)
    return np.hypot(coef[0], coef[1]), rss, coef


def _peak_p_value(t: np.ndarray, null: np.ndarray, x: np.ndarray, frequency: float, m: int) -> float:
    """Chance that white noise alone explains the sinusoid at `frequency` as well, searching m frequencies.

    F = ((RSS_0 - RSS_1) / 2) / (RSS_1 / (N - p - 2)) for the null model alone (RSS_0: `x` is
    already its residual; p = its number of parameters) against null + sinusoid (RSS_1);
    p = 1 - (1 - P(F_{2, N-p-2} > F))^m.
    """
    n, p = len(x), null.shape[1]
    rss0 = float((x**2).sum())
    rss1 = float(_sinusoid(t, null, x[:, None], frequency)[1][0])
    if rss0 <= 0 or n - p - 2 < 1:
        return 1.0
    f_stat = ((rss0 - rss1) / 2) / max(rss1 / (n - p - 2), 1e-300)
    p_single = float(stats.f.sf(f_stat, 2, n - p - 2))
    return float(-np.expm1(m * np.log1p(-min(p_single, 1 - 1e-16))))
