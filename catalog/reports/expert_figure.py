"""One expert's z along the spectrum per block (`t2 inspect expert --plot`)."""

from __future__ import annotations

from pathlib import Path

from catalog.reports.common import save_figure


def figure_expert(vectors: dict, out: Path, title: str, other: dict | None = None, other_title: str = "") -> Path:
    """`t2 inspect expert`: z − 1 for every matrix along its singular-value index (rows: block and role;
    red boosts, blue damps), the mean change by normalised rank per role, and, with a second expert,
    the cosine of the two experts' changes per block."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from t2core.inspect_expert import layer_cosines, profile_by_rank
    from t2core.transfer.mapping import slot

    names = sorted(vectors, key=slot)
    width = max(int(vectors[n].shape[0]) for n in names)
    img = np.full((len(names), width), np.nan)
    for i, n in enumerate(names):
        img[i, : vectors[n].shape[0]] = (vectors[n].double() - 1).numpy()
    lim = float(np.nanmax(np.abs(img))) or 1e-6
    panels = 3 if other is not None else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.5), squeeze=False, layout="constrained")
    ax = axes[0][0]
    im = ax.imshow(img, aspect="auto", cmap="coolwarm", vmin=-lim, vmax=lim, interpolation="nearest")
    step = max(1, len(names) // 12)
    ax.set_yticks(range(0, len(names), step), [f"{slot(n)[0]}.{slot(n)[1].split('.')[-1]}" for n in names][::step],
                  fontsize=6)
    ax.set(xlabel="singular-value index (largest first)", title=f"z − 1 per matrix\n{title}")
    fig.colorbar(im, ax=ax)
    ax = axes[0][1]
    for role, prof in profile_by_rank(vectors).items():
        ax.plot(np.linspace(0, 1, len(prof)), prof.numpy(), label=role)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set(xlabel="normalised rank", ylabel="mean z − 1 over blocks", title="change along the spectrum")
    ax.legend(fontsize=7)
    if other is not None:
        cos = layer_cosines(vectors, other)
        ax = axes[0][2]
        ax.bar([b for b, _ in cos], [c if c is not None else 0.0 for _, c in cos])
        ax.set(xlabel="block", ylabel="cosine of z − 1", ylim=(-1, 1), title=f"vs {other_title}")
    return save_figure(fig, out)
