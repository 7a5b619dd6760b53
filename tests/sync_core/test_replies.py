"""How the core reads the fakes' "slow down" answers: every family's rate
limit and cap on requests in flight is a throttle (back-pressure, waited out
without spending the retry budget); a maintenance 503 or a locked record is
a transient failure like any other; a closed period goes to finance."""

import pytest

from fake_systems.billing import Billing
from fake_systems.crm import Crm
from fake_systems.erp import Erp
from fake_systems.expenses import Expenses
from fake_systems.hris import Hris
from fake_systems.psa import Psa
from fake_systems.revenue_engine import RevenueEngine
from sync_core.replies import check
from sync_core.retry import BusinessException, RetryLater

FAKES = {"billing": Billing, "crm": Crm, "erp": Erp, "expenses": Expenses, "hris": Hris, "psa": Psa,
         "revenue": RevenueEngine}


def raised(system, response):
    with pytest.raises((RetryLater, BusinessException)) as info:
        check(system, response, ok=(200,), doing="testing")
    return info.value


@pytest.mark.parametrize("system", sorted(FAKES))
def test_every_familys_limits_are_throttles(system):
    fake = FAKES[system](system)
    rate = raised(system, fake.rate_limited(3))
    assert isinstance(rate, RetryLater) and rate.throttled
    if rate.after is not None:  # the CRM family never says when
        assert rate.after == 3
    busy = raised(system, fake.over_concurrency())
    assert isinstance(busy, RetryLater) and busy.throttled


@pytest.mark.parametrize("system", sorted(FAKES))
def test_a_maintenance_outage_is_a_failure_not_a_throttle(system):
    fake = FAKES[system](system)
    down = raised(system, fake.unavailable())
    assert isinstance(down, RetryLater) and not down.throttled


def test_a_closed_period_goes_to_finance():
    refusal = raised("erp", Erp("erp").error(400, "PERIOD_CLOSED", "the period is closed"))
    assert isinstance(refusal, BusinessException) and (refusal.domain, refusal.code) == ("finance", "PERIOD_CLOSED")
