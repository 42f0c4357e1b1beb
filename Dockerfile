# The orchestrator's image from source, with a registry (Go image):
#
#   docker build -t cronium/orchestrator .
#   docker run -d --name cronium-orchestrator \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     --group-add "$(stat -c %g /var/run/docker.sock)" \
#     -v cronium-state:/var/lib/cronium-orchestrator \
#     -e CRONIUM_ORCHESTRATOR_ID=orch-1 \
#     -e CRONIUM_API_URL=http://backend:5001 -e CRONIUM_API_TOKEN=... \
#     -p 9464:9464 cronium/orchestrator
#
# Without a registry, `make image` builds the same image from a binary the
# machine's Go builds (deploy/image/Dockerfile; keep the final stages alike).
ARG GO_IMAGE=golang:1.26-bookworm

FROM ${GO_IMAGE} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN mkdir -p /rootfs/usr/local/bin /rootfs/etc/ssl/certs /state \
 && go build -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" -o /rootfs/usr/local/bin/cronium-orchestrator ./cmd/cronium-orchestrator \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
 && echo 'cronium:x:65532:65532::/nonexistent:/sbin/nologin' > /rootfs/etc/passwd \
 && echo 'cronium:x:65532:' > /rootfs/etc/group

FROM scratch
ARG VERSION=dev
ARG COMMIT=unknown
# The repository it was built from: the build passes it (git remote get-url).
ARG SOURCE=
LABEL org.opencontainers.image.title="cronium-orchestrator" \
      org.opencontainers.image.description="Runs Cronium jobs in containers or over SSH" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.source="${SOURCE}"
COPY --from=build /rootfs/ /
COPY --from=build --chown=65532:65532 /state/ /var/lib/cronium-orchestrator/
# Not root: reach the Docker socket through its group (--group-add).
USER 65532:65532
ENV CRONIUM_ORCHESTRATOR_STATE_DIR=/var/lib/cronium-orchestrator CRONIUM_LOG_FORMAT=json
VOLUME /var/lib/cronium-orchestrator
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/cronium-orchestrator", "health"]
ENTRYPOINT ["/usr/local/bin/cronium-orchestrator"]
CMD ["run"]
