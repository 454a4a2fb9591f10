# syntax=docker/dockerfile:1.7
# The gpufleet operator image.
#   build:    docker build -t ghcr.io/gpufleet/gpufleet-operator:$(node -p 'require("./package.json").version') .
#   daemonless (no Docker engine): buildah bud --isolation chroot --storage-driver vfs -t gpufleet-operator .
# Three stages: compile TypeScript with every dependency, install production dependencies only,
# then copy both into a distroless Node.js 20 runtime (no shell, no package manager) as UID 65532.
# Pin the base images by digest in CI (`--build-arg NODE_IMAGE=node:20-bookworm-slim@sha256:...`).
# The runtime base must provide /nodejs/bin/node (distroless layout); any Node.js 20 works as NODE_IMAGE.
ARG NODE_IMAGE=docker.io/library/node:20-bookworm-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/nodejs20-debian12:nonroot

# --- 1. build: npm ci (dev dependencies included) + tsc -------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: no dependency needs an install script (npm 11 skips them anyway).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY operator ./operator
COPY gateway ./gateway
# The gateway imports placement's carbon intensity source, RTT table and GPU power (tsc compiles only what it reaches).
COPY infra/carbon ./infra/carbon
COPY infra/placement ./infra/placement
# tsconfig.build.json leaves the tests out: they may use sim/, which is not in the image.
RUN npm run build:image

# --- 2. deps: production dependencies only ------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

# --- 3. runtime ---------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}
WORKDIR /app
ENV NODE_ENV=production \
    NODE_OPTIONS=--enable-source-maps
COPY --from=deps --chown=65532:65532 /app/node_modules ./node_modules
COPY --from=build --chown=65532:65532 /src/dist ./dist
COPY --chown=65532:65532 package.json ./
# Non-root, matching the chart's runAsUser; the operator writes no files (read-only root FS).
USER 65532:65532
EXPOSE 8081
# `node dist/operator/main.js`. The CLI is in the image too:
#   docker run --rm IMAGE dist/operator/cli/gpufleet.js plan --model llama-3.1-8b --gpu h100
ENTRYPOINT ["/nodejs/bin/node"]
CMD ["dist/operator/main.js"]
