# syntax=docker/dockerfile:1
# Multi-stage build of the one static binary (CGO_ENABLED=0: the embedded SQLite is pure Go).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/wataomi ./cmd/wataomi

# Distroless static, non-root (uid 65532). Probes: GET /health (liveness) and GET /ready (readiness);
# `wataomi health` lets a HEALTHCHECK run without curl in the image.
FROM gcr.io/distroless/static-debian12:nonroot
WORKDIR /app
COPY --from=build /out/wataomi /app/wataomi
COPY config.yaml /app/config.yaml
ENV APP_ENV=production HTTP_ADDR=:8000
EXPOSE 8000
USER nonroot:nonroot
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 CMD ["/app/wataomi", "health"]
ENTRYPOINT ["/app/wataomi"]
CMD ["serve"]
