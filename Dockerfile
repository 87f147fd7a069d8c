# Multi-stage image of the platform. Targets:
#   builder  the pinned install, in a virtual environment copied into the runtime stages;
#   serving  the model API only (`docker build --target serving`): runs `mlplatform serve` on port 8000;
#   dagster  (the default, last stage) the Dagster code location, UI, daemon and the CLI.
# Both runtime stages are non-root and health-checked.
FROM python:3.11-slim AS builder
# Point this at the PyTorch CPU (or CUDA) wheel index to choose the torch build; PyPI's default is CUDA.
ARG PIP_EXTRA_INDEX_URL=""
WORKDIR /build
COPY pyproject.toml constraints.txt README.md ./
COPY mlplatform ./mlplatform
RUN python -m venv /opt/venv \
    && PIP_EXTRA_INDEX_URL="$PIP_EXTRA_INDEX_URL" /opt/venv/bin/pip install --no-cache-dir -c constraints.txt .

FROM python:3.11-slim AS serving
COPY --from=builder /opt/venv /opt/venv
# The health check asks MLPLATFORM_HEALTH_URL: here the serving app's /health.
ENV PATH=/opt/venv/bin:$PATH MLPLATFORM_DATA_DIR=/data MLPLATFORM_HEALTH_URL=http://localhost:8000/health
RUN useradd --create-home --uid 1000 mlplatform && mkdir -p /data && chown mlplatform /data
USER mlplatform
WORKDIR /home/mlplatform
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import os, urllib.request; urllib.request.urlopen(os.environ['MLPLATFORM_HEALTH_URL'])" || exit 1
CMD ["mlplatform", "serve", "--host", "0.0.0.0", "--port", "8000", "--data-dir", "/data"]

FROM serving AS dagster
# The health check asks the Dagster UI; a container of this stage started with `mlplatform serve` sets
# MLPLATFORM_HEALTH_URL=http://localhost:8000/health.
ENV MLPLATFORM_HEALTH_URL=http://localhost:3000/server_info
COPY --chown=mlplatform workspace.yaml ./
EXPOSE 3000 8000
CMD ["dagster-webserver", "-h", "0.0.0.0", "-p", "3000", "-w", "workspace.yaml"]
