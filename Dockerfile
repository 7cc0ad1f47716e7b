# The gateway's image: built from this repository, librdkafka from the crate's bundled source,
# linked to the system OpenSSL for TLS and SASL to Kafka.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libssl3 ca-certificates && rm -rf /var/lib/apt/lists/*
RUN useradd --system --home /var/lib/ventanilla ventanilla && mkdir -p /var/lib/ventanilla && chown ventanilla /var/lib/ventanilla
COPY --from=build /src/target/release/ventanilla /usr/local/bin/ventanilla
COPY config /etc/ventanilla/config
COPY schemas /etc/ventanilla/schemas
USER ventanilla
ENV VENTANILLA_CONFIG=/etc/ventanilla/config \
    VENTANILLA_DATA_DIR=/var/lib/ventanilla \
    VENTANILLA_BIND=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["ventanilla", "serve"]
