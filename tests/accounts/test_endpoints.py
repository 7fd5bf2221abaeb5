from __future__ import annotations

from httpx import AsyncClient
from sqlalchemy import select

from tests.support.factories import PASSWORD, Factory
from tokenboard.accounts.auth import SESSION_COOKIE
from tokenboard.models import AccountEvent, PersonalAccessToken, UserSession


async def test_signup_logs_in_and_me_shows_the_user(factory: Factory) -> None:
    async with factory.anonymous() as client:
        r = await client.post(
            "/api/v1/auth/signup",
            json={"email": "Ada@Example.com", "name": "Ada", "password": "a long password"},
        )
        assert r.status_code == 201, r.text
        assert r.json()["email"] == "ada@example.com"
        me = await client.get("/api/v1/me")
        assert me.status_code == 200
        assert me.json()["user"]["name"] == "Ada"
        assert me.json()["organizations"] == []


async def test_signup_refuses_short_password_and_duplicate_email(factory: Factory) -> None:
    await factory.user(email="taken@example.com")
    async with factory.anonymous() as client:
        short = await client.post(
            "/api/v1/auth/signup", json={"email": "x@example.com", "name": "X", "password": "short"}
        )
        assert short.status_code == 400
        assert "at least 10" in short.json()["error"]["message"]
        dup = await client.post(
            "/api/v1/auth/signup",
            json={"email": "taken@example.com", "name": "X", "password": "a long password"},
        )
        assert dup.status_code == 409


async def test_login_gives_the_same_answer_for_unknown_and_known_emails(factory: Factory) -> None:
    await factory.user(email="known@example.com")
    async with factory.anonymous() as client:
        known = await client.post(
            "/api/v1/auth/login", json={"email": "known@example.com", "password": "wrong password"}
        )
        unknown = await client.post(
            "/api/v1/auth/login", json={"email": "nobody@example.com", "password": "wrong password"}
        )
    assert known.status_code == unknown.status_code == 401
    assert known.json() == unknown.json()


async def test_session_cookie_flags_and_a_new_session_id_at_login(factory: Factory, db: object) -> None:
    user = await factory.user(email="fix@example.com")
    async with factory.anonymous() as client:
        client.cookies.set(SESSION_COOKIE, "attacker-chosen-session-id", domain="testserver.local")
        first = await client.post(
            "/api/v1/auth/login", json={"email": "fix@example.com", "password": PASSWORD}
        )
        assert first.status_code == 200
        header = first.headers["set-cookie"]
        assert "HttpOnly" in header and "SameSite=lax" in header and "Secure" not in header
        first_token = client.cookies.get(SESSION_COOKIE)
        assert first_token and first_token != "attacker-chosen-session-id"
        second = await client.post(
            "/api/v1/auth/login", json={"email": "fix@example.com", "password": PASSWORD}
        )
        assert second.status_code == 200
        second_token = client.cookies.get(SESSION_COOKIE)
        assert second_token != first_token
    # The session the browser had before logging in again was dropped, not kept alongside.
    async with factory.anonymous() as old:
        old.cookies.set(SESSION_COOKIE, first_token, domain="testserver.local")
        assert (await old.get("/api/v1/me")).status_code == 401
    sessions = await factory.run(lambda s: _sessions_of(s, user.id))
    assert len(sessions) == 1


async def _sessions_of(session: object, user_id: object) -> list[UserSession]:
    result = await session.execute(select(UserSession).where(UserSession.user_id == user_id))  # type: ignore[attr-defined]
    return list(result.scalars())


async def test_secure_cookie_outside_local_dev(settings: object, backend: str) -> None:
    from tokenboard.app import create_app
    from tokenboard.config import Environment

    prod = settings.model_copy(update={"env": Environment.production})  # type: ignore[attr-defined]
    import os

    os.environ["TOKENBOARD_SECRET_KEY"] = "x"
    try:
        app = create_app(prod)
    finally:
        del os.environ["TOKENBOARD_SECRET_KEY"]
    factory = Factory(app)
    await factory.user(email="secure@example.com")
    async with factory.anonymous() as client:
        r = await client.post(
            "/api/v1/auth/login", json={"email": "secure@example.com", "password": PASSWORD}
        )
        assert r.status_code == 200
        assert "Secure" in r.headers["set-cookie"]
    await app.state.engine.dispose()


async def test_logout_ends_the_session(factory: Factory) -> None:
    user = await factory.user()
    client = await factory.client_for(user)
    async with client:
        assert (await client.get("/api/v1/me")).status_code == 200
        token = client.cookies.get(SESSION_COOKIE)
        assert (await client.post("/api/v1/auth/logout")).status_code == 204
    async with factory.anonymous() as replay:
        replay.cookies.set(SESSION_COOKIE, token, domain="testserver.local")
        assert (await replay.get("/api/v1/me")).status_code == 401


