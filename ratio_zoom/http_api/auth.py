"""Bearer authentication for the core app's calls (constant-time compare)."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request


def bearer_guard(expected: str):  # type: ignore[no-untyped-def]
    expected_bytes = expected.encode()

    async def guard(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token or not hmac.compare_digest(token.encode(), expected_bytes):
            raise HTTPException(status_code=401, detail="missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    return guard
