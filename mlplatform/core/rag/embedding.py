"""Turning chunks and questions into vectors: one :class:`Embedder` interface, four kinds, none downloading.

- ``lsa`` (default): latent semantic analysis fitted on the corpus itself: TF-IDF over words and truncated SVD
  (scikit-learn), vectors L2-normalised. Saved as plain arrays and JSON (vocabulary, IDF weights, components), no
  pickle. Components are ordered by singular value, so truncating keeps the strongest directions.
- ``model2vec``: a static embedding model (model2vec format) read from a local folder.
- ``sentence_transformers``: a sentence-transformers model read from a local folder; the package is optional
  (``pip install -e ".[models]"``), not a platform dependency.
- ``openai``: any OpenAI-compatible ``/v1/embeddings`` endpoint (a local server such as vLLM, llama.cpp or
  Ollama, or a hosted API), its key read from an environment variable.

Every kind can truncate its vectors Matryoshka-style (``truncate_to``: keep the first N dimensions, renormalise),
for models trained that way. Vectors are float32 with unit length, so a dot product is the cosine similarity.
"""

import json
import os
import re
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np

KINDS = ("lsa", "model2vec", "sentence_transformers", "openai")
CONFIG = "embedder.json"


class EmbeddingError(ValueError):
    """An embedder that cannot be built, fitted, loaded or reached; the message names the cause and the fix."""


def normalise(vectors: np.ndarray, truncate_to: int | None = None) -> np.ndarray:
    """Float32 rows of unit length; with ``truncate_to``, only the first that many dimensions (Matryoshka)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    if truncate_to is not None:
        if truncate_to > vectors.shape[1]:
            raise EmbeddingError(f"truncate_to ({truncate_to}) exceeds the model's {vectors.shape[1]} dimensions; "
                                 "choose a smaller value or leave it unset")
        vectors = vectors[:, :truncate_to]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.where(norms > 0, norms, 1.0), dtype=np.float32)


class Embedder(ABC):
    """Fit on the corpus (a no-op for pretrained models), encode texts, save and load itself."""

    kind: str
    truncate_to: int | None = None

    @property
    @abstractmethod
    def dim(self) -> int:
        """The length of the vectors :meth:`encode` returns."""

    def fit(self, texts: Sequence[str]) -> "Embedder":
        return self

    def fit_encode(self, texts: Sequence[str]) -> np.ndarray:
        """:meth:`fit` on ``texts``, then :meth:`encode` them (one pass where the kind allows)."""
        return self.fit(texts).encode(texts)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """An array of shape (len(texts), dim), float32, rows of unit length."""
        if not len(texts):
            return np.zeros((0, self.dim), dtype=np.float32)
        return normalise(self._encode(list(texts)), self.truncate_to)

    @abstractmethod
    def _encode(self, texts: list[str]) -> np.ndarray: ...

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG).write_text(json.dumps({"kind": self.kind, **self._config()}, indent=1))
        self._save(folder)

    def _config(self) -> dict:
        return {"truncate_to": self.truncate_to}

    def _save(self, folder: Path) -> None:
        return None


def make_embedder(kind: str = "lsa", *, path: str | Path | None = None, url: str | None = None,
                  model: str | None = None, dimensions: int = 256, truncate_to: int | None = None,
                  api_key_env: str = "OPENAI_API_KEY", max_fit_texts: int = 20_000, seed: int = 0) -> Embedder:
    """The embedder a brief's ``rag.embedding`` describes (not yet fitted)."""
    if kind == "lsa":
        return LsaEmbedder(dimensions=dimensions, truncate_to=truncate_to, max_fit_texts=max_fit_texts, seed=seed)
    if kind == "model2vec":
        return Model2VecEmbedder(_need(path, kind), truncate_to=truncate_to)
    if kind == "sentence_transformers":
        return SentenceTransformerEmbedder(_need(path, kind), truncate_to=truncate_to)
    if kind == "openai":
        if not url or not model:
            raise EmbeddingError("the openai embedder needs url (e.g. http://127.0.0.1:8000/v1) and model")
        return OpenAIEmbedder(url, model, dimensions=dimensions, truncate_to=truncate_to, api_key_env=api_key_env)
    raise EmbeddingError(f"unknown embedding kind {kind!r}; use one of {', '.join(KINDS)}")


