"""Schema of the alert tables (migration 4). Placeholder until alerts land."""

ALERTS_SQL = "SELECT 1;"
