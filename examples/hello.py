"""The smallest flow: print and log a greeting, return it."""

import logging

logger = logging.getLogger(__name__)


def hello(name: str = "world") -> str:
    greeting = f"Hello, {name}!"
    print(greeting)
    logger.info("Greeted %s", name)
    return greeting
