# syntax=docker/dockerfile:1
# Build: the same apt packages and go build flags as `make build` and .ci/run
# (which exercises these steps on every CI run, since CI has no Docker engine).
FROM golang:1.26-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libopus-dev libopusfile-dev libsoxr-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=1 go build -trimpath \
      -ldflags "-s -w -X github.com/docshield/voice-worker/internal/version.Version=${VERSION}" \
      -o /out/worker ./cmd/worker

# Run: only the shared libraries the media code links, CA certificates for
# TLS to Atlas/Redis/S3/LiveKit/OpenAI, and tzdata for calling hours.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tzdata libopus0 libopusfile0 libsoxr0 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin worker
WORKDIR /app
COPY --from=build /out/worker /app/bin/worker
USER 10001:10001
# No ENTRYPOINT: a one-off dyno runs what it is given, so `heroku run bash`
# opens a shell and `heroku run bin/worker health` (from WORKDIR /app) runs
# the CLI. The dyno runs CMD, in exec form: the binary is PID 1 and gets
# Heroku's SIGTERM itself.
CMD ["/app/bin/worker", "run"]
