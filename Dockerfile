# One image for every service of compose.yaml: api, worker, scheduler and the one-shot migrate.
# Build:  docker build -t microapp-orchestrator .
# Run:    docker run --rm microapp-orchestrator orchestrator --help

FROM python:3.11-slim AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY orchestrator ./orchestrator
COPY workers ./workers
COPY schedules ./schedules
# Wheels for the app and every dependency, so the final stage installs without a compiler or the index.
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    API_HOST=0.0.0.0 \
    API_PORT=8000
RUN groupadd --system --gid 10001 orchestrator \
    && useradd --system --uid 10001 --gid orchestrator --home-dir /app --shell /usr/sbin/nologin orchestrator
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links=/wheels microapp-orchestrator && rm -rf /wheels
# /app/var holds what the processes write locally (archives, app logs); compose mounts a volume here.
WORKDIR /app
RUN mkdir -p /app/var && chown -R orchestrator:orchestrator /app
USER orchestrator
EXPOSE 8000
CMD ["orchestrator", "api"]
