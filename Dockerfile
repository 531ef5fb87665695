# unisched's container image: one static binary on an empty base (scratch)
# with CA certificates and a non-root user. Targets:
#
#   docker build -t unisched .                        # builds from source (golang image)
#   packaging/docker/build-static.sh _build &&        # or: with Go on the host,
#     docker build --target runtime-prebuilt \
#       --build-arg ROOTFS=_build/rootfs -t unisched .    no golang image needed
#
# Both run packaging/docker/build-static.sh, so they build the binary the same
# way (CGO_ENABLED=0, -trimpath, -ldflags "-s -w -X main.Version=$VERSION").
# Run: docker run -e UNISCHED_DATABASE_URL=postgres://... -p 8778:8778 -p 9517:9517 unisched
# (serve by default; `... unisched migrate` for the schema, `agent` for an agent).
# docs/operations.md has the details.

# Built first so that the legacy builder, which builds every stage before
# the target, never needs the golang image for it.
FROM scratch AS runtime-prebuilt
ARG ROOTFS=_build/rootfs
COPY ${ROOTFS}/ /
COPY --chown=10001:10001 ${ROOTFS}/var/lib/unisched /var/lib/unisched
ENV UNISCHED_PLACEMENT_LISTEN=0.0.0.0:8778 \
    UNISCHED_CONTAINER_API_LISTEN=0.0.0.0:9517 \
    UNISCHED_AGENT_LISTEN=0.0.0.0:9518 \
    UNISCHED_IMAGESEC_WORK_DIR=/var/lib/unisched/images \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 10001:10001
WORKDIR /var/lib/unisched
EXPOSE 8778 9517 9518
ENTRYPOINT ["/usr/bin/unisched"]
CMD ["serve"]

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN VERSION=${VERSION} packaging/docker/build-static.sh /out

# The default target (last): the same image as runtime-prebuilt, from source.
FROM scratch AS runtime
COPY --from=build /out/rootfs/ /
COPY --from=build --chown=10001:10001 /out/rootfs/var/lib/unisched /var/lib/unisched
ENV UNISCHED_PLACEMENT_LISTEN=0.0.0.0:8778 \
    UNISCHED_CONTAINER_API_LISTEN=0.0.0.0:9517 \
    UNISCHED_AGENT_LISTEN=0.0.0.0:9518 \
    UNISCHED_IMAGESEC_WORK_DIR=/var/lib/unisched/images \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 10001:10001
WORKDIR /var/lib/unisched
EXPOSE 8778 9517 9518
ENTRYPOINT ["/usr/bin/unisched"]
CMD ["serve"]