async def test_login_throttled_per_account(factory: Factory) -> None:
    await factory.user(email="target@example.com")
    async with factory.anonymous() as client:
        for _ in range(5):
            r = await client.post(
                "/api/v1/auth/login", json={"email": "target@example.com", "password": "wrong"}
            )
            assert r.status_code == 401
        blocked = await client.post(
            "/api/v1/auth/login", json={"email": "target@example.com", "password": PASSWORD}
        )
        assert blocked.status_code == 429
        assert "Retry-After" in blocked.headers
        # Another account from the same address still works: the per-address limit is higher.
        await factory.user(email="other@example.com")
        ok = await client.post(
            "/api/v1/auth/login", json={"email": "other@example.com", "password": PASSWORD}
        )
        assert ok.status_code == 200


async def test_login_throttled_per_address(factory: Factory) -> None:
    async with factory.anonymous() as client:
        for i in range(20):
            r = await client.post(
                "/api/v1/auth/login", json={"email": f"spray{i}@example.com", "password": "wrong"}
            )
            assert r.status_code == 401
        await factory.user(email="real@example.com")
        blocked = await client.post(
            "/api/v1/auth/login", json={"email": "real@example.com", "password": PASSWORD}
        )
        assert blocked.status_code == 429


async def test_password_change_ends_other_sessions_only(factory: Factory) -> None:
    user = await factory.user()
    other = await factory.client_for(user)
    mine = await factory.client_for(user)
    async with other, mine:
        wrong = await mine.post(
            "/api/v1/me/password", json={"current_password": "nope", "new_password": "another long one"}
        )
        assert wrong.status_code == 400
        r = await mine.post(
            "/api/v1/me/password", json={"current_password": PASSWORD, "new_password": "another long one"}
        )
        assert r.status_code == 200
        assert r.json()["sessions_ended"] == 1
        assert (await mine.get("/api/v1/me")).status_code == 200
        assert (await other.get("/api/v1/me")).status_code == 401
    async with factory.anonymous() as client:
        assert (
            await client.post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD})
        ).status_code == 401
        assert (
            await client.post(
                "/api/v1/auth/login", json={"email": user.email, "password": "another long one"}
            )
        ).status_code == 200


async def test_profile_edit(factory: Factory) -> None:
    user = await factory.user()
    await factory.user(email="taken@example.com")
    async with await factory.client_for(user) as client:
        r = await client.patch("/api/v1/me", json={"name": "New Name"})
        assert r.status_code == 200 and r.json()["name"] == "New Name"
        clash = await client.patch("/api/v1/me", json={"email": "taken@example.com"})
        assert clash.status_code == 409


async def test_personal_access_tokens_are_hashed_shown_once_and_revocable(factory: Factory) -> None:
    user = await factory.user()
    async with await factory.client_for(user) as client:
        created = await client.post("/api/v1/me/tokens", json={"name": "ci"})
        assert created.status_code == 201
        secret = created.json()["token"]
        assert secret.startswith("tbp_")
        listed = await client.get("/api/v1/me/tokens")
        assert "token" not in listed.json()[0]
        token_id = created.json()["id"]
    stored = await factory.run(lambda s: _tokens(s))
    assert all(secret not in (t.token_hash, t.token_hint) for t in stored)
    events = await factory.run(lambda s: _events(s))
    assert all(secret not in str(e.data) for e in events)
    async with factory.anonymous(csrf=False) as api:
        api.headers["Authorization"] = f"Bearer {secret}"
        assert (await api.get("/api/v1/me")).status_code == 200
        # Bearer requests carry no ambient credentials, so they need no CSRF token.
        assert (await api.patch("/api/v1/me", json={"name": "Via token"})).status_code == 200
        assert (await api.delete(f"/api/v1/me/tokens/{token_id}")).status_code == 204
        assert (await api.get("/api/v1/me")).status_code == 401
    async with factory.anonymous() as bad:
        bad.headers["Authorization"] = "Bearer tbp_not-a-real-token"
        assert (await bad.get("/api/v1/me")).status_code == 401


async def _tokens(session: object) -> list[PersonalAccessToken]:
    return list((await session.execute(select(PersonalAccessToken))).scalars())  # type: ignore[attr-defined]


async def _events(session: object) -> list[AccountEvent]:
    return list((await session.execute(select(AccountEvent))).scalars())  # type: ignore[attr-defined]


async def test_unauthenticated_api_gets_json_401(client: AsyncClient) -> None:
    r = await client.get("/api/v1/me")
    assert r.status_code == 401
    assert r.json()["error"]["type"] == "not_authenticated"
