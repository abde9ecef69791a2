"""RAG Retrieval Quality: chunk relevance against citation rate, citations per answer, top chunks."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import piechart

from .common import DATASOURCE, bars, grid, hourly, legend, new_dashboard, q, series, single, v


def build() -> Any:
    d = new_dashboard("retrieval", "RAG Retrieval Quality",
                      "Chunk relevance against citation rate, the 0/1/2/3+ citation distribution and the "
                      "relevance histogram. Replaces the old page's retrieval quality charts.")
    for panel in (
        single("Chunks", "short", q(v("rag_chunks"), legend(), instant=True), w=6),
        single("Citations per retrieval", "percentunit", q(v("rag_chunk_citation_ratio"), legend(), instant=True), w=6),
        single("Retrievals", "short", q(v("rag_chunk_retrievals"), legend(), instant=True), w=6),
        single("Answers today", "short", q(v("rag_responses"), legend(), instant=True), w=6),
    ):
        d = d.with_panel(panel)
    d = d.with_panel(bars("Chunk relevance histogram", "short",
                          q(v("rag_chunk_relevance_chunks"), legend("{{relevance}}"), instant=True),
                          description="Chunks per tenth of mean relevance score."))
    d = d.with_panel(bars("Citation rate by relevance", "percentunit",
                          q(v("rag_chunk_relevance_citation_ratio"), legend("{{relevance}}"), instant=True),
                          description="Citations / retrievals of the chunks in each relevance bucket: whether "
                                      "relevant chunks are the ones cited."))
    d = d.with_panel(
        piechart.Panel().title("Answers by citations (today)").unit("short").datasource(DATASOURCE).height(8).span(12)
        .with_target(q(v("rag_citation_responses"), legend("{{citations}}"), instant=True).ref_id("A")))
    d = d.with_panel(series(
        "Share of answers by citations", "percentunit",
        q(f"{hourly('rag_citation_responses')} / ignoring(citations) group_left "
          f"sum without(citations) ({hourly('rag_citation_responses')})", legend("{{citations}}")),
        stacked=True))
    d = d.with_panel(grid("Most retrieved chunks",
                          q(v("rag_top_chunk_retrievals"), instant=True, table_format=True),
                          q(v("rag_top_chunk_citation_ratio"), instant=True, table_format=True),
                          q(v("rag_top_chunk_relevance_ratio"), instant=True, table_format=True),
                          units={"Value #B": "percentunit", "Value #C": "percentunit"}))
    return d
