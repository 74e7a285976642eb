#!/bin/sh
# One-shot: the namespace and our typed search attributes (no personal data in them). Idempotent.
set -eu
NS="${TEMPORAL_NAMESPACE:-default}"
until temporal operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; do sleep 1; done
temporal operator namespace describe -n "$NS" --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1 \
  || temporal operator namespace create -n "$NS" --retention "${TEMPORAL_RETENTION:-30d}" --address "$TEMPORAL_ADDRESS"
for attr in AppointmentId:Keyword WorkspaceId:Keyword ConferenceStatus:Keyword AppointmentStart:Datetime; do
  temporal operator search-attribute create -n "$NS" --address "$TEMPORAL_ADDRESS" \
    --name "${attr%%:*}" --type "${attr##*:}" 2>/dev/null || true
done
echo "namespace $NS ready"
