"""What every chatnb anywidget shares: the stylesheet, the static snapshot in its mime bundle, and closing.

Each widget's mime bundle carries a ``text/html`` snapshot beside the widget view, so a saved notebook
shows it on GitHub, nbviewer and in nbval's comparison without a kernel (front ends with a widget manager
show the live view instead). A widget whose first load is still running waits for it (up to 10 s, on a
sync client: its worker thread needs no loop) so the snapshot shows what was loaded.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import anywidget

from . import _html
from ._live import release_chat_client
from ._worker import Job

__all__ = ["ChatWidget", "close_widget"]

HERE = Path(__file__).parent


def close_widget(widget: Any) -> None:
    """Close an ipywidget and the models it owns (its ``layout`` and ``style`` are widgets too, and stay
    open in the front end unless closed)."""
    owned = [getattr(widget, name, None) for name in ("layout", "style")]
    widget.close()
    for model in owned:
        if model is not None and hasattr(model, "close"):
            model.close()


class ChatWidget(anywidget.AnyWidget):
    """Base of the chatnb anywidgets (not used directly)."""

    _css = HERE / "chat.css"
    snapshot_kind = "widget"
    load_job: Job | None = None

    def snapshot_title(self) -> str:
        """The snapshot's heading."""
        return f"{type(self).__name__} (a static snapshot)"

    def snapshot_body(self) -> str:
        """The snapshot's content: safe HTML."""
        return ""

    def snapshot(self) -> str:
        """The static HTML snapshot of the widget as it is now."""
        return _html.snapshot(self.snapshot_kind, self.snapshot_title(), self.snapshot_body())

    def wait_loaded(self, timeout: float = 10.0) -> None:
        """Wait for the first load if a worker thread is doing it (a no-op over an async client, whose
        load needs the loop this may be running on)."""
        worker = getattr(self, "_worker", None)
        job = self.load_job
        if job is None or job.done() or worker is None or worker.is_async:
            return
        with contextlib.suppress(Exception):  # a failed load shows its error in the widget
            job.result(timeout)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        self.wait_loaded()
        bundle = super()._repr_mimebundle_(**kwargs)
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        return {**(data or {}), "text/html": self.snapshot()}, metadata

    def close(self) -> None:
        """Unsubscribe from real-time events, stop the worker and close the widget (safe to repeat, and
        on a widget whose constructor failed)."""
        subscription = getattr(self, "subscription", None)
        if subscription is not None and subscription.close():
            release_chat_client(self.chat_client)
        worker = getattr(self, "_worker", None)
        if worker is not None:
            worker.close()
        layout = self._trait_values.get("layout")
        super().close()
        if layout is not None:
            layout.close()
