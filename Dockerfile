# webhook-outbox: build with dev dependencies, run with production ones only, as a non-root user.
#   docker build -t webhook-outbox .
#   docker run --rm -e DATABASE_URL=postgres://… webhook-outbox node dist/cli.js migrate   # once per release
#   docker run -p 3000:3000 -e DATABASE_URL=postgres://… -e INTERNAL_API_TOKEN=… webhook-outbox
# NODE_IMAGE is the base of every stage; scripts/verify-image.sh builds on a local one.
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the package's prepare script builds dist/, which needs src/ (copied below, then built).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM ${NODE_IMAGE} AS production-dependencies
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=optional leaves out the embedded PostgreSQL's binaries: the image always uses DATABASE_URL.
RUN npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE} AS runtime
# REQUIRE_DATABASE_URL: without DATABASE_URL the service exits 1 with one line (it has no embedded server).
ENV NODE_ENV=production \
    PORT=3000 \
    HOST=0.0.0.0 \
    REQUIRE_DATABASE_URL=true
WORKDIR /app
# Code stays root-owned and read-only to the service, which writes nowhere.
COPY package.json ./
COPY migrations ./migrations
COPY --from=production-dependencies /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
USER 10001:10001
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Migrations are a separate step (`node dist/cli.js migrate`, the compose file's migrate service):
# /readyz answers 503 MIGRATIONS_PENDING until they have run.
CMD ["node", "dist/cli.js", "serve", "--no-migrate"]
