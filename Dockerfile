# Multi-stage image of the platform: the Dagster code location and the CLI, non-root, with a health check.
FROM python:3.11-slim AS builder
# Point this at the PyTorch CPU (or CUDA) wheel index to choose the torch build; PyPI's default is CUDA.
ARG PIP_EXTRA_INDEX_URL=""
WORKDIR /build
COPY pyproject.toml constraints.txt README.md ./
COPY mlplatform ./mlplatform
RUN python -m venv /opt/venv \
    && PIP_EXTRA_INDEX_URL="$PIP_EXTRA_INDEX_URL" /opt/venv/bin/pip install --no-cache-dir -c constraints.txt .

FROM python:3.11-slim
COPY --from=builder /opt/venv /opt/venv
# The health check asks MLPLATFORM_HEALTH_URL: the Dagster UI by default; for the serving app
# (`mlplatform serve --host 0.0.0.0 --port 8000`) set it to http://localhost:8000/health.
ENV PATH=/opt/venv/bin:$PATH MLPLATFORM_DATA_DIR=/data MLPLATFORM_HEALTH_URL=http://localhost:3000/server_info
RUN useradd --create-home --uid 1000 mlplatform && mkdir -p /data && chown mlplatform /data
USER mlplatform
WORKDIR /home/mlplatform
COPY --chown=mlplatform workspace.yaml ./
EXPOSE 3000 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import os, urllib.request; urllib.request.urlopen(os.environ['MLPLATFORM_HEALTH_URL'])" || exit 1
CMD ["dagster-webserver", "-h", "0.0.0.0", "-p", "3000", "-w", "workspace.yaml"]
