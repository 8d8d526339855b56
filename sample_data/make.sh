#!/usr/bin/env bash
# Regenerates every sample drill in this folder, byte for byte (the drill generator is
# deterministic for a scenario, seed, size and number of days; gzip headers carry no time).
#   sample_data/make.sh            # with the python of the active virtualenv
#   PYTHON=.venv/bin/python sample_data/make.sh
#   sample_data/make.sh --check    # regenerate into a temp folder and compare
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${PYTHON:-python3}"
target="$here"
if [ "${1:-}" = "--check" ]; then
  target="$(mktemp -d)"
  trap 'rm -rf "$target"' EXIT
fi

drill() {  # name events days
  rm -rf "${target:?}/$1"
  "$py" -m forensics drill "$target/$1" --scenario "$1" --seed 1 --events "$2" \
    --days "$3" --gzip --json > /dev/null
}

drill prompt_regression 20000 14   # the drill the notebooks investigate
drill retrieval_leak    16000 10
drill model_upgrade     10000  7
drill agent_tool        8000  7

if [ "$target" != "$here" ]; then
  for d in prompt_regression retrieval_leak model_upgrade agent_tool; do
    diff -r "$here/$d" "$target/$d" > /dev/null || { echo "sample_data/$d differs" >&2; exit 1; }
  done
  echo "sample_data is reproducible"
fi

# A multi-incident drill from real outputs: only corpus sources whose licence allows
# redistribution (see sample_data/multi_incident/README.md); needs ../shared/corpus.
texts="$here/../../shared/corpus/texts"
if [ -d "$texts" ]; then
  keep="$here/multi_incident/README.md"
  readme="$(cat "$keep" 2>/dev/null || true)"
  rm -rf "${target:?}/multi_incident"
  "$py" -m forensics drill "$target/multi_incident" --mix refusal+leak --seed 1 \
    --events 4000 --days 5 --texts "$texts" \
    --sources halueval,language_confusion,decodingtrust_privacy --json > /dev/null
  gzip -n -f "$target/multi_incident/events.jsonl" "$target/multi_incident/feedback.jsonl"
  if [ -n "$readme" ]; then printf "%s\n" "$readme" > "$target/multi_incident/README.md"; fi
fi