def load_embedder(folder: Path) -> Embedder:
    """An embedder :meth:`Embedder.save` wrote to ``folder``."""
    config_path = Path(folder) / CONFIG
    if not config_path.exists():
        raise EmbeddingError(f"{folder} holds no saved embedder ({CONFIG} is missing); build the index again")
    config = json.loads(config_path.read_text())
    kind = config.pop("kind")
    if kind == "lsa":
        return LsaEmbedder.load(Path(folder), config)
    if kind == "model2vec":
        return Model2VecEmbedder(config["path"], truncate_to=config["truncate_to"])
    if kind == "sentence_transformers":
        return SentenceTransformerEmbedder(config["path"], truncate_to=config["truncate_to"])
    if kind == "openai":
        return OpenAIEmbedder(config["url"], config["model"], dimensions=config["dimensions"],
                              truncate_to=config["truncate_to"], api_key_env=config["api_key_env"])
    raise EmbeddingError(f"{config_path} names an unknown embedding kind {kind!r}")


def _need(path: str | Path | None, kind: str) -> Path:
    if not path:
        raise EmbeddingError(f"the {kind} embedder needs path: the local folder of the saved model")
    folder = Path(path)
    if not folder.is_dir():
        raise EmbeddingError(f"{kind} model folder {folder} does not exist; save the model there first (models are "
                             "never downloaded at run time)")
    return folder


# Words of two or more letters or digits; the same pattern the sparse index tokenises with.
TOKEN_PATTERN = r"(?u)\b\w\w+\b"


