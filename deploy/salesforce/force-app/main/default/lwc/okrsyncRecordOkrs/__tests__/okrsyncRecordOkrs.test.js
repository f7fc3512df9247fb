import { createElement } from 'lwc';
import OkrsyncRecordOkrs from 'c/okrsyncRecordOkrs';
import { getRecord } from 'lightning/uiRecordApi';
import { getRelatedListRecords } from 'lightning/uiRelatedListApi';
import { MEETINGS, SPRINT, contribution, criterion, flush } from './data';

function mount(objectApiName) {
    const element = createElement('c-okrsync-record-okrs', { is: OkrsyncRecordOkrs });
    element.recordId = '001000000000001AAA';
    element.objectApiName = objectApiName;
    document.body.appendChild(element);
    return element;
}

afterEach(() => {
    while (document.body.firstChild) {
        document.body.removeChild(document.body.firstChild);
    }
    jest.clearAllMocks();
});

describe('okrsync OKRs on an account, in English', () => {
    it('shows each key result with its status in words, the pace and a link to the dashboard', async () => {
        const element = mount('Account');
        getRelatedListRecords.emit({
            records: [
                contribution('c1', MEETINGS, { records: 2, summary: 'Meeting with the CFO on 2026-09-12' }),
                contribution('c2', MEETINGS, { records: 1 }),
                contribution('c3', SPRINT, { records: 3 })
            ]
        });
        getRecord.emit({ apiName: 'Account', fields: { OKR_KAM_Score__c: { value: 75 } } });
        await flush();
        const root = element.shadowRoot;
        const items = [...root.querySelectorAll('li.slds-item')];
        const meetings = items.find((li) => li.textContent.includes('150 meetings with prospects'));
        expect(meetings).toBeTruthy();
        expect(meetings.textContent).toContain('Team: 45% of target (67 of 150) · expected 50% by now · 5 points behind pace');
        expect(meetings.textContent).toContain('This account added: 3 records counted');
        const badge = meetings.querySelector('lightning-badge');
        expect(badge.label).toBe('On track');
        const dashboard = [...meetings.querySelectorAll('a')].find((a) => a.textContent === 'Open in the okrsync dashboard');
        expect(dashboard.href).toBe('https://okrsync.example.com/dashboard/1/kr/discovery-meetings');
        expect(dashboard.target).toBe('_blank');

        const sprint = items.find((li) => li.textContent.includes('150 outbound calls in sprint 1'));
        expect(sprint.querySelector('lightning-badge').label).toBe('Missed');
        expect([...sprint.querySelectorAll('a')].map((a) => a.textContent)).not.toContain('Open in the okrsync dashboard');
    });

    it('lists the key-account criteria with their status and score', async () => {
        const element = mount('Account');
        getRelatedListRecords.emit({
            records: [
                criterion('k1', { Criterion__c: 'Board-level relationship', Status__c: 'partly', Source__c: 'assessed', Comment__c: 'CFO joins the QBR' }),
                criterion('k2', { Criterion__c: 'Three contacts met', Status__c: 'not_assessed', Source__c: 'derived', Measured__c: 2 })
            ]
        });
        getRecord.emit({ apiName: 'Account', fields: { OKR_KAM_Score__c: { value: 50 } } });
        await flush();
        const text = element.shadowRoot.textContent;
        expect(text).toContain('Key-account score 50%');
        expect(text).toContain('derived (measured 2)');
        expect(text).toContain('CFO joins the QBR');
        const labels = [...element.shadowRoot.querySelectorAll('lightning-badge')].map((badge) => badge.label);
        expect(labels).toEqual(expect.arrayContaining(['Partly met', 'Not assessed']));
    });

    it('says what went wrong when the key results cannot be read', async () => {
        const element = mount('Opportunity');
        getRelatedListRecords.error({ message: 'insufficient access rights on OKR_Contribution__c' });
        await flush();
        expect(element.shadowRoot.textContent).toContain("okrsync's key results could not be loaded");
    });
});
