#!/bin/sh
# Runs once, when the data volume is first initialised (the postgres image's
# /docker-entrypoint-initdb.d). Two roles, so the app never holds more than it needs:
# - APP_DB_OWNER (default axion_owner), NOLOGIN: owns the database and its public schema;
# - APP_DB_USER (default axion_app), LOGIN, not superuser, what the app connects as: CONNECT and
#   TEMPORARY on the database, USAGE and CREATE on the schema. It owns what it creates (its
#   tables: DML, and migrations through DATABASE_URL), but not the database: no ALTER DATABASE,
#   no CONNECTION LIMIT, no DROP DATABASE, no other role's objects.
# The password comes from a secret file and reaches psql through its environment (\getenv),
# never its argv.
set -eu
APP_DB_PASSWORD=$(cat "${APP_DB_PASSWORD_FILE:?}")
export APP_DB_PASSWORD
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  --set app_user="${APP_DB_USER:-axion_app}" --set owner="${APP_DB_OWNER:-axion_owner}" \
  --set db="$POSTGRES_DB" <<'SQL'
\getenv app_password APP_DB_PASSWORD
CREATE ROLE :"owner" NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
CREATE ROLE :"app_user" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD :'app_password';
ALTER DATABASE :"db" OWNER TO :"owner";
ALTER SCHEMA public OWNER TO :"owner";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO :"app_user";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO :"app_user";
SQL
unset APP_DB_PASSWORD
echo "created role ${APP_DB_USER:-axion_app} (tables of its own; not owner of $POSTGRES_DB) and ${APP_DB_OWNER:-axion_owner} (owner, no login)"
