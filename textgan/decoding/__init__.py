"""Decoding: from a trained run's generators to rewrites, one direction through these modules.

    plan.py        DecodeConfig + a request -> DecodePlan, resolved once (what transfer/convert/serve build)
    search.py      one decoder run: greedy, beam search, sampling, classifier-free guidance (Search)
    candidates.py  texts -> rewrites by a Search (decode_texts); a reranking pass's candidates (drafts);
                   retrieval of training sentences
    scores.py      what the reranker reads of a candidate (Features) and their one combination (combine)
    style.py       the style classifiers scoring reads (the run's, and the one over encoder embeddings)
    rerank.py      Reranker: drafts -> Features -> combine -> the best candidate per input, per pass
"""
