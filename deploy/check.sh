#!/usr/bin/env bash
# Validates what cannot run here (no Docker engine) with the real tools: hadolint for the Dockerfile,
# docker-compose for both compose files, promtool for the alert rules (and their unit tests) and the scrape
# config, kubernetes-validate for the manifests. `make deploy-check` runs it (and installs the tools first).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-.venv/bin}"
KUBERNETES_VERSION="${KUBERNETES_VERSION:-1.33.0}"

echo "== hadolint Dockerfile"
"$BIN/hadolint" Dockerfile

echo "== docker-compose config (production, development + tools)"
# In a scratch copy with .env.example as .env: the compose files read .env, and a developer's real one
# must neither be needed nor touched.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cp docker-compose.yml docker-compose.dev.yml Dockerfile "$scratch/"
cp .env.example "$scratch/.env"
(cd "$scratch" && docker-compose -f docker-compose.yml config -q)
(cd "$scratch" && docker-compose -f docker-compose.yml -f docker-compose.dev.yml --profile tools config -q)

echo "== promtool"
promtool check rules deploy/prometheus/alerts.yml
promtool test rules deploy/prometheus/alerts.test.yml
promtool check config deploy/prometheus/prometheus.yml

echo "== kubernetes-validate (Kubernetes $KUBERNETES_VERSION, strict)"
"$BIN/kubernetes-validate" --strict --quiet -k "$KUBERNETES_VERSION" deploy/kubernetes/*.yaml
echo "deploy-check: all passed"
