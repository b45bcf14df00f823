"""Why retrieval picked a user for a set of promoted items, in terms a marketer can check."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from shopgraph.retrieval.queries import Retriever


def retrieval_reasons(retriever: Retriever, user_ids: Sequence[str], items: Sequence[str]
                      ) -> pd.DataFrame:
    """Per user: ``top_item`` (the promoted item the user's embedding scores highest) and
    ``because_of`` (the item of the user's own history closest, by cosine, to the mean of the
    promoted items; None without a history)."""
    users, _ = retriever.positions("user", user_ids)
    promoted, _ = retriever.positions("item", items, skip_unknown=True)
    item_emb = retriever.ckpt.item_emb
    scores = retriever.ckpt.user_emb[users] @ item_emb[promoted].T
    top_item = retriever.item_ids[promoted[np.argmax(scores, axis=1)]]
    target = item_emb[promoted].mean(axis=0)
    norms = np.linalg.norm(item_emb, axis=1) * max(float(np.linalg.norm(target)), 1e-12)
    cosine = (item_emb @ target) / np.where(norms > 0, norms, 1)
    seen = retriever.bundle.seen[users]
    because = []
    for row in range(len(users)):
        history = seen.indices[seen.indptr[row]:seen.indptr[row + 1]]
        because.append(retriever.item_ids[history[np.argmax(cosine[history])]]
                       if len(history) else None)
    return pd.DataFrame({"user_id": [str(u) for u in user_ids], "top_item": top_item,
                         "because_of": because})
