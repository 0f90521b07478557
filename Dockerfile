# jobcast: broker, worker and CLI in one image (multi-stage, Debian 12, non-root).
#   docker build -t jobcast .
#   docker run --rm -p 8080:8080 jobcast jobcast-broker --http 0.0.0.0:8080 ...
# compose.yaml runs the whole stack (broker, workers, Prometheus, Grafana).

FROM debian:12 AS build
WORKDIR /src
COPY . .
# Build packages only (no test tools, browsers or npm).
RUN JOBCAST_SETUP_PROFILE=build JOBCAST_SKIP_NPM=1 bash scripts/setup.sh \
 && cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DJOBCAST_TESTS=OFF -DJOBCAST_BENCH=OFF \
 && cmake --build /build -j "$(nproc)" --target jobcast-broker jobcast-worker jobcast

FROM debian:12-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libzmq5 libsqlite3-0 libspdlog1.10 libfmt9 libssl3 libhiredis0.14 \
      libboost-json1.81.0 libboost-program-options1.81.0 libboost-container1.81.0 libboost-url1.81.0 \
      libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libcivetweb1 \
      ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/jobcast --create-home jobcast \
 && install -d -o jobcast -g jobcast -m 0700 /keys
COPY --from=build /build/bin/jobcast-broker /build/bin/jobcast-worker /build/bin/jobcast /usr/local/bin/
USER jobcast
WORKDIR /var/lib/jobcast
ENV JOBCAST_DB=/var/lib/jobcast/jobcast.db \
    JOBCAST_LOG_FORMAT=json
EXPOSE 8080 5555 9101
VOLUME ["/var/lib/jobcast", "/keys"]
# SIGTERM is the graceful stop (clients told to reconnect, writer flushed,
# workers told); the broker exits within --shutdown-timeout.
STOPSIGNAL SIGTERM
CMD ["jobcast-broker", "--http", "0.0.0.0:8080", "--zmq", "tcp://0.0.0.0:5555"]
