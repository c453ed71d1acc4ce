# leakwatch: the sink on its embedded defaults, listening on all interfaces, SQLite in /data.
# Three stages keep the compiler and the dev dependencies out of the image.

# 1. Compile TypeScript (npm ci runs `prepare`, which builds dist/).
FROM node:20-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY src ./src
RUN npm ci --no-audit --no-fund

# 2. Production dependencies only (better-sqlite3 may compile, hence the toolchain).
FROM node:20-slim AS deps
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY scripts ./scripts
RUN npm ci --omit=dev --no-audit --no-fund

# 3. Runtime.
FROM node:20-slim
# MALLOC_MMAP_THRESHOLD_: request bodies and packed batches of a few MB come and go; with glibc's
# adaptive threshold they end up carved from the heap, whose holes stay resident. MALLOC_ARENA_MAX:
# two arenas for all threads instead of one per thread (up to eight per core), each keeping what was
# freed in it (README, "Memory").
ENV NODE_ENV=production \
    MALLOC_MMAP_THRESHOLD_=131072 \
    MALLOC_ARENA_MAX=2 \
    LEAKWATCH_HOST=0.0.0.0 \
    LEAKWATCH_PORT=8080 \
    LEAKWATCH_DATA_DIR=/data \
    LEAKWATCH_RULES=/app/rules
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY proto ./proto
COPY rules ./rules
COPY schema ./schema
COPY web ./web
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.LEAKWATCH_PORT || 8080) + '/healthz').then(r => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))"]
# --max-semi-space-size=8: a young generation of 2 x 8 MiB instead of V8's 2 x 16 (README, "Memory").
CMD ["node", "--max-semi-space-size=8", "bin/leakwatch.js", "serve"]
