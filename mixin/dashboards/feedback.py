"""RAG User Feedback: positive and negative feedback per day and per tag, follow-up patterns."""

from __future__ import annotations

from typing import Any

from .common import T, bars, daily, grid, hourly, legend, new_dashboard, q, series, v


def build() -> Any:
    d = new_dashboard("feedback", "RAG User Feedback",
                      "Daily positive and negative feedback, feedback per tag, and follow-up question patterns. "
                      "Replaces the old page's user interaction charts.")
    negative = 'sentiment="negative"'
    d = d.with_panel(series("Daily feedback", "short", q(daily("rag_feedback"), legend("{{sentiment}}")),
                            bars=True, stacked=True, interval="1d"))
    d = d.with_panel(series("Negative share", "percentunit",
                            q(hourly("rag_feedback_negative_ratio"), legend("negative share")),
                            lines=[(T["negative_feedback_ratio"], "red")]))
    d = d.with_panel(bars("Feedback per tag (today)", "short",
                          q(v("rag_feedback_tag"), legend("{{tag}} {{sentiment}}"), instant=True), h=10))
    d = d.with_panel(series("Negative feedback per tag", "short",
                            q(hourly("rag_feedback_tag", negative), legend("{{tag}}")), h=10))
    d = d.with_panel(grid("Follow-up patterns (today)",
                          q(v("rag_followups"), instant=True, table_format=True),
                          q(v("rag_followup_response_time_seconds"), instant=True, table_format=True),
                          q(v("rag_followup_positive_feedback_ratio"), instant=True, table_format=True),
                          description="Frequency, mean answer time and positive feedback share per pattern.",
                          units={"Value #B": "s", "Value #C": "percentunit"}))
    return d
