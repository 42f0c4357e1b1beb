# The orchestrator's image: a static binary on an empty base.
#
#   docker build -t cronium/orchestrator .
#   docker run -d --name cronium-orchestrator \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     --group-add "$(stat -c %g /var/run/docker.sock)" \
#     -v cronium-state:/var/lib/cronium-orchestrator \
#     -e CRONIUM_API_URL=http://backend:5001 -e CRONIUM_API_TOKEN=... \
#     -p 9464:9464 cronium/orchestrator
#
# Without a registry, pass a local image that has Go as GO_IMAGE.
ARG GO_IMAGE=golang:1.26-bookworm

FROM ${GO_IMAGE} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN go build -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" -o /out/cronium-orchestrator ./cmd/cronium-orchestrator \
 && mkdir -p /out/state && echo 'cronium:x:65532:65532::/nonexistent:/sbin/nologin' > /out/passwd

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/passwd /etc/passwd
COPY --from=build /out/cronium-orchestrator /usr/local/bin/cronium-orchestrator
COPY --from=build --chown=65532:65532 /out/state /var/lib/cronium-orchestrator
# Not root: reach the Docker socket through its group (--group-add).
USER 65532:65532
ENV CRONIUM_ORCHESTRATOR_STATE_DIR=/var/lib/cronium-orchestrator CRONIUM_LOG_FORMAT=json
VOLUME /var/lib/cronium-orchestrator
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/cronium-orchestrator"]
CMD ["run"]
