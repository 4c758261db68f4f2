"""The route index answers exactly as Starlette's scan of the route table would."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from entrypoints.http.route_index import IndexedRouter, install_route_index


def overlapping_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        return {"route": "item", "id": item_id}

    @app.get("/items/me")  # shadowed for GET by the route above, as in the scan
    async def mine() -> dict[str, str]:
        return {"route": "mine"}

    @app.post("/items/me")
    async def create_mine() -> dict[str, str]:
        return {"route": "create_mine"}

    @app.post("/only-post")
    async def only_post() -> dict[str, str]:
        return {"route": "only_post"}

    @app.get("/slash/")
    async def slash() -> dict[str, str]:
        return {"route": "slash"}

    return app


async def responses(app: FastAPI) -> list[tuple[int, str]]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answers = []
        for method, path in [
            ("GET", "/items/me"),
            ("POST", "/items/me"),
            ("GET", "/items/42"),
            ("GET", "/only-post"),  # 405, from the scan's partial match
            ("GET", "/slash"),  # the trailing-slash redirect
            ("GET", "/nowhere"),
            ("GET", "/openapi.json"),
        ]:
            response = await client.request(method, path)
            answers.append((response.status_code, response.text))
        return answers


async def test_the_index_gives_the_answers_of_the_scan() -> None:
    scanned = overlapping_app()
    indexed = overlapping_app()
    install_route_index(indexed.router)
    assert isinstance(indexed.router.middleware_stack, IndexedRouter)
    assert await responses(indexed) == await responses(scanned)
    assert (await responses(indexed))[0] == (200, '{"route":"item","id":"me"}')


async def test_routes_added_after_the_first_request_are_served() -> None:
    app = overlapping_app()
    install_route_index(app.router)
    await responses(app)

    @app.get("/later")
    async def later() -> dict[str, str]:
        return {"route": "later"}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/later")).json() == {"route": "later"}


@pytest.mark.parametrize("root_path", ["", "/prefix"])
async def test_a_root_path_is_left_out_as_the_scan_does(root_path: str) -> None:
    app = overlapping_app()
    install_route_index(app.router)
    transport = httpx.ASGITransport(app=app, root_path=root_path)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post(f"{root_path}/items/me")
    assert response.json() == {"route": "create_mine"}
