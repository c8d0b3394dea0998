"""pushpool's SDK: ``from pushpool import flow, task, get_run_logger``.

Light on purpose: importing it loads only the standard library (pydantic when an
annotated flow is called, asyncio when an async task runs, boto3 for an S3 store).
"""

from pushpool.cache import DEFAULT, INPUTS, NONE, TASK_SOURCE, CachePolicy
from pushpool.context import RunEnvironment, use_environment
from pushpool.events import emit_event
from pushpool.flows import Flow, flow
from pushpool.futures import PushpoolFuture, as_completed, wait
from pushpool.records import TaskRunRecord, TaskState
from pushpool.retries import exponential_backoff
from pushpool.run_logger import get_run_logger
from pushpool.task_runners import ThreadPoolTaskRunner
from pushpool.tasks import Task, task, unmapped

__all__ = [
    "DEFAULT",
    "INPUTS",
    "NONE",
    "TASK_SOURCE",
    "CachePolicy",
    "Flow",
    "PushpoolFuture",
    "RunEnvironment",
    "Task",
    "TaskRunRecord",
    "TaskState",
    "ThreadPoolTaskRunner",
    "as_completed",
    "emit_event",
    "exponential_backoff",
    "flow",
    "get_run_logger",
    "task",
    "unmapped",
    "use_environment",
    "wait",
]
