#!/usr/bin/env bash
# Baseline for bench/compare.py: the same 8 requests as
# bench/runbooks/http-8-steps.yaml, in the same order with the same bodies,
# as a shell script with curl and jq-free parsing (python is not used either:
# the values are cut out of the JSON with bash). One curl process per request,
# as such scripts are written; each fails the script on a non-2xx answer.
# Usage: curl-8-steps.sh API_URL [KEY_ID]
set -euo pipefail
api=$1
key=${2:-key-0001}
incident="INC-$(date -u +%Y%m%d-%H%M%S)"
c=(curl -sS --fail --max-time 30 -H 'Content-Type: application/json')

# field NAME JSON: the string or number value of "NAME" in a flat JSON object.
field() {
  local re="\"$1\":\"?([^\",}]*)"
  [[ $2 =~ $re ]] && printf '%s' "${BASH_REMATCH[1]}"
}

"${c[@]}" -X POST "$api/keys/$key/revoke" >/dev/null
new=$("${c[@]}" -X POST "$api/keys" -d "{\"owner\":\"bench\",\"replaces\":\"$key\"}")
new_id=$(field id "$new")
new_secret=$(field secret "$new")
events=$("${c[@]}" "$api/keys/$key/events")
count=$(field count "$events")
first_seen=$(field first_seen "$events")
last_seen=$(field last_seen "$events")
[[ $events =~ \"source_ips\":\[\"([^\"]*)\" ]] && source_ip=${BASH_REMATCH[1]}
"${c[@]}" -X POST "$api/notify" \
  -d "{\"channel\":\"#sec-incidents\",\"text\":\"$incident: key $key revoked and replaced by $new_id; $count events from $source_ip\"}" >/dev/null
"${c[@]}" -X PUT "$api/config/credential" -d "{\"key_id\":\"$new_id\",\"secret\":\"$new_secret\"}" >/dev/null
who=$("${c[@]}" "$api/whoami" -H "Authorization: Bearer $new_secret")
verified=$(field key_id "$who")
ticket=$("${c[@]}" -X POST "$api/tickets" \
  -d "{\"title\":\"$incident: leaked API key $key\",\"body\":\"Revoked $key; replacement $verified verified. $count events between $first_seen and $last_seen.\"}")
ticket_id=$(field id "$ticket")
"${c[@]}" -X POST "$api/tickets" \
  -d "{\"title\":\"Enable secret scanning on the repository that leaked $key\",\"parent\":$ticket_id}" >/dev/null
