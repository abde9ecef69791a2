"""RAG Retrieval Quality: chunk relevance against citation rate, citations per answer, top chunks."""

from __future__ import annotations

from typing import Any

from ..quality import CITATIONS
from . import slos
from .common import (
    CUMULATIVE,
    OVER_TIME,
    TODAY,
    Column,
    about,
    bars,
    grid,
    hourly,
    legend,
    new_dashboard,
    pie,
    q,
    series,
    single,
    v,
)


def build() -> Any:
    d = new_dashboard("retrieval", "RAG Retrieval Quality",
                      "Chunk relevance against citation rate, the 0/1/2/3+ citation distribution and the "
                      "relevance histogram. Replaces the old page's retrieval quality charts.")
    for panel in (
        single("Chunks tracked", "locale", q(v("rag_chunks"), legend(), instant=True),
               description=about("Chunks with retrieval statistics (valid rows)", "chunk_retrieval_stats",
                                 CUMULATIVE), w=6),
        single("Citations per retrieval", "percentunit", q(v("rag_chunk_citation_ratio"), legend(), instant=True),
               description=about("All chunks' citations / retrievals", "chunk_retrieval_stats", CUMULATIVE), w=6),
        single("Retrievals", "short", q(v("rag_chunk_retrievals"), legend(), instant=True),
               description=about("Times any chunk was retrieved", "chunk_retrieval_stats", CUMULATIVE), w=6),
        single("Answers today", "locale", q(v("rag_responses"), legend(), instant=True),
               description=about("Answers given (responses_total)", "citation_daily", TODAY), w=6),
        slos.budget_left(CITATIONS, "citation_daily"),
    ):
        d = d.with_panel(panel)
    d = d.with_panel(bars("Chunks per relevance bucket", "locale",
                          q(v("rag_chunk_relevance_chunks"), legend("{{relevance}}"), instant=True),
                          description=about("Chunks per tenth of mean relevance score (the relevance histogram)",
                                            "chunk_retrieval_stats", CUMULATIVE)))
    d = d.with_panel(bars("Citation rate by relevance", "percentunit",
                          q(v("rag_chunk_relevance_citation_ratio"), legend("{{relevance}}"), instant=True),
                          description=about("Citations / retrievals of the chunks in each relevance bucket: whether "
                                            "relevant chunks are the ones cited", "chunk_retrieval_stats",
                                            CUMULATIVE)))
    d = d.with_panel(pie("Answers by citations (today)", "locale",
                         q(v("rag_citation_responses"), legend("{{citations}}"), instant=True),
                         description=about("Answers with 0, 1, 2 and 3+ citations", "citation_daily", TODAY)))
    d = d.with_panel(series(
        "Share of answers by citations", "percentunit",
        q(f"{hourly('rag_citation_responses')} / ignoring(citations) group_left "
          f"sum without(citations) ({hourly('rag_citation_responses')})", legend("{{citations}}")),
        description=about("Share of answers with 0, 1, 2 and 3+ citations, stacked to 100 %", "citation_daily",
                          OVER_TIME),
        stacked=True))
    d = d.with_panel(grid(
        "Most retrieved chunks",
        Column("Retrievals", v("rag_top_chunk_retrievals"), "locale"),
        Column("Citation rate", v("rag_top_chunk_citation_ratio"), "percentunit"),
        Column("Mean relevance", v("rag_top_chunk_relevance_ratio"), "percentunit"),
        description=about("The top chunks by retrievals, with their citations / retrievals and mean relevance "
                          "score", "chunk_retrieval_stats", CUMULATIVE),
        keys={"chunk_id": "Chunk", "document_id": "Document"}))
    return d
