"""Model servers in their own process and environment (a vLLM engine cannot share the project's venv).

`wire` is the message format both sides speak; `vllm_env` finds the server's Python; `vllm_server` is
the server's main, run by that Python. Nothing here imports transformers, prefect or duckdb: the
server imports only `t2core.errors`, `t2core.hashing` and this package.
"""
