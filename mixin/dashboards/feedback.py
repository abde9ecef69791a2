"""RAG User Feedback: positive and negative feedback per day and per tag, follow-up patterns."""

from __future__ import annotations

from typing import Any

from ..quality import FEEDBACK
from . import slos
from .common import (
    OVER_TIME,
    PER_DAY,
    TODAY,
    Column,
    T,
    about,
    bars,
    daily,
    grid,
    hourly,
    legend,
    new_dashboard,
    q,
    series,
    v,
)


def build() -> Any:
    d = new_dashboard("feedback", "RAG User Feedback",
                      "Daily positive and negative feedback, feedback per tag, and follow-up question patterns. "
                      "Replaces the old page's user interaction charts.")
    negative = 'sentiment="negative"'
    d = d.with_panel(series("Daily feedback", "locale", q(daily("rag_feedback"), legend("{{sentiment}}")),
                            description=about("Positive and negative feedback, stacked", "feedback_daily", PER_DAY),
                            bars=True, stacked=True, interval="1d"))
    d = d.with_panel(series("Negative feedback share", "percentunit",
                            q(hourly("rag_feedback_negative_ratio"), legend("negative share")),
                            description=about("Negative / all feedback; the dashed line is "
                                              "RagNegativeFeedbackHigh's threshold", "feedback_daily", OVER_TIME),
                            lines=[(T["negative_feedback_ratio"], "red")]))
    d = d.with_panel(slos.budget_left(FEEDBACK, "feedback_daily", w=24))
    d = d.with_panel(bars("Feedback per tag (today)", "locale",
                          q(v("rag_feedback_tag"), legend("{{tag}} {{sentiment}}"), instant=True),
                          description=about("Feedback per tag and sentiment", "feedback_tags_daily", TODAY), h=10))
    d = d.with_panel(series("Negative feedback per tag", "locale",
                            q(hourly("rag_feedback_tag", negative), legend("{{tag}}")),
                            description=about("Negative feedback per tag", "feedback_tags_daily", OVER_TIME), h=10))
    d = d.with_panel(grid(
        "Follow-up patterns (today)",
        Column("Follow-ups", v("rag_followups"), "locale"),
        Column("Mean answer time", v("rag_followup_response_time_seconds"), "s"),
        Column("Positive feedback", v("rag_followup_positive_feedback_ratio"), "percentunit"),
        description=about("Per follow-up pattern: how often it came, the mean answer time and the positive share "
                          "of its feedback", "follow_up_patterns_daily", TODAY),
        keys={"pattern": "Pattern"}))
    return d
