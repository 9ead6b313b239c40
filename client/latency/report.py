"""The harness's outputs: latency.json, PNG plots, and a one-screen text summary."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

# Targets of issue 4, reported against (benchmarks, not tests).
TARGET_ADDED_P50_MS = 33.0
TARGET_ADDED_P99_MS = 50.0
TARGET_SESSIONS = 4
TARGET_DRIFT_MS = 5.0


def write(result: dict[str, Any], out: Path) -> list[Path]:
    """latency.json and the plots into `out`; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "latency.json"
    json_path.write_text(json.dumps(result, indent=1))
    return [json_path, *_plots(result, out)]


def _plots(result: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    runs = result["side_by_side"]
    colours = {"pass": "tab:blue", "mask": "tab:orange"}
    labels = {"pass": "mask off (pass-through)", "mask": "mask on"}

    fig, ax = plt.subplots(figsize=(9, 4))
    for name in ("pass", "mask"):
        series = np.array(runs[name]["series"]).reshape(-1, 2)
        ax.plot(series[:, 0], series[:, 1], ".", ms=3, color=colours[name], label=labels[name])
    ax.set(xlabel="capture time (s)", ylabel="capture-to-receipt latency (ms)", title="Latency over time")
    ax.legend()
    written.append(_save(fig, out / "latency_over_time.png"))

    fig, ax = plt.subplots(figsize=(9, 4))
    for name in ("pass", "mask"):
        values = [ms for _, ms in runs[name]["series"]]
        ax.hist(values, bins=60, alpha=0.6, color=colours[name], label=f"{labels[name]}: p50 {runs[name]['latency_ms'].get('p50', float('nan')):.0f} ms")
    ax.set(xlabel="capture-to-receipt latency (ms)", ylabel="frames", title="Latency histogram")
    ax.legend()
    written.append(_save(fig, out / "latency_histogram.png"))

    if "sweep" in result:
        runs_n = result["sweep"]["runs"]
        n = [int(k) for k in runs_n]
        fig, left = plt.subplots(figsize=(9, 4))
        left.plot(n, [runs_n[k]["fps_out_min"] for k in runs_n], "o-", color="tab:green", label="output fps (worst session)")
        left.axhline(result["sweep"]["criteria"]["min_fps"], color="tab:green", ls=":")
        left.set(xlabel="concurrent sessions", ylabel="frames per second", title="Capacity")
        right = left.twinx()
        right.plot(n, [runs_n[k]["latency_ms"].get("p99", np.nan) for k in runs_n], "s-", color="tab:red", label="p99 latency")
        right.axhline(result["sweep"]["criteria"]["max_p99_ms"], color="tab:red", ls=":")
        right.set_ylabel("p99 latency (ms)")
        left.set_xticks(n)
        left.legend(left.get_lines()[:1] + right.get_lines()[:1], [line.get_label() for line in left.get_lines()[:1] + right.get_lines()[:1]],
                    loc="center left")
        written.append(_save(fig, out / "capacity.png"))

    if "soak" in result:
        soak = result["soak"]
        series = np.array(soak["series"]).reshape(-1, 2)
        relay = np.array(soak["relay"]["samples"]).reshape(-1, 5)
        fig, axes = plt.subplots(4, 1, figsize=(9, 9), sharex=True, height_ratios=(3, 1.5, 1.5, 1))
        axes[0].plot(series[:, 0] / 60, series[:, 1], ".", ms=1, color="tab:orange")
        for rejoin in soak["rejoins"]["each"]:
            axes[0].axvline(rejoin["at_s"] / 60, color="tab:gray", lw=0.5, alpha=0.5)
        axes[0].set(ylabel="latency (ms)", title=f"Soak: {soak['sessions']} consultations, patients rejoining (grey lines)")
        for ax, column, label in ((axes[1], 1, "relay RSS (MiB)"), (axes[2], 2, "open files / threads")):
            ax.plot(relay[:, 0] / 60, relay[:, column], "-", color="tab:purple")
            ax.set_ylabel(label)
        axes[2].plot(relay[:, 0] / 60, relay[:, 3], "-", color="tab:green")
        axes[3].plot(relay[:, 0] / 60, relay[:, 4], "-", color="tab:gray")
        axes[3].set(xlabel="minutes", ylabel="machine CPU %")
        written.append(_save(fig, out / "soak.png"))
    return written


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _ms(stats: dict[str, float], key: str) -> str:
    return f"{stats[key]:.0f}" if key in stats else "-"


def _verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def summary(result: dict[str, Any]) -> str:
    """The one-screen text summary."""
    runs = result["side_by_side"]
    clip = result["clip"]
    lines = [f"dmask latency: {Path(clip['path']).name} at {clip['size'][0]}x{clip['size'][1]}, {clip['fps']:g} fps, "
             f"{result['machine']['cpus']} CPUs", ""]
    lines.append(f"{'':24}{'p50':>7}{'p90':>7}{'p99':>7}{'max':>7}{'fps in':>8}{'fps out':>8}{'dropped':>8}")
    for name, label in (("pass", "mask off (pass-through)"), ("mask", "mask on")):
        r = runs[name]
        lat = r["latency_ms"]
        lines.append(f"{label:24}" + "".join(f"{_ms(lat, k):>7}" for k in ("p50", "p90", "p99", "max"))
                     + f"{r['fps_in']:>8.1f}{r['fps_out']:>8.1f}{r['dropped']:>8}")
    added = runs["added_ms"]
    lines.append(f"added by the mask        p50 {added['p50']:+.1f} ms (target <= {TARGET_ADDED_P50_MS:g}: {_verdict(added['p50'] <= TARGET_ADDED_P50_MS)}), "
                 f"p99 {added['p99']:+.1f} ms (target <= {TARGET_ADDED_P99_MS:g}: {_verdict(added['p99'] <= TARGET_ADDED_P99_MS)})")
    mask = runs["mask"]
    hops = ", ".join(f"{k} {v.get('p50', 0):.0f}" for k, v in mask["hops_ms"].items())
    stages = {**mask["stages_ms"], **{k: v for k, v in mask["relay_stages_ms"].items() if k == "encode"}}
    lines.append(f"mask on, p50 per hop (ms): {hops}")
    lines.append("relay stages, mean ms: " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))
    lines.append("CPU, % of one core (relay / harness peers / whole machine): " + ", ".join(
        f"{label} {runs[name]['cpu_percent']['relay']:.0f} / {runs[name]['cpu_percent']['harness']:.0f} / {runs[name]['cpu_percent']['machine']:.0f}"
        for name, label in (("pass", "mask off"), ("mask", "mask on"))))
    if "sweep" in result:
        sweep = result["sweep"]
        lines.append("")
        lines.append("capacity (mask on): " + "  ".join(
            f"{n}: {r['fps_out_min']:.0f} fps/{_ms(r['latency_ms'], 'p99')} ms{'' if r['meets'] else ' x'}" for n, r in sweep["runs"].items()))
        lines.append("  relay CPU per session, % of one core: " + "  ".join(
            f"{n}: {r['cpu_percent']['relay'] / int(n):.0f}" for n, r in sweep["runs"].items())
            + f"  (harness peers, same machine: {max(r['cpu_percent']['harness'] for r in sweep['runs'].values()):.0f}% at most;"
            f" whole machine: {max(r['cpu_percent']['machine'] for r in sweep['runs'].values()):.0f}% at most)")
        more = " (the sweep's maximum)" if sweep["limited_by_max_sessions"] else ""
        lines.append(f"sessions per machine at >= {sweep['criteria']['min_fps']:g} fps and p99 <= {sweep['criteria']['max_p99_ms']:g} ms: "
                     f"{sweep['sessions_per_machine']}{more} (target >= {TARGET_SESSIONS}: {_verdict(sweep['sessions_per_machine'] >= TARGET_SESSIONS)})")
    if "soak" in result:
        lines += ["", *_soak_summary(result["soak"])]
    return "\n".join(lines)


