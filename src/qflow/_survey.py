"""Satisfaction capture: a survey result recorded against an incident. Mixed into
:class:`qflow.Engine`; one event (``SurveyRecorded``), one transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qflow import events as ev
from qflow.errors import InputError
from qflow.model import IncidentState

if TYPE_CHECKING:
    from qflow.engine import Engine as _Base
else:
    _Base = object

__all__ = ["SurveyCommands"]


class SurveyCommands(_Base):
    def record_survey(self, incident_id: str, *, score: float | None = None, scale: int = 5,
                      nps: int | None = None, comment: str | None = None, channel: str | None = None,
                      respondent: str | None = None, self_rated: bool = False,
                      actor: str | None = None) -> IncidentState:
        """Record what the customer said about how *incident_id* was handled.

        :param score: satisfaction on a 1..*scale* scale (CSAT).
        :param nps: the 0-10 "would you recommend us" answer (NPS), if asked.
        :param self_rated: the survey was filled in by staff, not by the customer;
            it is kept, and left out of CSAT and NPS.
        """
        if score is None and nps is None:
            raise InputError(f"a survey of {incident_id} needs a score (1-{scale}) or an NPS answer (0-10)")
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 2:
            raise InputError(f"a survey scale must be a whole number of at least 2, not {scale!r}")
        if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)
                                  or not 1 <= score <= scale):
            raise InputError(f"score {score!r} is outside the scale 1-{scale}")
        if nps is not None and (isinstance(nps, bool) or not isinstance(nps, int) or not 0 <= nps <= 10):
            raise InputError(f"an NPS answer is a whole number from 0 to 10, not {nps!r}")
        state = self._load(incident_id)
        data = {"score": score, "scale": scale, "nps": nps, "comment": comment, "channel": channel,
                "respondent": respondent, "self_rated": self_rated}
        return self._record(state, ev.SURVEY_RECORDED, data, actor=actor, source="survey")
