# Production image for annotation-platform.
# Needs BuildKit (the default builder of current Docker; set DOCKER_BUILDKIT=1 on older engines)
# for the bind mount that keeps the wheels out of the final image's layers.
#
#   docker build -t annotation-platform .
#   docker run --env-file .env annotation-platform annotation-platform db upgrade   # once per release
#   docker run --env-file .env -p 8000:8000 annotation-platform

# ---- Stage 1: build every wheel (pinned dependencies + the project itself) ----
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /build

# Dependencies first, so source edits do not invalidate this layer.
COPY requirements.lock ./
RUN pip wheel --no-deps -r requirements.lock -w /wheels

COPY pyproject.toml README.md ./
COPY src/ ./src/
RUN pip wheel --no-deps . -w /wheels

# ---- Stage 2: runtime (no compilers, no build tools, runs as a non-root user) ----
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /app \
        --shell /usr/sbin/nologin app

# Install the project's wheel from the local wheels only: pip resolves its runtime dependencies
# from the locked wheels and fails if any is missing (no index is consulted).
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels /wheels/annotation_platform-*.whl

WORKDIR /app
# `annotation-platform db upgrade` finds alembic.ini in the working directory.
COPY alembic.ini ./
COPY migrations/ ./migrations/

RUN mkdir -p /data && chown app:app /data
VOLUME ["/data"]

ENV ENVIRONMENT=production \
    DATA_DIR=/data \
    HOST=0.0.0.0 \
    PORT=8000

# Numeric, so runAsNonRoot-style checks can verify it without reading /etc/passwd.
USER 10001:10001

EXPOSE 8000

# python:3.11-slim has no curl; the standard library is enough. A non-2xx answer raises.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('PORT', '8000'), timeout=4)"]

CMD ["annotation-platform", "serve"]
