# syntax=docker/dockerfile:1
# The gateway in one image: the registry (Node 24, TypeScript run by type stripping), the nginx
# it runs as its child (Debian's nginx + njs), and the example MCP servers.

FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY registry ./registry
COPY servers ./servers
COPY scripts ./scripts
COPY nginx ./nginx
# Type-check in the build so a broken tree never becomes an image.
RUN npx tsc --noEmit -p .

FROM node:24-slim AS runtime
LABEL org.opencontainers.image.title="mcp-gateway-registry" \
      org.opencontainers.image.description="Identity, scopes and an operator's registry in front of MCP servers" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx libnginx-mod-http-js \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/mcp-gateway && chown node:node /var/lib/mcp-gateway
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/registry ./registry
COPY --from=build /app/servers ./servers
COPY --from=build /app/scripts ./scripts
COPY --from=build /app/nginx ./nginx
RUN chown -R node:node /app/registry/servers

ENV NODE_ENV=production \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8080 \
    STATE_DIR=/var/lib/mcp-gateway \
    CATALOG_DIR=/app/registry/servers
USER node
EXPOSE 8080
VOLUME ["/var/lib/mcp-gateway"]
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s \
  CMD node -e "fetch('http://127.0.0.1:8080/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "scripts/start.ts"]
