"""The benchmark plot: callback latency under each flood, memory over many logins, and the
hub logins' latencies (20 users at once). `python benchmarks/plot.py results.json out.png`
redraws it from a results file."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write(raw: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [key for key in ("flood_ms", "leaks", "hub") if raw.get(key)]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.2), squeeze=False)
    for ax, key in zip(axes[0], panels, strict=False):
        if key == "flood_ms":
            modes = [m for m, v in raw[key].items() if v]
            ax.boxplot([raw[key][m] for m in modes], showfliers=False)
            ax.set_xticks(range(1, len(modes) + 1), modes)
            for i, mode in enumerate(modes, 1):
                values = raw[key][mode]
                ax.scatter([i] * len(values), values, s=14, alpha=0.7)
            ax.axhline(1000, color="red", linestyle="--", linewidth=1, label="target 1 s")
            ax.set_yscale("log")
            ax.set_ylabel("real callback → login done (ms, log)")
            ax.set_xlabel("flood from another process")
            ax.set_title("Loopback listener under a junk flood")
            ax.legend(loc="upper left")
        elif key == "hub":
            hub = raw[key]
            series = [("8b end to end", hub["latency_ms"]),
                      ("8c token POST", hub["token_post_ms"]),
                      ("8d relay (8b − 8c)", hub["relay_ms"]),
                      ("8e outside kernel", hub["relay_outside_kernel_ms"])]
            ax.boxplot([values for _, values in series], showfliers=False)
            ax.set_xticks(range(1, len(series) + 1), [label for label, _ in series],
                          fontsize=8)
            for i, (_, values) in enumerate(series, 1):
                ax.scatter([i] * len(values), values, s=12, alpha=0.7)
            ax.set_ylabel("ms per login")
            ax.set_title(f"{hub['users']} JupyterHub users logging in at once")
        else:
            for where, result in raw[key].items():
                xs, ys = zip(*result["series"], strict=True)
                ax.plot(xs, ys, marker="o", label=f"{where} (traced Python memory)")
            ax.axhline(0, color="grey", linewidth=0.8)
            ax.set_xlabel("logins since the baseline")
            ax.set_ylabel("KiB kept (tracemalloc, after gc)")
            ax.set_title("Memory over repeated %auth0_login")
            ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    import json
    import sys

    write(json.loads(Path(sys.argv[1]).read_text())["raw"], Path(sys.argv[2]))
