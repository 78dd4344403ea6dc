# The service's image (docs/deploy.md). With Docker:
#
#   docker build -t taskapi .
#   docker run --rm -e DATABASE_URL=... taskapi migrate       # the release step, once per release
#   docker run -p 8000:8000 -e DATABASE_URL=... -e BETTER_AUTH_URL=... -e CORS_ORIGINS=... taskapi
#
# CI builds this file with podman, on a base it makes from Debian's packages (deploy/build-pybase):
#   podman build --format docker --build-arg BASE=localhost/pybase -t taskapi .
# Any base with python3 (3.11+) and its venv module works.
ARG BASE=python:3.11-slim-bookworm

# The dependencies: a stage and a layer of their own, rebuilt only when requirements.txt (or the
# base) changes. Wheels only: nothing is compiled, and no compiler is in the image.
FROM ${BASE} AS dependencies
COPY requirements.txt /tmp/requirements.txt
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --only-binary=:all: \
        -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

FROM dependencies
# /app/scripts on PATH: `serve` (the default) and `migrate` are the image's two commands.
# WORKERS=1: one process per container, more replicas to scale (docs/deploy.md, "Sizing").
ENV PATH=/app/scripts:/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    WORKERS=1
RUN useradd --uid 10001 --user-group --no-create-home --no-log-init --home-dir /nonexistent \
        --shell /usr/sbin/nologin app
# The code, owned by root and read-only for the user that runs it; compiled now, as that user
# cannot write __pycache__. .dockerignore lets in only what the service runs.
WORKDIR /app
COPY . /app
RUN python3 -m compileall -q /app
# Numeric, so an orchestrator can check runAsNonRoot without reading /etc/passwd.
USER 10001:10001
EXPOSE 8000

# Liveness: /health never touches the database, so an outage of the database does not get a
# healthy process restarted. Load balancers check readiness, /health/ready, themselves.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=2)"]

# Exec form, no shell: scripts/serve execs uvicorn, so uvicorn is PID 1 and gets the SIGTERM
# itself; it stops accepting, finishes the requests in flight (GRACEFUL_SHUTDOWN_SECONDS, 20 by
# default) and exits. Give the platform's stop timeout more than that.
STOPSIGNAL SIGTERM
CMD ["serve"]
