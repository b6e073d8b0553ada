#!/usr/bin/env bash
# The API with curl (and jq): register, log in, create a project and a chat room, import room.csv, wait for the
# job, list the items. API_URL (default http://127.0.0.1:8000), API_EMAIL and API_PASSWORD from the environment.
set -euo pipefail
cd "$(dirname "$0")"
api="${API_URL:-http://127.0.0.1:8000}/api/v1"
email="${API_EMAIL:-ada@example.org}"
password="${API_PASSWORD:-a perfectly fine passphrase}"

# Register (a 409 `email_taken` means the account exists already: fine), then log in with form fields.
curl -sS -o /dev/null -X POST "$api/auth/register" -H 'Content-Type: application/json' \
  -d "$(jq -n --arg email "$email" --arg password "$password" '{email: $email, password: $password}')"
token=$(curl -sS --fail-with-body -X POST "$api/auth/jwt/login" \
  --data-urlencode "username=$email" --data-urlencode "password=$password" | jq -r .access_token)
auth=(-H "Authorization: Bearer $token")

project=$(curl -sS --fail-with-body "${auth[@]}" -X POST "$api/projects" -H 'Content-Type: application/json' \
  -d '{"name": "Vaccination debates (curl)", "type": "chat_disentanglement"}' | jq -r .id)
container=$(curl -sS --fail-with-body "${auth[@]}" -X POST "$api/projects/$project/containers" \
  -H 'Content-Type: application/json' -d '{"name": "Room 10", "type": "chat_room"}' | jq -r .id)

# The import answers 202 with the job; poll it until it has ended.
job=$(curl -sS --fail-with-body "${auth[@]}" -X POST "$api/containers/$container/imports" \
  -F format=csv -F "file=@room.csv;type=text/csv" | jq -r .id)
status=queued
for _ in $(seq 1 60); do
  status=$(curl -sS --fail-with-body "${auth[@]}" "$api/jobs/$job" | jq -r .status)
  case "$status" in succeeded|failed|cancelled) break ;; esac
  sleep 1
done
echo "import $job: $status" >&2
[ "$status" = succeeded ]

# Lists are cursor-paginated: follow next_cursor (or the Link header) until it is null.
curl -sS --fail-with-body "${auth[@]}" "$api/containers/$container/items?limit=50" \
  | jq -c '{items: [.items[].external_id], next_cursor}'
