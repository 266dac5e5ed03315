# The worker's container image: the static binary that `make image-bin`
# builds (CGO_ENABLED=0, linux/amd64), on distroless/static (CA certificates
# and tzdata, no shell, no libc), run as a non-root user. For Container Apps
# jobs and AKS (deploy/); the default command is the continuous `run`.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t REGISTRY/mapsworker:VERSION .
#   az acr build -r REGISTRY -t mapsworker:VERSION --build-arg VERSION=VERSION .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN make image-bin VERSION=${VERSION}

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/dist/image/mapsworker /mapsworker
# The nonroot user of distroless, by number, so that Kubernetes'
# runAsNonRoot can verify it.
USER 65532:65532
ENTRYPOINT ["/mapsworker"]
CMD ["run"]
