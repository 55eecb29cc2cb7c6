# One image for every service of compose.yaml: api, worker, scheduler and the one-shot migrate.
# Build:  docker build -t microapp-orchestrator .
# Run:    docker run --rm microapp-orchestrator orchestrator --help

FROM python:3.11-slim AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Wheels for every dependency at the versions (and hashes) of the runtime lock, then for the app itself,
# so the final stage installs without a compiler or the index. The lock goes first: its layer is cached
# across source changes.
COPY requirements/lock.txt ./requirements/lock.txt
RUN pip wheel --wheel-dir /wheels --require-hashes -r requirements/lock.txt
COPY pyproject.toml README.md ./
COPY orchestrator ./orchestrator
COPY workers ./workers
COPY schedules ./schedules
RUN pip wheel --no-deps --wheel-dir /wheels .

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
# --no-deps: /wheels holds exactly the locked set (resolved and hash-checked in the build stage).
RUN pip install --no-index --no-deps /wheels/*.whl && rm -rf /wheels
# /app/var holds what the processes write locally (archives, app logs); compose mounts a volume here.
WORKDIR /app
RUN mkdir -p /app/var && chown -R orchestrator:orchestrator /app
USER orchestrator
EXPOSE 8000
CMD ["orchestrator", "api"]
