"""The connector contract (issue 23, item 5), assembled per CRM: Salesforce and HubSpot through their real client
libraries against the sandbox CRM over HTTPS on loopback, and the test-only memory CRM.

The properties are in ``properties.py``, what differs per CRM in ``drivers.py``; a CRM that skips a property says
so here, with the reason.
"""

from __future__ import annotations

from tests.connectors.contract.drivers import HubSpotDriver, MemoryDriver, SalesforceDriver
from tests.connectors.contract.factory import contract_suite
from tests.connectors.contract.properties import CursorsResumeAfterAKill, DeletesArrive, RetriableFaultIsRetried

# each incremental HubSpot run searches eight objects, paced at the search API's limit of 5 a second (~1.5 s)
PACED_SEARCHES = "two syncs or more, the incremental ones paced at HubSpot's 5 searches a second"

globals().update(contract_suite(SalesforceDriver()))
globals().update(
    contract_suite(HubSpotDriver(), slow={CursorsResumeAfterAKill: PACED_SEARCHES, DeletesArrive: PACED_SEARCHES})
)
globals().update(
    contract_suite(
        MemoryDriver(),
        exceptions={
            # in-memory records and no HTTP: no call can fail in a way a retry would fix, and no fault can be planned
            RetriableFaultIsRetried: "no HTTP and so no faults: the memory CRM cannot fail a call (property 4)",
        },
    )
)
