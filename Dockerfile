# Switchback as a container sidecar.
#
#   docker build -t switchback .
#   docker run --rm --read-only --tmpfs /tmp -p 8080:8080 -p 9901:9901 \
#     -v "$PWD/config/production.yaml:/etc/switchback/config.yaml:ro" \
#     -v switchback-state:/var/lib/switchback \
#     -e SWITCHBACK_ADMIN_TOKEN -e SWITCHBACK_API_KEY_SECRET switchback
#
# Config: mount one YAML file at /etc/switchback/config.yaml (in Kubernetes, a ConfigMap; the
# file is watched and reloaded when it changes). For the ports below to be reachable, it must
# listen on 0.0.0.0:8080 and its admin API on 0.0.0.0:9901, as config/production.yaml does.
# State (traffic and rollout state, and the SQLite deprecation ledger) lives in the volume
# /var/lib/switchback, owned by the unprivileged user the process runs as; point the config's
# state_dir there (production.yaml does). production.yaml needs SWITCHBACK_ADMIN_TOKEN and
# SWITCHBACK_API_KEY_SECRET (at least 16 bytes) in the environment: `-e NAME` passes them on
# from the shell without writing them on the command line. Nothing else is written: the root
# filesystem can be read-only, with a tmpfs on /tmp for SQLite's temporary files.
#
# Two stages: the first installs the package and its dependencies into a virtualenv, the second
# copies that virtualenv onto a clean slim image, so nothing used to build reaches the image.

FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Every dependency ships manylinux wheels for CPython 3.11 (amd64 and arm64): no compiler.
# .dockerignore keeps everything but these out of the build context.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proxy ./proxy
RUN python -m venv /opt/switchback \
 && /opt/switchback/bin/pip install .


FROM python:3.11-slim

LABEL org.opencontainers.image.title="switchback" \
      org.opencontainers.image.description="Blue/green traffic proxy sidecar with progressive rollout and deprecation telemetry" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.switchback.config="/etc/switchback/config.yaml" \
      io.switchback.state="/var/lib/switchback" \
      io.switchback.ports="8080 traffic, 9901 admin"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/switchback/bin:$PATH

# A fixed uid/gid, so a volume prepared outside the container can be chowned to match, and a
# numeric USER below, so Kubernetes' runAsNonRoot can check it.
RUN groupadd --system --gid 10001 switchback \
 && useradd --system --uid 10001 --gid switchback --no-create-home \
        --home-dir /var/lib/switchback --shell /usr/sbin/nologin switchback \
 && mkdir -p /etc/switchback /var/lib/switchback \
 && chown switchback:switchback /var/lib/switchback

COPY --from=build /opt/switchback /opt/switchback

# The config's ${SWITCHBACK_STATE_DIR:-...} defaults resolve here too.
ENV SWITCHBACK_STATE_DIR=/var/lib/switchback \
    SWITCHBACK_HEALTH_URL=http://127.0.0.1:9901/healthz
VOLUME ["/var/lib/switchback"]
WORKDIR /var/lib/switchback
USER 10001:10001

# 8080: traffic; 9901: admin API, /metrics, /healthz, /readyz.
EXPOSE 8080 9901

# slim has no curl: ask the admin listener with the standard library. Set SWITCHBACK_HEALTH_URL
# if the config's admin.listen uses another port.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['SWITCHBACK_HEALTH_URL'], timeout=2)"]

# SIGTERM drains in-flight requests (server.drain_timeout) and exits 0; SIGHUP reloads config.
STOPSIGNAL SIGTERM
CMD ["switchback", "run", "--config", "/etc/switchback/config.yaml"]
