"""
Synthetic operando cell: a rendered scan beside its truth labels
================================================================

Generates the ``demo`` preset in memory with :func:`dendritect.synthetic.generate` and shows,
for the last step before the first crack spans the electrolyte, a slice across the electrolyte
(y, x) and a slice along the stacking axis (z, x) across the most crack sheets, each beside
the truth labels. Writes ``docs/images/simulate_demo.png``.

Run from the repository root: ``python examples/plot_simulate.py [OUT.png]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.patches import Patch

from dendritect.synthetic import LABELS, generate

NAMES = {0: "electrolyte", 1: "Li electrode", 2: "pore", 3: "crack (empty)",
         4: "crack (Li-filled)", 5: "other"}
COLOURS = ["#d9d9d9", "#4daf4a", "#377eb8", "#e41a1c", "#ff7f00", "#1a1a1a"]


def main(out: Path) -> None:
    cell = generate("demo", seed=0)
    tr = cell.truth
    # The last step before the first crack spans: dry tips still lead the lithium.
    t = max(tr["span_index"] - 1, 0) if tr["span_index"] is not None else cell.scans.shape[0] - 1
    lab = cell.labels[t]
    scan = cell.scans[t]
    # Undo the known drift so the scan and the labels line up in the figure.
    shift = np.round(tr["steps"][t]["drift_shift_vox"]).astype(int)
    scan = np.roll(scan, tuple(-shift), axis=(0, 1, 2))
    crack = np.isin(lab, (LABELS["crack"], LABELS["crack_li"]))
    z = int(np.argmax(crack.sum(axis=(1, 2))))
    # The (z, x) slice that cuts across the most crack sheets, rather than along one.
    crossings = (np.diff(crack.astype(np.int8), axis=2) == 1).sum(axis=(0, 2))
    y = int(np.argmax(crossings))
    lo, hi = np.percentile(scan[lab == 0], [0.5, 99.5])
    lo = min(lo, np.percentile(scan, 1))
    cmap = ListedColormap(COLOURS)
    norm = BoundaryNorm(np.arange(-0.5, 6.5), cmap.N)

    fig, ax = plt.subplots(2, 2, figsize=(9, 8.2), constrained_layout=True)
    ax[0, 0].imshow(scan[z], cmap="gray", vmin=lo, vmax=hi)
    ax[0, 0].set_title(f"scan t={t}, slice z={z} (across the electrolyte)")
    ax[0, 1].imshow(lab[z], cmap=cmap, norm=norm, interpolation="nearest")
    ax[0, 1].set_title("truth labels, same slice")
    ax[1, 0].imshow(scan[:, y], cmap="gray", vmin=lo, vmax=hi, aspect="auto")
    ax[1, 0].set_title(f"scan, slice y={y} (along the stacking axis z)")
    ax[1, 1].imshow(lab[:, y], cmap=cmap, norm=norm, interpolation="nearest", aspect="auto")
    ax[1, 1].set_title("truth labels, same slice")
    for a in ax.flat:
        a.set_xticks([])
        a.set_yticks([])
    ax[1, 0].set_ylabel("z (anode on top)")
    fig.legend(handles=[Patch(color=COLOURS[k], label=v) for k, v in NAMES.items()],
               loc="lower center", ncol=6, bbox_to_anchor=(0.5, -0.04), fontsize=8)
    fig.suptitle(f"dendritect simulate --preset demo (seed 0): step {t} of "
                 f"{cell.scans.shape[0]}, t = {cell.times_s[t] / 3600:.2f} h")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/images/simulate_demo.png"))
