# syntax=docker/dockerfile:1
# Images of the event pipeline, used by compose.yaml:
#   runtime   ingest and processor (the default, last stage): debian:12-slim, non-root
#   loadgen   the native load generator: debian:12-slim, non-root
#   test      the toolchain and the source tree; runs `make test`
#   runtime-prebuilt  the runtime image with binaries built outside it, from the
#             build context `prebuilt` (scripts/check-image.sh, CI)
#
# Packages come from the lists in scripts/, never from this file: the
# toolchain stage runs scripts/deps.sh on scripts/packages.txt exactly as
# `make deps` does, the runtime stages on scripts/packages-runtime.txt, and
# the test stage adds scripts/packages-test.txt as `make test` does.
# scripts/check-compose.sh (CTest label `compose`) checks both.

FROM debian:12 AS toolchain
COPY scripts/deps.sh scripts/packages.txt /src/scripts/
RUN /src/scripts/deps.sh && rm -rf /var/lib/apt/lists/*
WORKDIR /src

# Compiles ingest and processor (no tests) with the project's default build
# type; ccache keeps its cache between image builds.
FROM toolchain AS build
COPY . /src
RUN --mount=type=cache,target=/root/.cache/ccache \
    cmake -S /src -B /build -G Ninja -DPIPELINE_BUILD_TESTS=OFF \
 && cmake --build /build --target ingest processor \
 && mkdir -p /out \
 && strip --strip-debug -o /out/ingest /build/ingest/ingest \
 && strip --strip-debug -o /out/processor /build/processor/processor

FROM build AS loadgen-build
RUN --mount=type=cache,target=/root/.cache/ccache \
    cmake --build /build --target loadgen \
 && strip --strip-debug -o /out/loadgen /build/loadtest/loadgen

# `docker compose --profile test run --rm test`: the whole suite, which
# starts its own nats-server and PostgreSQL inside the container. It runs as
# root like CI does; the test harness runs PostgreSQL as the postgres user.
FROM toolchain AS test
COPY scripts/packages-test.txt /src/scripts/
RUN /src/scripts/deps.sh scripts/packages-test.txt && rm -rf /var/lib/apt/lists/*
COPY . /src
CMD ["make", "test"]

# Runtime libraries only, and an unprivileged user with a fixed uid (the
# secrets service of compose.yaml gives this uid the PostgreSQL password file).
FROM debian:12-slim AS runtime-base
COPY scripts/deps.sh scripts/packages-runtime.txt /tmp/pipeline/scripts/
RUN /tmp/pipeline/scripts/deps.sh scripts/packages-runtime.txt \
 && rm -rf /var/lib/apt/lists/* /tmp/pipeline \
 && groupadd --gid 10001 pipeline \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin pipeline
USER pipeline

FROM runtime-base AS loadgen
COPY --from=loadgen-build /out/loadgen /usr/local/bin/loadgen
ENTRYPOINT ["loadgen"]

# Both services in one image: `ingest` by default, `processor` as command.
# Everything but the binaries, shared by runtime and runtime-prebuilt.
FROM runtime-base AS service-base
ENV INGEST_HTTP_ADDRESS=0.0.0.0 INGEST_HTTP_PORT=8080
EXPOSE 8080
CMD ["ingest"]

# The runtime image from binaries built outside it (scripts/check-image.sh,
# CI): the build context `prebuilt` is a directory holding ingest and
# processor, stripped as the build stage strips them. Only this target reads it:
#   podman build --target runtime-prebuilt --build-context prebuilt=DIR .
FROM service-base AS runtime-prebuilt
COPY --from=prebuilt ingest processor /usr/local/bin/

FROM service-base AS runtime
COPY --from=build /out/ingest /out/processor /usr/local/bin/
