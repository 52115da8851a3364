# syntax=docker/dockerfile:1
# Layover: build with the full toolchain (sqlite3 is a native module), run on a slim image.
FROM node:24-bookworm-slim AS build
WORKDIR /app
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
# `npm ci` compiles TypeScript in `prepare`; then drop the build-only packages.
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

FROM node:24-bookworm-slim
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
RUN mkdir -p /data /ca && chown node:node /data /ca
# MALLOC_MMAP_THRESHOLD_: freed buffers of 128 KiB and more go back to the system (README, "Running it").
ENV NODE_ENV=production \
    LAYOVER_DATA_DIR=/data \
    LAYOVER_CA_DIR=/ca \
    MALLOC_MMAP_THRESHOLD_=131072
# The CA must survive the container: every node trusts it. The cache too.
VOLUME ["/data", "/ca"]
EXPOSE 53/udp 53/tcp 80 443 3128
# Docker lets unprivileged users bind ports below 1024 inside a container's own
# network namespace; with --network host, run with --user root instead.
USER node
HEALTHCHECK --interval=30s --timeout=3s CMD ["node", "-e", "fetch('http://127.0.0.1/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# --max-semi-space-size=2 and --heap-growing-percent=100: less RSS, and flatter, under load (README, "Running it").
ENTRYPOINT ["node", "--max-semi-space-size=2", "--heap-growing-percent=100", "/app/dist/cli/main.js"]
CMD ["serve"]
