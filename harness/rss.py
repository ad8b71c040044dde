"""Memory of a server's process tree over a run, for reports: samples, growth after warm-up, table, CSV.

    first = stats.tree_rss_mb(pid)            # at t=0: the sampler's first sample comes one interval in
    with stats.RssSampler(pid, interval=5) as sampler:
        ...
    samples = rss.records(sampler.samples, first)
    rss.growth(samples, warmup_s=60)          # {"warmup_t", "after_warmup_mb", "last_mb", "max_mb", ...}
    print("\n".join(rss.table(samples)))
    rss.write_csv(samples, Path("rss.csv"))

Sizes are the RSS of the process and all its descendants (``harness.stats.tree_rss_mb``).
"""

from __future__ import annotations

import csv
from pathlib import Path


def records(raw: list[tuple[float, float, dict]], first: dict[int, float] | None = None) -> list[dict]:
    """``RssSampler.samples`` as JSON-able dicts (t, total_mb, per_pid_mb), ``first`` as t=0."""
    found = ([(0.0, sum(first.values()), first)] if first else []) + list(raw)
    return [{"t": t, "total_mb": total, "per_pid_mb": sizes} for t, total, sizes in found]


def growth(samples: list[dict], warmup_s: float) -> dict:
    """From the first sample at or after ``warmup_s`` to the last one (MB)."""
    warm = next((s for s in samples if s["t"] >= warmup_s), samples[-1])
    return {
        "warmup_t": warm["t"],
        "after_warmup_mb": warm["total_mb"],
        "last_mb": samples[-1]["total_mb"],
        "max_mb": max(s["total_mb"] for s in samples),
        "growth_after_warmup_mb": samples[-1]["total_mb"] - warm["total_mb"],
    }


def table(samples: list[dict], max_rows: int = 24) -> list[str]:
    """Time, total and process count, thinned out to about ``max_rows`` rows (the last one always)."""
    step = max(1, -(-len(samples) // max_rows))
    shown = samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])
    return ["   t (s) | server RSS (MB) | processes"] + [
        f"  {s['t']:6.0f} | {s['total_mb']:15.1f} | {len(s['per_pid_mb']):9d}" for s in shown
    ]


def write_csv(samples: list[dict], path: Path) -> None:
    """One row per sample: seconds, total MB, then each process's MB (blank while it did not exist)."""
    pids = sorted({pid for sample in samples for pid in sample["per_pid_mb"]})
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["t_s", "total_mb", *[f"pid_{pid}_mb" for pid in pids]])
        for s in samples:
            sizes = [f"{s['per_pid_mb'][pid]:.1f}" if pid in s["per_pid_mb"] else "" for pid in pids]
            writer.writerow([f"{s['t']:.1f}", f"{s['total_mb']:.1f}", *sizes])
