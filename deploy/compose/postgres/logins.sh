#!/bin/bash
# Run once by the postgres image when it initialises an empty data folder (/docker-entrypoint-initdb.d): one login
# per process of the bus, each a member of its group role (satubus/database.py), and the schema registry's database.
# The passwords come from the secret postgres-logins ("<login> <password>" per line; deploy/compose/make_secrets.py).
# The migrations (`satubus migrate`, the init service) grant the group roles their privileges.
set -euo pipefail

declare -A groups=(
    [satubus_materializer]=satubus_writer
    [satubus_nik_materializer]=satubus_nik_writer
    [satubus_api]=satubus_reader
    [satubus_nik_api]=satubus_restricted
    [satubus_gateway]=satubus_token_reader
    [satubus_auditor]=satubus_audit_reader
)

{
    for group in $(printf '%s\n' "${groups[@]}" | sort -u); do
        echo "CREATE ROLE $group NOLOGIN;"
    done
    while read -r login password; do
        [ -n "$login" ] || continue
        echo "CREATE ROLE $login LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '$password';"
        if [ -n "${groups[$login]:-}" ]; then
            echo "GRANT ${groups[$login]} TO $login;"
        fi
    done < /run/secrets/postgres-logins
    echo "CREATE DATABASE apicurio OWNER satubus_registry;"
} | psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" --quiet  # stdin: no password in a command line
