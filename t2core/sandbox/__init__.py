"""Code-execution sandbox for model-written programs (MBPP / HumanEval scores and rewards, paper §4).

`run_tests(program, TestSpec(...))` judges one program; `run_many` judges a batch in parallel.
The verdict is decided by a judge process the program cannot reach (`inside.py`), both run
isolated by the operating system (`isolate.py`), and the caller reads them with bounded
buffers and deadlines (`runner.py`). docs/sandbox.md has the threat model.
"""

from t2core.sandbox.isolate import Isolation, SandboxLimits, SandboxUnavailable, isolation
from t2core.sandbox.runner import SandboxResult, TestSpec, run_many, run_tests

__all__ = ["Isolation", "SandboxLimits", "SandboxResult", "SandboxUnavailable", "TestSpec", "isolation",
           "run_many", "run_tests"]
