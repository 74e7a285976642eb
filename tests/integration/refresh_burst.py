"""A separate process making N concurrent Zoom calls for one workspace (for the cross-process refresh race).

python -m tests.integration.refresh_burst DATABASE_URL API_BASE OAUTH_BASE WORKSPACE N
Prints one JSON line: calls made, refreshes done by this process, errors by type.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter

from ratio_zoom.connections.services import Services
from tests.conftest import make_settings


async def main(database_url: str, api_base: str, oauth_base: str, workspace: str, n: int) -> None:
    settings = make_settings(database_url, ZOOM_API_BASE_URL=api_base, ZOOM_OAUTH_BASE_URL=oauth_base)
    services = Services.create(settings)
    errors: Counter[str] = Counter()

    async def one() -> None:
        try:
            await services.broker.call(workspace, lambda lease: services.zoom.get_me(lease.token))
        except Exception as exc:  # noqa: BLE001 - counted and reported, the test asserts there are none
            errors[type(exc).__name__] += 1

    await asyncio.gather(*(one() for _ in range(n)))
    print(json.dumps({"calls": n, "refreshes": services.broker.stats.refreshes, "errors": dict(errors)}), flush=True)
    await services.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
