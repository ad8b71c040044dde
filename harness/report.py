"""Pieces of measurement reports: the machine, the git revision, markdown tables, texts compared.

    from harness import report
    report.machine()                     # {"cores": 2, "cpu_model": ..., "ram_gb": ..., ...}
    report.table(["engine", "s"], [["openvino", 1.2]])
    report.line_agreement(texts, reference_texts)   # (lines identical, lines in all, images identical)
    report.throughput_chart({"server": [(1, 2.0), (4, 3.9)]}, {"limit": 4.0}, "title", Path("out.png"))

Used by ``scripts/bench.py`` (through ``harness.benchreport``) and ``scripts/soak.py``.
"""

from __future__ import annotations

import difflib
import os
import platform
import subprocess
from pathlib import Path

import psutil

from ocrhub.config import cpu_flags

SIMD_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")  # what the engines' speed depends on


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), platform.processor())
    flags = cpu_flags() or set()
    return {
        "cores": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "simd": [flag for flag in SIMD_FLAGS if flag in flags],
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


def describe_machine(info: dict) -> str:
    simd = " ".join(info.get("simd", [])) or "no AVX2"
    return (
        f"{info['cores']} cores, {info['cpu_model']} ({simd}), {info['ram_gb']} GB RAM, Linux {info['kernel']}, "
        f"Python {info['python']}; load average {' '.join(map(str, info['load_average']))}"
    )


def git_revision(repo: Path) -> str:
    """The short commit, with " (modified)" when tracked files differ from it."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=repo, check=False, capture_output=True, text=True)
        return done.stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        changes = git("status", "--porcelain", "--untracked-files=no")
    except OSError:
        return "unknown"
    return (head or "unknown") + (" (modified)" if changes else "")


def table(headers: list[str], rows: list[list]) -> str:
    """A markdown table; floats with 3 significant digits (whole from 100 up), None as a dash."""

    def cell(value) -> str:
        if value is None:
            return "–"
        if isinstance(value, float):
            return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def line_agreement(texts: list, reference: list) -> tuple[int, int, int]:
    """Per image, lines matched in order (difflib, so one extra line does not shift the rest):
    (identical lines, lines of the longer of the two in all, images with every line identical).
    Images without texts (None) on either side are left out."""
    identical = total = same_images = 0
    for lines, expected in zip(texts, reference):
        if lines is None or expected is None:
            continue
        matcher = difflib.SequenceMatcher(a=lines, b=expected, autojunk=False)
        identical += sum(block.size for block in matcher.get_matching_blocks())
        total += max(len(lines), len(expected))
        same_images += lines == expected
    return identical, total, same_images


def throughput_chart(series: dict[str, list[tuple[int, float]]], levels: dict[str, float], title: str, path: Path) -> bool:
    """Images/s by concurrency, one line per series, a dotted line per level; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axes = plt.subplots(figsize=(6, 4))
    for label, points in series.items():
        axes.plot([c for c, _ in points], [rate for _, rate in points], "o-", label=label)
    for label, value in levels.items():
        axes.axhline(value, color="grey", ls=":", label=label)
    clients = sorted({c for points in series.values() for c, _ in points})
    axes.set_xscale("log", base=2)
    axes.set(xlabel="concurrent clients", ylabel="images/s", title=title)
    axes.set_xticks(clients, [str(c) for c in clients])
    axes.minorticks_off()
    axes.set_ylim(bottom=0)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return True
