# The project image for Docker and Kubernetes work pools: the dependencies of pyproject.toml and the
# repository at /opt/datahub (never installed as a package: flows, tasks, blocks are used from there).
# prefect.yaml's pull step moves into $DATAHUB_PROJECT_DIR, so the same deployment works here and for
# the local process worker. Build: docker build -t datahub-prefect:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATAHUB_PROJECT_DIR=/opt/datahub \
    PYTHONPATH=/opt/datahub \
    PREFECT_HOME=/var/lib/datahub/prefect \
    DATAHUB_STATE_DIR=/var/lib/datahub/state \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1

WORKDIR /opt/datahub

# Dependencies first (their own layer, rebuilt only when pyproject.toml changes). `-r pyproject.toml`
# installs [project].dependencies only, not the project itself; no test extras in the image.
COPY pyproject.toml ./
RUN pip install --no-cache-dir uv \
    && uv pip install --system --no-cache -r pyproject.toml \
    && pip uninstall -y uv

# The code. .dockerignore keeps out .state/, .git, caches, blocks.local.yaml and .env: no secrets in
# the image; they live in Prefect blocks on the server.
COPY . .

RUN useradd --system --uid 10001 --home-dir /var/lib/datahub datahub \
    && mkdir -p /var/lib/datahub/prefect /var/lib/datahub/state \
    && chown -R datahub /var/lib/datahub
USER datahub

# The worker replaces the command with the flow run's; run alone, the image checks its prefect.yaml.
CMD ["python", "-m", "deployments", "check"]