def _soak_summary(soak: dict[str, Any]) -> list[str]:
    lines = [f"soak: {soak['sessions']} consultations for {soak['minutes']:g} min, each patient away {soak['away_s']:g} s "
             f"every {soak['rejoin_every_s']:g} s"]
    drift = soak["drift_ms"]
    if drift:
        lines.append(f"  latency p50 first minute {_ms(soak['first_minute_ms'], 'p50')} ms, last {_ms(soak['last_minute_ms'], 'p50')} ms: "
                     f"drift p50 {drift['p50']:+.1f} ms, p99 {drift['p99']:+.1f} ms (target |p50 drift| <= {TARGET_DRIFT_MS:g}: "
                     f"{_verdict(abs(drift['p50']) <= TARGET_DRIFT_MS)})")
    fps = [m["fps_out_mean"] for m in soak["per_minute"]]
    if fps:
        lines.append(f"  output fps per session, minute means: {min(fps):.1f}-{max(fps):.1f}")
    relay = soak["relay"]
    if relay["samples"]:
        first, last = relay["samples"][0], relay["samples"][-1]
        lines.append(f"  relay (serving process and room workers): memory {first[1]:.0f} -> {last[1]:.0f} MiB "
                     f"({relay['rss_mib_per_minute']} MiB/min over the second half), open files {first[2]} -> {last[2]}, "
                     f"threads {first[3]} -> {last[3]}")
    rejoins = soak["rejoins"]
    after = rejoins["avatar_after_s"]
    lines.append(f"  rejoins: {rejoins['count']}, failed {len(rejoins['failed'])}" + (
        f"; avatar again after {after['min']:.2f}-{after['max']:.2f} s (median {after['p50']:.2f})" if after else ""))
    if soak["metrics"]:
        m0, m1 = soak["metrics"][0], soak["metrics"][-1]
        lines.append("  /metrics over the soak: " + ", ".join(
            f"{name.removeprefix('dmask_')} {m1.get(name, 0) - m0.get(name, 0):+g}"
            for name in ("dmask_frames_dropped_total", "dmask_freezes_total", "dmask_errors_total", "dmask_room_worker_restarts")))
    return lines
