"""The registry of tasks: the single source of truth for which tasks exist.

Built-in tasks and third-party ones are loaded the same way, as entry points of the group
``ie_service.tasks`` (``name = "package.module:TaskClass"``); a package adds a task with

    [project.entry-points."ie_service.tasks"]
    keywords = "my_package.keywords:Keywords"

The entry point's name must be the task's ``name``. Loading is lazy (first use) and
``TASKS.reload()`` picks up packages installed since.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from importlib.metadata import EntryPoint, entry_points

from .base import Task, TaskError, check_task

GROUP = "ie_service.tasks"
BUILTIN = (
    EntryPoint("ner", "ie_service.extraction.tasks.ner:NER", GROUP),
    EntryPoint("re", "ie_service.extraction.tasks.re:RE", GROUP),
    EntryPoint("ee", "ie_service.extraction.tasks.ee:EE", GROUP),
)


def instantiate(obj: object) -> Task:
    """A checked task from a Task subclass or instance (TaskError if it is incomplete)."""
    if isinstance(obj, type) and issubclass(obj, Task):
        try:
            obj = obj()
        except TypeError as exc:  # abstract methods left unimplemented
            raise TaskError(f"task {obj.__qualname__} is incomplete: {exc}") from exc
    if not isinstance(obj, Task):
        raise TaskError(f"{obj!r} is not an ie_service Task")
    check_task(obj)
    return obj


class TaskRegistry(Mapping[str, Task]):
    """Task name → task, in registration order (built-ins first)."""

    def __init__(self) -> None:
        self._tasks: dict[str, Task] | None = None
        self._lock = threading.RLock()  # a plug-in may look tasks up while it loads

    def _loaded(self) -> dict[str, Task]:
        if self._tasks is None:
            with self._lock:
                if self._tasks is None:
                    tasks: dict[str, Task] = {}
                    plugins = [ep for ep in entry_points(group=GROUP) if ep not in BUILTIN]
                    for ep in (*BUILTIN, *plugins):
                        self._add(tasks, ep)
                    self._tasks = tasks
        return self._tasks

    @staticmethod
    def _add(tasks: dict[str, Task], ep: EntryPoint) -> None:
        try:
            loaded = ep.load()
        except Exception as exc:
            raise TaskError(f"entry point {ep.name} = {ep.value} of {GROUP} failed to load: {exc}") from exc
        task = instantiate(loaded)
        if task.name != ep.name:
            raise TaskError(f"entry point {ep.name!r} of {GROUP} holds task {task.name!r}: the names must match")
        if ep.name in tasks:
            raise TaskError(f"two tasks named {ep.name!r}: {ep.value} and {type(tasks[ep.name]).__module__}")
        tasks[ep.name] = task

    def reload(self) -> None:
        """Forget the loaded tasks; the next use loads them again (new packages included)."""
        with self._lock:
            self._tasks = None

    def __getitem__(self, name: str) -> Task:
        tasks = self._loaded()
        if name not in tasks:
            raise KeyError(f"unknown task {name!r}; known: {sorted(tasks)}")
        return tasks[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())


TASKS = TaskRegistry()
