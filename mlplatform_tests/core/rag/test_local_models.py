"""The sentence-transformers embedder and the cross-encoder reranker from local folders: tiny BERT models the test
builds and saves, loaded with the hub switched off (nothing is downloaded)."""

import numpy as np
import pytest

from mlplatform.core.rag.embedding import EmbeddingError, load_embedder, make_embedder
from mlplatform.core.rag.rerank import CrossEncoderReranker, RerankError, load_reranker
from mlplatform.core.rag.retrieval import Candidate
from mlplatform.core.rag.types import Chunk

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "cat", "dog", "market", "share", "warranty", "year"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers import models as st_models
    from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("models")
    (folder / "vocab.txt").write_text("\n".join(VOCAB))
    tokenizer = BertTokenizer(vocab_file=str(folder / "vocab.txt"))
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder / "bert")
    tokenizer.save_pretrained(folder / "bert")
    SentenceTransformer(modules=[st_models.Transformer(str(folder / "bert")), st_models.Pooling(16, "mean")],
                        device="cpu").save(str(folder / "st"))
    config.num_labels = 1
    BertForSequenceClassification(config).save_pretrained(folder / "ce")
    tokenizer.save_pretrained(folder / "ce")
    return folder


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def test_sentence_transformers_embedder_from_a_local_folder(models, tmp_path):
    embedder = make_embedder("sentence_transformers", path=models / "st", truncate_to=8)
    vectors = embedder.encode(["cat dog", "market share"])
    assert vectors.shape == (2, 8) and embedder.dim == 8
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    embedder.save(tmp_path)
    assert np.allclose(load_embedder(tmp_path).encode(["cat dog"]), vectors[:1], atol=1e-5)
    with pytest.raises(EmbeddingError, match="does not exist"):
        make_embedder("sentence_transformers", path=models / "missing")


def test_cross_encoder_reranks_candidates_and_saves_its_path(models, tmp_path):
    reranker = CrossEncoderReranker(models / "ce")
    candidates = [Candidate(i, Chunk(f"c{i}", text, "d.md", i), 0, 0, 0, 0, 0, i + 1)
                  for i, text in enumerate(["cat dog", "warranty year", "market"])]
    hits = reranker.rerank("warranty", candidates, 2)
    scores = reranker.scores("warranty", candidates)
    assert [h.chunk.chunk_id for h in hits] == [candidates[i].chunk.chunk_id for i in np.argsort(-scores)[:2]]
    assert all(h.retriever == "rerank" for h in hits) and [h.rank for h in hits] == [1, 2]
    reranker.save(tmp_path)
    assert np.allclose(load_reranker(tmp_path).scores("warranty", candidates), scores)
    with pytest.raises(RerankError, match="does not exist"):
        CrossEncoderReranker(models / "missing")
