#!/bin/sh
# Runs once, when the data volume is first initialised (the postgres image's
# /docker-entrypoint-initdb.d): the app's own role, LOGIN but not superuser, owning the app
# database, so the app never connects as the bootstrap superuser. The password comes from a
# secret file and reaches psql through its environment (\getenv), never its argv.
set -eu
APP_DB_PASSWORD=$(cat "${APP_DB_PASSWORD_FILE:?}")
export APP_DB_PASSWORD
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set app_user="${APP_DB_USER:-axion_app}" --set db="$POSTGRES_DB" <<'SQL'
\getenv app_password APP_DB_PASSWORD
CREATE ROLE :"app_user" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD :'app_password';
ALTER DATABASE :"db" OWNER TO :"app_user";
ALTER SCHEMA public OWNER TO :"app_user";
SQL
unset APP_DB_PASSWORD
echo "created role ${APP_DB_USER:-axion_app} (owner of $POSTGRES_DB, not superuser)"
