"""Where each destination matrix's z comes from when an expert moves to another model (paper §4.4).

The paper moves SVF vectors from Llama-3-8B-Instruct to Mistral-7B-Instruct-v0.3, whose targeted
matrices have identical names and shapes: matrix by matrix, in order (`same-shapes`). It leaves
open whether transfer works across scales; for that, `relative-depth` maps models whose shapes
differ:

- **Layers by relative depth.** Destination block l of L_d takes the source block whose span
  contains the centre of l: l_s = floor((l + 0.5) · L_s / L_d). Equal depths give the identity.
- **Role to role.** A matrix's role is what follows its block number (`mlp.gate_proj`, …): a gate
  vector only ever feeds a gate. A role one model has and the other lacks is refused, not guessed.
- **Along the singular-value index by normalised rank.** z is read as a step function over
  relative rank [0, 1) (entry i covers [i/r, (i+1)/r)), and each destination entry is that
  function's *average* over its own cell (`resample`). Why cell averages rather than linear or
  nearest-neighbour interpolation: a constant vector stays exactly constant (z = 1, the base model,
  maps to z = 1); the mean of z, the average gain over the spectrum, is preserved exactly; values
  never leave the source's range (no overshoot); and a step stays a step at the same relative rank,
  blended over at most one destination cell where its edge falls inside one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from t2core.errors import ConfigError

_BLOCK = re.compile(r"\.(\d+)\.(.+)$")
MAPPINGS = ("same-shapes", "relative-depth")


def slot(name: str) -> tuple[int, str]:
    """(block number, role) of a matrix name: `model.layers.12.mlp.up_proj` -> (12, "mlp.up_proj")."""
    m = _BLOCK.search(name)
    return (int(m.group(1)), m.group(2)) if m else (0, name)


def resample(v: torch.Tensor, r: int) -> torch.Tensor:
    """v (r_s,) -> (r,): the average of v's step function over each of r equal cells of [0, 1).

    Computed from the step function's integral F (piecewise linear, exact at the cell edges),
    in float64: out_j = r · (F((j+1)/r) − F(j/r))."""
    if r < 1:
        raise ConfigError(f"cannot resample a vector to length {r}.")
    x = v.detach().to(torch.float64).reshape(-1)  # (r_s,)
    rs = x.shape[0]
    if rs == r:
        return v.detach().clone()
    integral = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(x, 0) / rs])  # F at the edges
    at = torch.arange(r + 1, dtype=torch.float64) / r  # (r + 1,) destination edges
    pos = (at * rs).clamp(0, rs)
    lo = pos.floor().long().clamp(max=rs - 1)
    frac = pos - lo
    f = integral[lo] + (integral[lo + 1] - integral[lo]) * frac  # F between edges (linear)
    return (torch.diff(f) * r).to(v.dtype)


def source_layer(layer: int, n_src: int, n_dst: int) -> int:
    """The source block for destination block `layer` (relative depth, block centres)."""
    return min(n_src - 1, (2 * layer + 1) * n_src // (2 * n_dst))


@dataclass(frozen=True)
class Mapping:
    """How a source expert's vectors become a destination expert's: one source matrix per destination
    matrix, and how the vector's length changes."""

    kind: str  # same-shapes | relative-depth
    sources: tuple[tuple[str, str], ...]  # (destination matrix, source matrix), in destination order
    layers: tuple[tuple[int, int], ...]  # (destination block, source block)

    def apply(self, src: dict[str, torch.Tensor], dst_ranks: dict[str, int]) -> dict[str, torch.Tensor]:
        """{destination matrix: vector (r_d,)} from {source matrix: vector (r_s,)}."""
        return {d: resample(src[s], dst_ranks[d]) for d, s in self.sources}

    def describe(self) -> dict:
        return {"kind": self.kind, "layers": [list(p) for p in self.layers],
                "interpolation": "none" if self.kind == "same-shapes" else "cell-average over normalised rank"}


def plan_mapping(src_ranks: dict[str, int], dst_ranks: dict[str, int]) -> Mapping:
    """Same names and ranks: matrix by matrix (the paper). Otherwise blocks by relative depth and
    roles by name; refuses (ConfigError) roles that only one side has."""
    if set(src_ranks) == set(dst_ranks) and all(src_ranks[n] == dst_ranks[n] for n in dst_ranks):
        blocks = sorted({slot(n)[0] for n in dst_ranks})
        return Mapping("same-shapes", tuple((n, n) for n in dst_ranks), tuple((b, b) for b in blocks))
    src = {slot(n): n for n in src_ranks}
    src_roles = {r for _, r in src}
    dst_roles = {slot(n)[1] for n in dst_ranks}
    if src_roles != dst_roles:
        only_src, only_dst = sorted(src_roles - dst_roles), sorted(dst_roles - src_roles)
        raise ConfigError(
            "cannot map this expert onto the destination model: "
            + (f"the destination has no {', '.join(only_src)}; " if only_src else "")
            + (f"the expert has no vector for {', '.join(only_dst)}; " if only_dst else "")
            + "an expert transfers only between models with the same matrix roles (same target spec: an MLP "
              "expert to MLP targets, attention to attention); train the expert with the destination's targets.")
    n_src = 1 + max(b for b, _ in src)
    n_dst = 1 + max(slot(n)[0] for n in dst_ranks)
    layers = {b: source_layer(b, n_src, n_dst) for b in range(n_dst)}
    sources = []
    for name in dst_ranks:
        b, role = slot(name)
        if (layers[b], role) not in src:
            raise ConfigError(f"the expert has no {role} in block {layers[b]}, which destination block {b} maps "
                              "to; the expert file is incomplete.")
        sources.append((name, src[(layers[b], role)]))
    return Mapping("relative-depth", tuple(sources), tuple(sorted(layers.items())))
