"""One pooled HTTP client per configured upstream, reused across requests."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from tokenboard.config import UpstreamConfig, UpstreamKind
from tokenboard.gateway.http1 import Http1Transport, Prepared
from tokenboard.gateway.simulated import SimulatedTransport

ANTHROPIC_VERSION = "2023-06-01"
MAX_CONNECTIONS = 200  # per upstream origin; requests beyond wait for one (the pool timeout)
MAX_IDLE = 100  # kept open between requests
# Requests built once per route, format and anthropic-beta list: the lists clients send are few (a client
# sends the same one each time), but a cache of any value sent would grow without end.
MAX_TEMPLATES = 64
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
    transport: httpx.AsyncBaseTransport
    _templates: dict[tuple[str, str, str | None], httpx.Request] = field(default_factory=dict)
    _prepared: dict[tuple[str, str, str | None], Prepared] = field(default_factory=dict)

    async def post(self, path: str, api_format: str, body: bytes, beta: str | None = None) -> httpx.Response:
        """POST a JSON body to one of the provider's routes; the response's body is left to stream.

        Straight to the client's transport: the client builds each route's template once (base URL,
        headers, timeouts), and its ``send`` would only add what the gateway does not want: authentication
        and redirect flows it has none of, and a cookie jar shared by every organization's requests. With
        the gateway's own transport the route's head is also encoded once and each call only adds its body;
        other transports (the simulated provider) get a regular ``httpx.Request``. ``beta`` is the client's
        ``anthropic-beta`` list, checked by the gateway, sent as that header.
        """
        key = (path, api_format, beta)
        if isinstance(self.transport, Http1Transport):
            prepared = self._prepared.get(key)
            if prepared is None:
                prepared = Prepared(self.request_template(path, api_format, beta))
                if len(self._prepared) < MAX_TEMPLATES:
                    self._prepared[key] = prepared
            return await self.transport.send_prepared(prepared, body)
        template = self.request_template(path, api_format, beta)
        request = httpx.Request(
            "POST", template.url, headers=template.headers, content=body, extensions=template.extensions
        )
        response = await self.transport.handle_async_request(request)
        response.request = request
        return response

    def request_template(self, path: str, api_format: str, beta: str | None = None) -> httpx.Request:
        """The URL, headers (credentials included) and timeouts of a call, built once per path and format.

        Building them through the client for every request (URL parsing and joining, header merging) was
        the largest cost between admission and the upstream call.
        """
        key = (path, api_format, beta)
        template = self._templates.get(key)
        if template is None:
            # Uncompressed answers: the gateway relays stream chunks as they come, without a decoder.
            headers = {
                "content-type": "application/json",
                "accept": "application/json",
                "accept-encoding": "identity",
            }
            headers.update(self.auth_headers(api_format))
            if beta is not None:
                headers["anthropic-beta"] = beta
            template = self.client.build_request("POST", path, headers=headers)
            # The body's own length is set per request.
            del template.headers["content-length"]
            if len(self._templates) < MAX_TEMPLATES:
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
            transport: httpx.AsyncBaseTransport
            if config.kind == UpstreamKind.simulated:
                transport = SimulatedTransport(latency_scale=config.latency_scale)
            else:
                transport = Http1Transport(max_connections=MAX_CONNECTIONS, max_idle=MAX_IDLE)
            client = httpx.AsyncClient(
                base_url=config.api_root(),
                timeout=timeout,
                transport=transport,
                follow_redirects=False,
                trust_env=False,
            )
            self._upstreams[name] = Upstream(name=name, config=config, client=client, transport=transport)

    def get(self, provider_id: str) -> Upstream | None:
        return self._upstreams.get(provider_id)

    async def aclose(self) -> None:
        for upstream in self._upstreams.values():
            await upstream.client.aclose()
