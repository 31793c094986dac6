# The Connector: one image for the API and the delivery worker
# (docker-compose.yml picks the command).
FROM node:20-bookworm-slim

WORKDIR /app

# Dependencies first, so code changes reuse this layer. `npm ci` runs our
# postinstall (scripts/prisma-generate.js -> prisma generate into
# src/store/generated), which needs prisma/schema.prisma and the `prisma`
# devDependency; dev dependencies are pruned only after generating.
COPY package.json package-lock.json ./
COPY prisma ./prisma
COPY scripts ./scripts
# (`npm ci` refuses the lock for lacking other platforms' optional msgpackr builds; npm install uses the same lock.)
RUN (npm ci --no-audit --no-fund || npm install --no-audit --no-fund) \
 && npm prune --omit=dev --no-audit --no-fund \
 && npm cache clean --force

# Application code (src/store/generated is excluded by .dockerignore so the
# client generated above is kept).
COPY src ./src
COPY adapters ./adapters
COPY bin ./bin

# The embedded data dir is unused when DATABASE_URL is set, but must be
# writable by the runtime user if it is ever needed.
RUN mkdir -p /app/data && chown node:node /app/data

ENV NODE_ENV=production
# The young generation the hub is measured with (see bin/connector.js; the old generation's growth is set there).
ENV NODE_OPTIONS=--max-semi-space-size=16
USER node
EXPOSE 8080

CMD ["node", "bin/connector.js", "api"]
