"""Loaded model versions, one per version id, each with its fast predictor and micro-batcher.

A version is loaded once (registry.load_model verifies the signed bundle; fastpath compiles the
predictor, and onnxpath swaps in the version's accepted ONNX graph when that is as exact and
faster) however many endpoints or roles use it. When no route needs a version any more it is
retired: it keeps answering the requests already sent to it for `grace` seconds, then its
batcher finishes its queue and stops, so a routing change never drops a request.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass

import anyio.to_thread

from shipyard.core.errors import Integrity, Invalid
from shipyard.core.records import Signature
from shipyard.registry import LoadedModel, get_version, load_model
from shipyard.serve.batcher import MicroBatcher
from shipyard.serve.explain import Explainer
from shipyard.serve.fastpath import Predictor, compile_predictor
from shipyard.serve.metrics import Metrics
from shipyard.serve.onnxpath import prefer_onnx
from shipyard.store.workspace import Workspace

log = logging.getLogger("shipyard.serve")


@dataclass(eq=False)
class ServedModel:
    """One model version ready to answer: `await served.batcher.predict(batch)`."""

    version_id: str
    ref: str
    loaded: LoadedModel
    predictor: Predictor
    batcher: MicroBatcher

    @property
    def signature(self) -> Signature:
        assert self.loaded.signature is not None  # load_model always sets it
        return self.loaded.signature

    @property
    def task(self) -> str:
        return self.loaded.task

    @functools.cached_property
    def explainer(self) -> Explainer:
        """This version's per-row explainer, built on first use; NotSupported if it has none."""
        return Explainer(self.predictor)


def _load(
    ws: Workspace, version_id: str, ref: str, max_batch: int
) -> tuple[LoadedModel, Predictor]:
    version = get_version(ws, ref)
    if version.id != version_id:
        raise Integrity(
            f"the route names version {version_id} as {ref}, but {ref} is {version.id} in the "
            "registry; the endpoint record is inconsistent. Set the route again."
        )
    loaded = load_model(ws, ref)
    if loaded.signature is None:
        raise Invalid(f"model {ref} has no signature, so requests cannot be checked.")
    return loaded, prefer_onnx(ws, version, compile_predictor(loaded), max_batch=max_batch)


class ModelPool:
    """Every model version the server holds, by version id."""

    def __init__(
        self,
        ws: Workspace,
        metrics: Metrics,
        *,
        max_batch: int,
        max_wait_ms: float,
        grace: float = 5.0,
    ) -> None:
        self._ws = ws
        self._metrics = metrics
        self._max_batch = max_batch
        self._max_wait_ms = max_wait_ms
        self._grace = grace
        self._models: dict[str, ServedModel] = {}
        self._retiring: dict[asyncio.Task[None], ServedModel] = {}

    def __len__(self) -> int:
        return len(self._models)

    def get(self, version_id: str) -> ServedModel | None:
        return self._models.get(version_id)

    async def load(self, version_id: str, ref: str) -> ServedModel:
        """The served model of a version, loaded (off the event loop) on first use."""
        served = self._models.get(version_id)
        if served is not None:
            return served
        loaded, predictor = await anyio.to_thread.run_sync(
            _load, self._ws, version_id, ref, self._max_batch
        )
        served = self._models.get(version_id)  # loaded meanwhile by another caller
        if served is not None:
            return served
        batch_rows = self._metrics.batch_rows.labels(ref)
        batch_requests = self._metrics.batch_requests.labels(ref)

        def on_batch(rows: int, requests: int) -> None:
            batch_rows.observe(rows)
            batch_requests.observe(requests)

        batcher = MicroBatcher(
            predictor,
            name=ref,
            max_batch=self._max_batch,
            max_wait_ms=self._max_wait_ms,
            on_batch=on_batch,
        )
        batcher.start()
        served = ServedModel(version_id, ref, loaded, predictor, batcher)
        self._models[version_id] = served
        self._metrics.models_loaded.set(len(self._models))
        log.info("loaded model %s (%s, %s)", ref, loaded.flavor, loaded.task)
        return served

    def keep_only(self, needed: set[str]) -> None:
        """Retire every model not in `needed` (version ids)."""
        for version_id in [v for v in self._models if v not in needed]:
            served = self._models.pop(version_id)
            task = asyncio.get_running_loop().create_task(self._retire(served))
            self._retiring[task] = served
            task.add_done_callback(self._retiring.pop)
        self._metrics.models_loaded.set(len(self._models))

    async def _retire(self, served: ServedModel) -> None:
        await asyncio.sleep(self._grace)
        await served.batcher.close()
        log.info("unloaded model %s", served.ref)

    async def close(self) -> None:
        """Finish every queued request, then stop every batcher (server shutdown)."""
        models = [*self._models.values(), *self._retiring.values()]
        for task in list(self._retiring):
            task.cancel()
        self._models.clear()
        await asyncio.gather(*(m.batcher.close() for m in models), return_exceptions=True)
        self._metrics.models_loaded.set(0)
