#!/bin/sh
# First start of the PostgreSQL volume: the service's own database and role. The role owns its tables
# (migrations run as it); audit_events additionally refuses UPDATE/DELETE by trigger (migration 0001).
set -eu
psql -v ON_ERROR_STOP=1 --username postgres <<SQL
CREATE ROLE ratio_zoom LOGIN PASSWORD '${RATIO_ZOOM_DB_PASSWORD}';
CREATE DATABASE ratio_zoom OWNER ratio_zoom;
SQL
