"""One pooled HTTP client per configured upstream, reused across requests."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from tokenboard.config import UpstreamConfig, UpstreamKind
from tokenboard.gateway.simulated import SimulatedTransport

ANTHROPIC_VERSION = "2023-06-01"
OPENAI_FORMAT = frozenset(
    {
        UpstreamKind.openai,
        UpstreamKind.openrouter,
        UpstreamKind.openai_compatible,
        UpstreamKind.simulated,
        UpstreamKind.anthropic,
    }
)
ANTHROPIC_FORMAT = frozenset({UpstreamKind.anthropic, UpstreamKind.simulated})
EMBEDDINGS = frozenset(
    {UpstreamKind.openai, UpstreamKind.openrouter, UpstreamKind.openai_compatible, UpstreamKind.simulated}
)


@dataclass
class Upstream:
    name: str
    config: UpstreamConfig
    client: httpx.AsyncClient
    _templates: dict[tuple[str, str], httpx.Request] = field(default_factory=dict)

    def request_template(self, path: str, api_format: str) -> httpx.Request:
        """The URL, headers (credentials included) and timeouts of a call, built once per path and format.

        Building them through the client for every request (URL parsing and joining, header merging) was
        the largest cost between admission and the upstream call.
        """
        key = (path, api_format)
        template = self._templates.get(key)
        if template is None:
            headers = {"content-type": "application/json", "accept": "application/json"}
            headers.update(self.auth_headers(api_format))
            template = self.client.build_request("POST", path, headers=headers)
            # The body's own length is set per request.
            del template.headers["content-length"]
            self._templates[key] = template
        return template

    @property
    def kind(self) -> UpstreamKind:
        return self.config.kind

    def auth_headers(self, api_format: str) -> dict[str, str]:
        """The operator's credentials. The client's base URL is fixed, so they only ever go to that host."""
        secret = self.config.api_key.get_secret_value() if self.config.api_key else None
        headers: dict[str, str] = {}
        if api_format == "anthropic":
            headers["anthropic-version"] = ANTHROPIC_VERSION
            if secret:
                headers["x-api-key"] = secret
        elif secret:
            headers["authorization"] = f"Bearer {secret}"
        return headers


class UpstreamPool:
    def __init__(self, configs: dict[str, UpstreamConfig]) -> None:
        self._upstreams: dict[str, Upstream] = {}
        for name, config in configs.items():
            timeout = httpx.Timeout(config.timeout_seconds, connect=config.connect_timeout_seconds)
            limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
            transport: httpx.AsyncBaseTransport | None = None
            if config.kind == UpstreamKind.simulated:
                transport = SimulatedTransport(latency_scale=config.latency_scale)
            client = httpx.AsyncClient(
                base_url=config.api_root(),
                timeout=timeout,
                limits=limits,
                transport=transport,
                follow_redirects=False,
                trust_env=False,
            )
            self._upstreams[name] = Upstream(name=name, config=config, client=client)

    def get(self, provider_id: str) -> Upstream | None:
        return self._upstreams.get(provider_id)

    async def aclose(self) -> None:
        for upstream in self._upstreams.values():
            await upstream.client.aclose()
