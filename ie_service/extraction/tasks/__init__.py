"""Every extraction task lives here, one module each (``ner``, ``re``, ``ee``), all
fulfilling :class:`Task`; ``TASKS`` is the registry (built-ins and entry-point plug-ins).

To add a task: write a module with a :class:`Task` subclass, then declare it as an entry
point of the group ``ie_service.tasks`` (see ``registry``). Its route, wire models, metrics
labels, CLI ``--task`` choice, template checks and evaluation follow from the registry.
"""

from .base import Grounder, NotExpressible, Task, TaskError, TriggersOnly
from .registry import GROUP, TASKS, TaskRegistry

__all__ = ["GROUP", "TASKS", "Grounder", "NotExpressible", "Task", "TaskError", "TaskRegistry", "TriggersOnly"]
