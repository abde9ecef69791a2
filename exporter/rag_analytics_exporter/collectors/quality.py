"""Answer quality: citations, feedback, feedback tags, follow-up patterns and chunk retrieval.

    # TYPE rag_citation_responses gauge
    rag_citation_responses{citations="3+"} 5120.0
    # TYPE rag_citation_period_uncited_responses gauge
    rag_citation_period_uncited_responses 61803.0
    # TYPE rag_feedback gauge
    rag_feedback{sentiment="negative"} 84.0
    # TYPE rag_feedback_period_events gauge
    rag_feedback_period_events{sentiment="negative"} 2210.0
    # TYPE rag_feedback_negative_ratio gauge
    rag_feedback_negative_ratio 0.12
    # TYPE rag_feedback_tag gauge
    rag_feedback_tag{sentiment="negative",tag="hallucination"} 31.0
    # TYPE rag_followups gauge
    rag_followups{pattern="clarification"} 412.0
    # TYPE rag_followup_response_time_seconds gauge
    rag_followup_response_time_seconds{pattern="clarification"} 2.9
    # TYPE rag_followup_positive_feedback_ratio gauge
    rag_followup_positive_feedback_ratio{pattern="clarification"} 0.71
    # TYPE rag_chunk_relevance_chunks gauge
    rag_chunk_relevance_chunks{relevance="0.7-0.8"} 2210.0
    # TYPE rag_top_chunk_retrievals gauge
    rag_top_chunk_retrievals{chunk_id="doc-12#3",document_id="doc-12"} 941.0
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import Metric

from ..snapshot import (
    CHUNKS,
    CITATIONS,
    FEEDBACK,
    PATTERNS,
    TAGS,
    ChunkData,
    CitationData,
    FeedbackData,
    PatternData,
    Section,
    Snapshot,
    TagData,
    View,
)
from ._help import chunk_gauge, gauge


def collect(snapshot: Snapshot, view: View) -> Iterator[Metric]:
    """Every quality family whose table is fresh (and, for daily tables, current)."""
    yield from _citations(snapshot, view.current(CITATIONS))
    yield from _feedback(snapshot, view.current(FEEDBACK))
    yield from _tags(snapshot, view.current(TAGS))
    yield from _patterns(snapshot, view.current(PATTERNS))
    yield from _chunks(snapshot, view.section(CHUNKS))


def _citations(snapshot: Snapshot, section: Section[CitationData | None] | None) -> Iterator[Metric]:
    if section is None or section.data is None:
        return
    responses = gauge(snapshot, "rag_responses",
                      "Answers given on the newest day, so far (citation_daily.responses_total)")
    responses.add_metric([], section.data.responses)
    by_citations = gauge(snapshot, "rag_citation_responses",
                         "Answers on the newest day by how many retrieved chunks they cited: 0, 1, 2 or 3+ "
                         "(citation_daily)", ["citations"])
    for citations, count in section.data.by_citations.items():
        by_citations.add_metric([citations], count)
    period = (f"over the SLO period, the last {section.data.period_days} UTC days with today so far "
              "(citation_daily.{}, summed; slo.period_days)")
    period_responses = gauge(snapshot, "rag_citation_period_responses", "Answers given " +
                             period.format("responses_total"))
    period_responses.add_metric([], section.data.period[0])
    period_uncited = gauge(snapshot, "rag_citation_period_uncited_responses", "Answers that cited no retrieved "
                           "chunk " + period.format("zero_citations"))
    period_uncited.add_metric([], section.data.period[1])
    yield from (responses, by_citations, period_responses, period_uncited)


def _feedback(snapshot: Snapshot, section: Section[FeedbackData | None] | None) -> Iterator[Metric]:
    if section is None or section.data is None:
        return
    feedback = gauge(snapshot, "rag_feedback",
                     "User feedback on the newest day, so far, by sentiment (feedback_daily)", ["sentiment"])
    feedback.add_metric(["positive"], section.data.positive)
    feedback.add_metric(["negative"], section.data.negative)
    period = gauge(snapshot, "rag_feedback_period_events",
                   f"User feedback over the SLO period, the last {section.data.period_days} UTC days with today so "
                   "far, by sentiment (feedback_daily, summed; slo.period_days)", ["sentiment"])
    period.add_metric(["positive"], section.data.period[0])
    period.add_metric(["negative"], section.data.period[1])
    yield from (feedback, period)
    total = section.data.positive + section.data.negative
    if total > 0:
        ratio = gauge(snapshot, "rag_feedback_negative_ratio",
                      "negative / (positive + negative) feedback on the newest day; absent with no feedback")
        ratio.add_metric([], section.data.negative / total)
        yield ratio


def _tags(snapshot: Snapshot, section: Section[TagData] | None) -> Iterator[Metric]:
    if section is None:
        return
    tags = gauge(snapshot, "rag_feedback_tag",
                 "Feedback carrying this tag on the newest day, by sentiment (feedback_tags_daily); "
                 "the top tags by volume, the rest summed as tag=\"other\"", ["tag", "sentiment"])
    for tag, (positive, negative) in section.data.tags.items():
        tags.add_metric([tag, "positive"], positive)
        tags.add_metric([tag, "negative"], negative)
    yield tags


def _patterns(snapshot: Snapshot, section: Section[PatternData] | None) -> Iterator[Metric]:
    if section is None:
        return
    top = "; the top patterns by frequency, the rest as pattern=\"other\""
    followups = gauge(snapshot, "rag_followups",
                      "Follow-up questions of this pattern on the newest day (follow_up_patterns_daily.frequency)"
                      + top, ["pattern"])
    response_time = gauge(snapshot, "rag_followup_response_time_seconds",
                          "Mean answer time of follow-ups of this pattern on the newest day "
                          "(follow_up_patterns_daily.avg_response_time_ms, in seconds)" + top, ["pattern"])
    feedback = gauge(snapshot, "rag_followup_feedback",
                     "Follow-ups of this pattern that got feedback on the newest day "
                     "(follow_up_patterns_daily.feedback_count)" + top, ["pattern"])
    positive_ratio = gauge(snapshot, "rag_followup_positive_feedback_ratio",
                           "positive_feedback_count / feedback_count of follow-ups of this pattern on the newest "
                           "day; absent with no feedback" + top, ["pattern"])
    for pattern in section.data.patterns:
        followups.add_metric([pattern.pattern], pattern.frequency)
        feedback.add_metric([pattern.pattern], pattern.feedback)
        if pattern.mean_response_seconds is not None:
            response_time.add_metric([pattern.pattern], pattern.mean_response_seconds)
        if pattern.feedback > 0:
            positive_ratio.add_metric([pattern.pattern], pattern.positive_feedback / pattern.feedback)
    yield from (followups, response_time, feedback, positive_ratio)


def _chunks(snapshot: Snapshot, section: Section[ChunkData] | None) -> Iterator[Metric]:
    if section is None:
        return
    data = section.data
    chunks = chunk_gauge(snapshot, "rag_chunks", "Chunks in chunk_retrieval_stats (valid rows)")
    chunks.add_metric([], data.chunks)
    retrievals = chunk_gauge(snapshot, "rag_chunk_retrievals",
                       "Sum of chunk_retrieval_stats.retrieval_count: chunk retrievals into a context, cumulative")
    retrievals.add_metric([], data.retrievals)
    citations = chunk_gauge(snapshot, "rag_chunk_citations",
                      "Sum of chunk_retrieval_stats.citation_count: citations of retrieved chunks, cumulative")
    citations.add_metric([], data.citations)
    yield from (chunks, retrievals, citations)
    if data.retrievals > 0:
        ratio = chunk_gauge(snapshot, "rag_chunk_citation_ratio",
                      "Citations per retrieval over all chunks (sum citation_count / sum retrieval_count)")
        ratio.add_metric([], data.citations / data.retrievals)
        yield ratio

    histogram = chunk_gauge(snapshot, "rag_chunk_relevance_chunks",
                      "Chunks whose avg_relevance falls in this tenth of [0, 1] (the last bucket includes 1.0); "
                      "chunks never scored are not counted", ["relevance"])
    bucket_citation_ratio = chunk_gauge(snapshot, "rag_chunk_relevance_citation_ratio",
                                  "Citation rate (citations / retrievals) of the chunks in this relevance bucket: how "
                                  "relevance relates to being cited; absent for a bucket with no retrievals",
                                  ["relevance"])
    for bucket in data.buckets:
        histogram.add_metric([bucket.bucket], bucket.chunks)
        if bucket.retrievals > 0:
            bucket_citation_ratio.add_metric([bucket.bucket], bucket.citations / bucket.retrievals)
    yield from (histogram, bucket_citation_ratio)

    if not data.top:
        return
    labels = ["chunk_id", "document_id"]
    top_retrievals = chunk_gauge(snapshot, "rag_top_chunk_retrievals",
                           "Retrievals of the most retrieved chunks (chunk_retrieval_stats.retrieval_count, top N)",
                           labels)
    top_citation_ratio = chunk_gauge(snapshot, "rag_top_chunk_citation_ratio",
                               "Citation rate of the most retrieved chunks (citation_count / retrieval_count)", labels)
    top_relevance = chunk_gauge(snapshot, "rag_top_chunk_relevance_ratio",
                          "Mean relevance score, 0 to 1, of the most retrieved chunks (avg_relevance)", labels)
    for chunk in data.top:
        key = [chunk.chunk_id, chunk.document_id]
        top_retrievals.add_metric(key, chunk.retrievals)
        if chunk.retrievals > 0:
            top_citation_ratio.add_metric(key, chunk.citations / chunk.retrievals)
        if chunk.relevance is not None:
            top_relevance.add_metric(key, chunk.relevance)
    yield from (top_retrievals, top_citation_ratio, top_relevance)
