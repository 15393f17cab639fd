"""The standard Pusher with the atomic, monotonic executor (same spec and artifacts)."""

from tfx.components import Pusher
from tfx.dsl.components.base import executor_spec

from components.pusher import executor


class AtomicPusher(Pusher):
  """Pushes a blessed model to ``<base>/<version>/`` in one rename."""

  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)
