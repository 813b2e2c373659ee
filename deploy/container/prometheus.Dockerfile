# Prometheus from Debian 12's `prometheus` package, laid out like the
# prom/prometheus image (config at /etc/prometheus/prometheus.yml, data in
# /prometheus, runs as nobody, prometheus is the entrypoint), so the
# docker-compose.yml service runs on it unchanged. The deployment test uses it
# where no registry can be reached (deploy/container/compose.test.yml).
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /prometheus \
 && chown 65534:65534 /prometheus
USER 65534:65534
WORKDIR /prometheus
VOLUME ["/prometheus"]
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
