"""The risk step of the pipeline.

No risk rules, features or model exist yet, and this step does not pretend
otherwise: it allows every event and says that no rules were evaluated, so a
decision never claims a check that did not happen. A later issue plugs real
rules in behind the same `RiskStep` port.
"""

from __future__ import annotations

from double11.domain.decision import RiskAssessment, Verdict
from double11.domain.facts import Facts

NO_RULES = RiskAssessment(Verdict.ALLOW, ("no risk rules configured",))


class NoRiskRules:
    """The risk step before any rule is configured: allow, and say so."""

    async def assess(self, facts: Facts) -> RiskAssessment:
        return NO_RULES
