# xref runs its TypeScript sources through tsx (a runtime dependency), so there is no build step.
FROM node:20-slim

ENV NODE_ENV=production
WORKDIR /app

# Dependencies first, so this layer is cached until the lockfile changes.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY . .
# The app may create local state (e.g. .data/) under /app; the files themselves stay root-owned.
RUN chown node:node /app

USER node
EXPOSE 8080
CMD ["node", "bin/xref.js", "serve"]
