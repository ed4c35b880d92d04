"""The Indexer gRPC servicer: unpack, call the ingestion and admin functions, pack."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from imgsearch.config import Settings
from imgsearch.embedder.convert import model_info_to_proto
from imgsearch.embedder.results import Embedder
from imgsearch.indexer import admin
from imgsearch.indexer.ingest import Ingestor, load_vocabulary
from imgsearch.indexer.items import IngestItem
from imgsearch.indexer.reindex import BATCH as REINDEX_BATCH
from imgsearch.indexer.reindex import reindex
from imgsearch.protogen.imagesearch.v1 import indexer_pb2, indexer_pb2_grpc
from imgsearch.rpc.convert import filter_from_proto
from imgsearch.vectorstore.base import VectorStore

SERVICE_NAME = indexer_pb2.DESCRIPTOR.services_by_name["Indexer"].full_name
_STATUS = {
    "new": indexer_pb2.IngestResult.NEW,
    "duplicate": indexer_pb2.IngestResult.DUPLICATE,
    "failed": indexer_pb2.IngestResult.FAILED,
}


class IndexerServicer(indexer_pb2_grpc.IndexerServicer):
    def __init__(self, embedder: Embedder, store: VectorStore, settings: Settings):
        self.embedder = embedder
        self.store = store
        self.settings = settings
        self.ingestor = Ingestor(embedder, store, embedder.model_info().max_batch)

    def Ingest(self, request_iterator: Iterator, context: grpc.ServicerContext) -> indexer_pb2.IngestResponse:
        items = (IngestItem(r.image, r.id, r.uri, r.label, dict(r.metadata)) for r in request_iterator)
        response = indexer_pb2.IngestResponse()
        for outcome in self.ingestor.ingest(items):
            result = response.results.add(
                index=outcome.index, id=outcome.id, uri=outcome.uri, status=_STATUS[outcome.status]
            )
            if outcome.status == "failed":
                result.error.code, result.error.message = outcome.error_code, outcome.error
                response.failed += 1
            elif outcome.status == "new":
                response.ingested += 1
            else:
                response.duplicates += 1
        return response

    def UpsertVectors(self, request, context: grpc.ServicerContext) -> indexer_pb2.UpsertVectorsResponse:
        points = [
            admin.PrecomputedPoint(p.id, list(p.visual), list(p.semantic), p.uri, p.label, dict(p.metadata))
            for p in request.points
        ]
        count = admin.upsert_vectors(self.store, self.embedder.model_info(), points)
        return indexer_pb2.UpsertVectorsResponse(upserted=count)

    def Delete(self, request, context: grpc.ServicerContext) -> indexer_pb2.DeleteResponse:
        flt = filter_from_proto(request.filter) if request.HasField("filter") else None
        return indexer_pb2.DeleteResponse(
            deleted=admin.delete(self.store, list(request.ids), flt, request.all)
        )

    def LoadVocabulary(self, request, context: grpc.ServicerContext) -> indexer_pb2.LoadVocabularyResponse:
        limit = request.limit or self.settings.vocab_size
        words, loaded = load_vocabulary(self.embedder, self.store, limit, request.force)
        return indexer_pb2.LoadVocabularyResponse(words=words, loaded=loaded)

    def Reindex(self, request, context: grpc.ServicerContext) -> Iterator[indexer_pb2.ReindexProgress]:
        for p in reindex(self.embedder, self.store, request.batch or REINDEX_BATCH):
            yield indexer_pb2.ReindexProgress(done=p.done, total=p.total, skipped=p.skipped, head=p.head)

    def GetStats(self, request, context: grpc.ServicerContext) -> indexer_pb2.Stats:
        s = admin.stats(self.store)
        return indexer_pb2.Stats(
            images=s.images,
            words=s.words,
            store=s.store,
            model=model_info_to_proto(self.embedder.model_info()),
        )