class LsaEmbedder(Embedder):
    """TF-IDF and truncated SVD fitted on the corpus (latent semantic analysis). The SVD is fitted on at most
    ``max_fit_texts`` texts (an even sample), the vocabulary on all of them; every text is then projected."""

    kind = "lsa"

    def __init__(self, dimensions: int = 256, truncate_to: int | None = None, max_fit_texts: int = 20_000,
                 seed: int = 0) -> None:
        self.dimensions = dimensions
        self.truncate_to = truncate_to
        self.max_fit_texts = max_fit_texts
        self.seed = seed
        self._vectorizer = None
        self._components: np.ndarray | None = None
        self._projection: np.ndarray | None = None

    @property
    def dim(self) -> int:
        if self._components is None:
            raise EmbeddingError("the LSA embedder is not fitted; call fit on the corpus first")
        return self.truncate_to or self._components.shape[0]

    def fit(self, texts: Sequence[str]) -> "LsaEmbedder":
        self._fit(list(texts))
        return self

    def fit_encode(self, texts: Sequence[str]) -> np.ndarray:
        """Fit and encode with one tokenisation of the corpus (the TF-IDF matrix of the fit is projected)."""
        matrix = self._fit(list(texts))
        assert self._components is not None
        self._projection = np.ascontiguousarray(self._components.T)
        return normalise(np.asarray(matrix @ self._projection), self.truncate_to)

    def _fit(self, texts: list[str]):
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # no py.typed marker

        texts = list(texts)
        if len(texts) < 3:
            raise EmbeddingError(f"the LSA embedder fits on the corpus and needs at least 3 chunks (got "
                                 f"{len(texts)}); add documents or choose a pretrained embedding kind")
        vectorizer = TfidfVectorizer(sublinear_tf=True, stop_words="english", token_pattern=TOKEN_PATTERN,
                                     min_df=2 if len(texts) >= 50 else 1, max_df=0.95 if len(texts) >= 50 else 1.0,
                                     max_features=200_000, dtype=np.float32)
        full = vectorizer.fit_transform(texts)
        if full.shape[1] < 2:
            raise EmbeddingError("the corpus has fewer than 2 distinct words after stop words; LSA cannot fit")
        matrix = full
        if matrix.shape[0] > self.max_fit_texts:
            rows = np.random.default_rng(self.seed).choice(matrix.shape[0], self.max_fit_texts, replace=False)
            matrix = matrix[np.sort(rows)]
        components = min(self.dimensions, matrix.shape[1] - 1, matrix.shape[0] - 1)
        # Two power iterations, not scikit-learn's default: the fit is sparse-times-dense products (2 per
        # iteration), the largest part of the index's CPU time at 10^5 chunks; the demo's retrieval and answer
        # metrics were unchanged from 4 iterations (docs/rag.md, "Speed").
        svd = TruncatedSVD(n_components=components, algorithm="randomized", n_iter=2, random_state=self.seed)
        # One BLAS thread: on a busy machine (2 cores, load 17) OpenBLAS's spinning threads made this fit 7x
        # slower (107 s against 15 s for 20,000 texts); on an idle one the single thread costs little.
        with threadpool_limits(1, user_api="blas"):
            svd.fit(matrix)
        if self.truncate_to is not None and self.truncate_to > components:
            raise EmbeddingError(f"truncate_to ({self.truncate_to}) exceeds the {components} LSA components this "
                                 "corpus supports; lower it")
        self._vectorizer = vectorizer
        self._components = np.ascontiguousarray(svd.components_.astype(np.float32))
        self._projection = None
        return full

    def _encode(self, texts: list[str]) -> np.ndarray:
        if self._vectorizer is None or self._components is None:
            raise EmbeddingError("the LSA embedder is not fitted; call fit on the corpus first")
        if self._projection is None:  # (vocabulary x dimensions), C order: sparse @ it copies nothing per call
            self._projection = np.ascontiguousarray(self._components.T)
        sparse = self._vectorizer.transform(texts)
        return np.asarray(sparse @ self._projection)

    def _config(self) -> dict:
        return {"truncate_to": self.truncate_to, "dimensions": self.dimensions, "max_fit_texts": self.max_fit_texts,
                "seed": self.seed, "min_df": self._vectorizer.min_df if self._vectorizer else None,
                "max_df": self._vectorizer.max_df if self._vectorizer else None}

    def _save(self, folder: Path) -> None:
        if self._vectorizer is None or self._components is None:
            raise EmbeddingError("the LSA embedder is not fitted; nothing to save")
        terms = self._vectorizer.get_feature_names_out().tolist()
        (folder / "lsa_vocabulary.json").write_text(json.dumps(terms))
        np.save(folder / "lsa_idf.npy", self._vectorizer.idf_.astype(np.float32))
        np.save(folder / "lsa_components.npy", self._components)

    @classmethod
    def load(cls, folder: Path, config: dict) -> "LsaEmbedder":
        from sklearn.feature_extraction.text import TfidfVectorizer

        embedder = cls(config["dimensions"], config["truncate_to"], config["max_fit_texts"], config["seed"])
        terms = json.loads((folder / "lsa_vocabulary.json").read_text())
        vectorizer = TfidfVectorizer(sublinear_tf=True, stop_words="english", token_pattern=TOKEN_PATTERN,
                                     vocabulary={term: i for i, term in enumerate(terms)}, dtype=np.float32)
        vectorizer.idf_ = np.load(folder / "lsa_idf.npy")
        embedder._vectorizer = vectorizer
        embedder._components = np.load(folder / "lsa_components.npy")
        return embedder


