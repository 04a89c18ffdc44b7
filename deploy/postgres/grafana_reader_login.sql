-- Lets grafana_reader log in with the password given as a psql variable (never stored in the repo):
--   psql -v password="$GRAFANA_DB_PASSWORD" -f grafana_reader.sql -f grafana_reader_login.sql
ALTER ROLE grafana_reader WITH LOGIN PASSWORD :'password';
