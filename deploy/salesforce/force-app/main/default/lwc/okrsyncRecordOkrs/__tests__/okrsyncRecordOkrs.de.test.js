import { createElement } from 'lwc';
import OkrsyncRecordOkrs from 'c/okrsyncRecordOkrs';
import { getRelatedListRecords } from 'lightning/uiRelatedListApi';
import { MEETINGS, SPRINT, contribution, flush } from './data';

// The component reads the user's language once, when its module loads: German for this whole file
jest.mock('@salesforce/i18n/lang', () => ({ default: 'de' }), { virtual: true });

afterEach(() => {
    while (document.body.firstChild) {
        document.body.removeChild(document.body.firstChild);
    }
});

describe('okrsync OKRs for a German user', () => {
    it('speaks German: headings, statuses, pace and the dashboard link', async () => {
        const element = createElement('c-okrsync-record-okrs', { is: OkrsyncRecordOkrs });
        element.recordId = '006000000000001AAA';
        element.objectApiName = 'Opportunity';
        document.body.appendChild(element);
        getRelatedListRecords.emit({ records: [contribution('c1', MEETINGS), contribution('c2', SPRINT)] });
        await flush();
        const text = element.shadowRoot.textContent;
        expect(text).toContain('Key Results');
        expect(text).toContain('Pipeline-Hygiene');
        expect(text).toContain('Team: 45 % des Ziels (67 von 150) · Soll bis heute 50 % · 5 Punkte hinter dem Soll');
        expect(text).toContain('Beitrag dieser Opportunity: 1 Datensatz gezählt');
        expect(text).toContain('Im okrsync-Dashboard öffnen');
        for (const english of ['of target', 'behind pace', 'Open in the okrsync dashboard', 'record counted']) {
            expect(text).not.toContain(english);
        }
        const labels = [...element.shadowRoot.querySelectorAll('lightning-badge')].map((badge) => badge.label);
        expect(labels).toEqual(['Im Plan', 'Verfehlt']);
    });
});