class Model2VecEmbedder(Embedder):
    """A model2vec static model from a local folder (``StaticModel.save_pretrained``)."""

    kind = "model2vec"

    def __init__(self, path: str | Path, truncate_to: int | None = None) -> None:
        from model2vec import StaticModel

        self.path = Path(path)
        self.truncate_to = truncate_to
        if not (self.path / "config.json").exists():
            raise EmbeddingError(f"{self.path} is not a saved model2vec model (config.json is missing); save one "
                                 "with StaticModel.save_pretrained")
        self._model = StaticModel.from_pretrained(self.path, force_download=False)
        self._dim = int(self._model.dim)

    @property
    def dim(self) -> int:
        return self.truncate_to or self._dim

    def _encode(self, texts: list[str]) -> np.ndarray:
        return self._model.encode(texts, use_multiprocessing=False)

    def _config(self) -> dict:
        return {"truncate_to": self.truncate_to, "path": str(self.path.resolve())}


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model from a local folder (``SentenceTransformer.save``); optional package."""

    kind = "sentence_transformers"

    def __init__(self, path: str | Path, truncate_to: int | None = None) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise EmbeddingError("embedding kind sentence_transformers needs the sentence-transformers package: "
                                 "pip install -e '.[models]' (or use model2vec, lsa or openai)") from None
        self.path = Path(path)
        self.truncate_to = truncate_to
        self._model = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
        dimension = getattr(self._model, "get_embedding_dimension", None) or \
            self._model.get_sentence_embedding_dimension
        self._dim = int(dimension() or 0)

    @property
    def dim(self) -> int:
        return self.truncate_to or self._dim

    def _encode(self, texts: list[str]) -> np.ndarray:
        return self._model.encode(texts, convert_to_numpy=True, show_progress_bar=False)

    def _config(self) -> dict:
        return {"truncate_to": self.truncate_to, "path": str(self.path.resolve())}


class OpenAIEmbedder(Embedder):
    """An OpenAI-compatible ``POST {url}/embeddings`` endpoint; texts are sent in batches of ``batch_size``."""

    kind = "openai"

    def __init__(self, url: str, model: str, dimensions: int | None = None, truncate_to: int | None = None,
                 api_key_env: str = "OPENAI_API_KEY", batch_size: int = 128, timeout_s: float = 60) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self.dimensions = dimensions
        self.truncate_to = truncate_to
        self.api_key_env = api_key_env
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self._request(["dimension probe"]).shape[1])
        return self.truncate_to or self._dim

    def _encode(self, texts: list[str]) -> np.ndarray:
        parts = [self._request(texts[i:i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        vectors = np.vstack(parts)
        self._dim = int(vectors.shape[1])
        return vectors

    def _request(self, texts: list[str]) -> np.ndarray:
        body: dict = {"model": self.model, "input": texts, "encoding_format": "float"}
        if self.dimensions:
            body["dimensions"] = self.dimensions
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        endpoint = f"{self.url}/embeddings"
        request = urllib.request.Request(endpoint, data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as err:
            detail = re.sub(r"\s+", " ", err.read().decode(errors="replace"))[:300]
            raise EmbeddingError(f"the embeddings endpoint {endpoint} answered HTTP {err.code}: {detail}; check "
                                 f"the model name ({self.model}) and the key in ${self.api_key_env}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise EmbeddingError(f"the embeddings endpoint {endpoint} cannot be reached ({reason}); start the "
                                 "server or correct rag.embedding.url") from None
        except json.JSONDecodeError:
            raise EmbeddingError(f"the embeddings endpoint {endpoint} did not answer JSON") from None
        try:
            rows = sorted(payload["data"], key=lambda row: row.get("index", 0))
            vectors = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
        except (KeyError, TypeError, ValueError):
            raise EmbeddingError(f"the embeddings endpoint {endpoint} answered without data[].embedding; is it "
                                 "OpenAI-compatible?") from None
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise EmbeddingError(f"the embeddings endpoint {endpoint} returned {len(vectors)} vectors for "
                                 f"{len(texts)} texts")
        return vectors

    def _config(self) -> dict:
        return {"truncate_to": self.truncate_to, "url": self.url, "model": self.model,
                "dimensions": self.dimensions, "api_key_env": self.api_key_env}
