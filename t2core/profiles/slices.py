"""One slice of a profile: an evaluation, an expert's training, a baseline (validated when built).

Split from settings.py, which holds the profile itself; every override key is checked against the
config it will reach (`_check_keys`), so a typo fails when the profile is defined.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from t2core.errors import ConfigError
from t2core.methods import Method, adapter_products, method_of_product


@dataclass(frozen=True)
class EvalSlice:
    task: str
    split: str = "test"
    limit: int | None = None  # None: the whole split

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"eval slice {self.task}: limit={self.limit} must be >= 1 or None.")


@dataclass(frozen=True)
class TrainSlice:
    """One SVF expert to train: the task and the RLConfig overrides for this profile."""

    task: str
    overrides: tuple[tuple[str, object], ...] = ()  # (RLConfig field, value) pairs
    kl_grid: tuple[float, ...] = field(default=(), metadata={
        "help": "λ chosen on validation among these, one expert each (paper A.1); (): the kl_coef override"})

    def __post_init__(self) -> None:
        from t2core.training.config import RLConfig
        from t2core.training.kl_grid import check_kl_grid

        _check_keys(f"train slice {self.task}", self.overrides, RLConfig)
        check_kl_grid(self.kl_grid)
        if self.kl_grid and "kl_coef" in dict(self.overrides):
            raise ConfigError(f"train slice {self.task}: kl_coef and kl_grid both set; the grid chooses λ.")

    def rl_kwargs(self) -> dict[str, object]:
        return dict(self.overrides)


def _check_keys(where: str, overrides: tuple[tuple[str, object], ...], config_cls: type) -> None:
    """A typo in a profile override fails when the profile is defined (at import), naming the key."""
    known = {f.name for f in fields(config_cls)} - {"task"}
    for key, _ in overrides:
        if key not in known:
            raise ConfigError(f"{where}: unknown {config_cls.__name__} setting {key!r}; known: "
                              f"{', '.join(sorted(known))}.")


@dataclass(frozen=True)
class BaselineSlice:
    """One PEFT baseline to train and evaluate next to the SVF experts (paper Table 1, Table 7).

    `method` lora / ia3 / dora are trained by next-token prediction on reference solutions
    (NTPConfig overrides); `lora-pg` is LoRA trained by the SVF experts' REINFORCE loop
    (RLConfig overrides; the profile's SVF settings for the task are the defaults).
    """

    task: str
    method: str = "lora"
    overrides: tuple[tuple[str, object], ...] = ()

    def __post_init__(self) -> None:
        if self.method not in adapter_products():
            raise ConfigError(f"baseline {self.task}: method={self.method!r} must be one of "
                              f"{', '.join(adapter_products())}.")
        if self.entry.objective == "pg":
            from t2core.training.config import RLConfig as config_cls
        else:
            from t2core.training.ntp import NTPConfig as config_cls
        _check_keys(f"baseline {self.method}/{self.task}", self.overrides, config_cls)

    @property
    def entry(self) -> Method:
        """How this baseline is trained and applied (t2core/methods)."""
        m = method_of_product(self.method)
        assert m is not None
        return m

    def kwargs(self) -> dict[str, object]:
        return dict(self.overrides)
