"""API keys and roles: who may call which endpoint (see docs/api.md, "Access")."""

from urbanpulse.auth.keys import ApiKey, CreatedKey, KeyStore
from urbanpulse.auth.roles import DATA_CLASSES, Access, Role, allows

__all__ = ["DATA_CLASSES", "Access", "ApiKey", "CreatedKey", "KeyStore", "Role", "allows"]
