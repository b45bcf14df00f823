"""Retrieval: FAISS and exact indexes over a checkpoint's embeddings, and the queries on them
(recommendations, similar items and users, audiences)."""
