"""Every route a configuration option's description names (`GET /open/personal-aggregates`, ...)
is a route the service serves: `privacy.k_anonymity` named `GET /open/aggregates`, which answers 404
(found by session 44's newcomer reading docs/privacy.md beside the settings)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from pydantic import BaseModel

from urbanpulse.api.access import api_routes
from urbanpulse.api.app import build_app
from urbanpulse.config import Settings

ROUTE = re.compile(r"\b(?:GET|POST|PUT|PATCH|DELETE) (/[\w/{}.-]*\w)")


def _descriptions(model: type[BaseModel], path: str = "") -> Iterator[tuple[str, str]]:
    for name, field in model.model_fields.items():
        if field.description:
            yield f"{path}{name}", field.description
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            yield from _descriptions(ann, f"{path}{name}.")


def _served() -> set[str]:
    return {r.path_format for r in api_routes(build_app().routes)}


def test_the_checker_reads_nested_descriptions_and_refuses_an_unknown_route() -> None:
    named = dict(_descriptions(Settings))
    assert "privacy.k_anonymity" in named
    assert ROUTE.findall("see GET /open/aggregates.") == ["/open/aggregates"]
    assert "/open/aggregates" not in _served()


def test_every_route_an_option_names_is_served() -> None:
    served = _served()
    wrong = {(option, path) for option, text in _descriptions(Settings) for path in ROUTE.findall(text)
             if path not in served}
    assert not wrong, f"options naming routes the service does not serve: {sorted(wrong)}"
