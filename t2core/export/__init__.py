"""Experts leaving the T2_HOME they were trained in (issue 37; docs/experts.md).

- `package`: an SVF expert (paper §3.2) as a directory with a sha256 manifest (`write_package`,
  `read_package`, `install`), what `t2 experts export ID DIR` and `t2 experts import DIR` move;
- `lowrank`: the expert's change ΔW = U diag(s ⊙ (m − 1)) Vᵀ and its best rank-r truncation (Eckart–Young);
- `peft_lora`: that truncation as a PEFT LoRA adapter a multi-adapter server loads (`to_peft`, `rank_for`,
  `write_adapter`), what `t2 experts export ID DIR --format peft --rank r|auto` writes;
- `exporter`: one export of one expert in either format (`export_expert`), what the command and the
  `experts-api` flow call.

The API for code (a server that exports adapters itself):

    from t2core.experts import ExpertRef
    from t2core.export import rank_for, to_peft

    ref = ExpertRef.resolve("svf:14eba7e0")
    out = to_peft(ref, "/tmp/arc-lora", rank="auto", tol=0.05)   # LoraExport: .path, .rank, .truncation
"""

from t2core.export.exporter import FORMATS, Exported, check_export, export_expert, factors_for
from t2core.export.lowrank import Truncation, smallest_rank, spectra, truncation
from t2core.export.package import Package, check_model, install, read_package, write_package
from t2core.export.peft_lora import LoraExport, rank_for, stored_factors, to_peft, write_adapter

__all__ = ["FORMATS", "Exported", "LoraExport", "Package", "Truncation", "check_export", "check_model", "export_expert",
           "factors_for", "install", "rank_for", "read_package", "smallest_rank", "spectra", "stored_factors", "to_peft",
           "truncation", "write_adapter", "write_package"]
