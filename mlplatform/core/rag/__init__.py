"""Retrieval-augmented question answering: documents → chunks → indexes → retrieval → rerank → cited answer."""
