"""An async flow: the runner runs coroutine functions with asyncio.run."""

import asyncio


async def fetch_all(count: int = 3, delay: float = 0.01) -> list[int]:
    async def work(i: int) -> int:
        await asyncio.sleep(delay)
        print(f"task {i} done")
        return i * i

    results = await asyncio.gather(*(work(i) for i in range(count)))
    return list(results)
