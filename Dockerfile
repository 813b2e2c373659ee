# The gateway as a container image.
#   docker build -t connection-gateway .          (or: podman build --format docker ...)
#   docker run --rm -p 6789:6789 -p 127.0.0.1:50051:50051 -p 9464:9464 connection-gateway
# Stage 1 builds on Debian 12 with exactly the packages deploy/setup.sh
# installs; stage 2 is a slim Debian 12 with only the shared libraries the
# binary links (found with ldd, so the list follows the code) and curl for the
# health check. Runs as an unprivileged user. The gateway handles SIGTERM
# itself (stop accepting, flush, FIN, exit 0 within --drain_timeout), so no
# init process is needed.

FROM debian:bookworm-slim AS build
WORKDIR /src
# The toolchain layer depends only on the package list, so it is rebuilt only
# when deploy/setup.sh changes.
COPY deploy/setup.sh deploy/setup.sh
RUN deploy/setup.sh && rm -rf /var/lib/apt/lists/*
# Marks the layers below (they change with every source change) so stale
# copies can be pruned: podman image prune --filter label=io.connection-gateway.stage
LABEL io.connection-gateway.stage=build
# .dockerignore lets in only what the gateway and gatewayctl binaries are built from.
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DGATEWAY_BUILD_TESTS=OFF -DGATEWAY_BUILD_BENCH=OFF >/dev/null \
 && cmake --build /build -j"$(nproc)" --target gateway gatewayctl \
 && install -D -m 0755 -s /build/gateway/gateway /out/gateway \
 && install -D -m 0755 -s /build/gateway/gatewayctl /out/gatewayctl
# The Debian packages holding the libraries the binaries load.
RUN ldd /out/gateway /out/gatewayctl | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' \
    | while read -r lib; do dpkg -S "$lib" 2>/dev/null || dpkg -S "$(realpath "$lib")"; done \
    | cut -d: -f1 | sort -u >/out/runtime-packages \
 && cat /out/runtime-packages

FROM debian:bookworm-slim
COPY --from=build /out/runtime-packages /tmp/runtime-packages
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      curl $(cat /tmp/runtime-packages) \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages \
 && groupadd --gid 10001 gateway \
 && useradd --uid 10001 --gid gateway --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin gateway
COPY --from=build /out/gateway /usr/local/bin/gateway
# The fleet client: `kubectl exec POD -- gatewayctl stats` reaches the
# control plane on the pod's loopback.
COPY --from=build /out/gatewayctl /usr/local/bin/gatewayctl
# Fails the build if a shared library is missing.
RUN ! ldd /usr/local/bin/gateway /usr/local/bin/gatewayctl | grep 'not found' && gateway --version >/dev/null \
 && gatewayctl --version >/dev/null

LABEL org.opencontainers.image.title="connection-gateway" \
      org.opencontainers.image.description="epoll connection gateway with a gRPC control plane and Prometheus metrics" \
      io.connection-gateway.stage=runtime
USER 10001:10001
# 6789 data plane, 50051 gRPC control plane, 9464 Prometheus metrics.
EXPOSE 6789 50051 9464
# Healthy = the metrics endpoint answers (keep --metrics_listen on port 9464).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD curl -fsS -o /dev/null --max-time 2 http://127.0.0.1:9464/metrics || exit 1
ENTRYPOINT ["/usr/local/bin/gateway"]
# The control plane listens on loopback by default; in a container it must
# listen on all interfaces for a published port to reach it.
CMD ["--listen=0.0.0.0:6789", "--control_listen=0.0.0.0:50051", "--metrics_listen=0.0.0.0:9464"]
