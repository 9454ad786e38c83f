# CPU image: the embedded SmolLM2-135M and the offline datasets (mounted at /data).
#   docker build -t t2 .
#   docker run --rm -v /path/to/shared/datasets:/data -v t2home:/root/.t2 t2 run full-paper --profile smol
# The code sandbox (bubblewrap) needs namespaces that Docker's default seccomp profile may refuse (untested here:
# no Docker on the development machine). If t2 says it cannot isolate generated code, run the container with
# `--security-opt seccomp=unconfined`, or pass `--unsafe-exec` to accept running
# model-written code with rlimits only (README: Sandbox).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends make git bubblewrap util-linux \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/t2
COPY pyproject.toml README.md Makefile ./
COPY t2core t2core
COPY flows flows
COPY catalog catalog
COPY t2cli t2cli
COPY t2ops t2ops
RUN pip install --no-cache-dir "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir -e .
# Fetch and convert the embedded model at build time so containers start offline.
ENV T2_CACHE_DIR=/opt/t2-cache
RUN python -c "from t2core.models.smollm2 import prepare; prepare()"
ENV T2_DATA_DIR=/data PREFECT_SERVER_ANALYTICS_ENABLED=false
ENTRYPOINT ["t2"]
CMD ["--help"]
