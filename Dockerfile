# One image for the API, the workers and beat: only the command differs (see docker-compose.yml).
# Needs BuildKit (the default builder of current Docker; set DOCKER_BUILDKIT=1 on older engines)
# for the bind mount that keeps the wheels out of the final image's layers.
#
#   docker build -t annotation-platform .                    # production image (the last stage)
#   docker build --target dev -t annotation-platform:dev .   # + dev tools, debugpy, psql, redis-cli
#   docker run --env-file .env annotation-platform annotation-platform db upgrade   # once per release
#   docker run --env-file .env -p 8000:8000 annotation-platform                     # API (gunicorn)
#   docker run --env-file .env annotation-platform celery -A workers.app worker    # a worker
#   docker run --env-file .env annotation-platform celery -A workers.app beat      # beat (exactly one)

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# ---- Stage 1: build every wheel from the lock file (pinned, hash-checked), then the project's own ----
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /build

# Dependencies first, so source edits do not invalidate this layer. The lock has hashes: pip checks them.
COPY requirements.lock requirements-dev.lock ./
RUN pip wheel --no-deps --require-hashes -r requirements.lock -w /wheels

COPY pyproject.toml README.md ./
COPY src/ ./src/
COPY workers/ ./workers/
RUN pip wheel --no-deps . -w /wheels

# ---- Stage 2: runtime (no compilers, no build tools, no dev dependencies; a non-root user) ----
FROM ${PYTHON_IMAGE} AS runtime

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# pg_dump/pg_restore for backups (BACKUP_DIR). Debian bookworm's client is PostgreSQL 15, so the server must be
# 15 or older (docker-compose.yml runs 15). Not pinned: a pin breaks the build at every Debian point release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /app \
        --shell /usr/sbin/nologin app

# Install the project's wheel from the local wheels only: pip resolves its runtime dependencies
# from the locked wheels and fails if any is missing (no index is consulted).
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels /wheels/annotation_platform-*.whl

WORKDIR /app
# `annotation-platform db upgrade` finds alembic.ini, and `serve --prod` deploy/gunicorn.conf.py,
# in the working directory.
COPY alembic.ini ./
COPY migrations/ ./migrations/
COPY deploy/gunicorn.conf.py ./deploy/gunicorn.conf.py

RUN mkdir -p /data /tmp/metrics && chown app:app /data /tmp/metrics
VOLUME ["/data"]

ENV ENVIRONMENT=production \
    DATA_DIR=/data \
    HOST=0.0.0.0 \
    PORT=8000 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/metrics

EXPOSE 8000

# python's slim image has no curl; the standard library is enough. A non-2xx answer raises.
# Liveness only: readiness (database, Redis, workers) is the orchestrator's business, not Docker's restart loop.
# This is the API's check; worker and beat containers override it (docker-compose.yml does).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('PORT', '8000'), timeout=4)"]

# Numeric, so runAsNonRoot-style checks can verify it without reading /etc/passwd.
USER 10001:10001

CMD ["annotation-platform", "serve", "--prod"]

# ---- Development image: the runtime plus the dev dependencies, debugpy and redis-cli (psql is in the runtime) ----
FROM runtime AS dev

USER 0:0
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-tools \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /build/requirements-dev.lock /tmp/requirements-dev.lock
RUN pip install --require-hashes -r /tmp/requirements-dev.lock && rm /tmp/requirements-dev.lock
# The bind-mounted checkout (docker-compose.dev.yml) comes before the installed copy.
ENV ENVIRONMENT=development \
    PYTHONPATH=/app/src:/app
USER 10001:10001
CMD ["annotation-platform", "serve", "--reload"]

# ---- The default target: the production runtime, unchanged ----
FROM runtime AS production
