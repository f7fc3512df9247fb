/*
 * okrsync OKRs on an Opportunity or Account record page.
 *
 * Reads what okrsync wrote into the org with Lightning Data Service only (no Apex, no callout):
 *  - OKR_Contribution__c rows of this record (related list of the lookup Opportunity__c or Account__c) with their
 *    key result's progress, expected-by-now and status;
 *  - on an opportunity, the OKR_Hygiene_* fields; on an account, the KAM_Criterion__c rows and OKR_KAM_Score__c.
 *
 * Salesforce percent fields hold 0-100 (45.5 means 45.5 %), not fractions.
 * tests/deploy/test_ui_components.py checks every field name below against deploy/salesforce.
 */
import { LightningElement, api, wire } from 'lwc';
import { getRecord } from 'lightning/uiRecordApi';
import { getRelatedListRecords } from 'lightning/uiRelatedListApi';
import LOCALE from '@salesforce/i18n/locale';
import LANG from '@salesforce/i18n/lang';

// relatedListId of a custom lookup's related list: its child relationship name, i.e. <relationshipName>__r
const CONTRIBUTIONS_LIST = 'OKR_Contributions__r';
const KAM_CRITERIA_LIST = 'KAM_Criteria__r';
const PAGE_SIZE = 200;

const CONTRIBUTION_FIELDS = [
    'OKR_Contribution__c.Name',
    'OKR_Contribution__c.Summary__c',
    'OKR_Contribution__c.Records__c',
    'OKR_Contribution__c.Value__c',
    'OKR_Contribution__c.Key_Result__c',
    'OKR_Contribution__c.Opportunity__c',
    'OKR_Contribution__c.Key_Result__r.Name',
    'OKR_Contribution__c.Key_Result__r.Team__c',
    'OKR_Contribution__c.Key_Result__r.Progress__c',
    'OKR_Contribution__c.Key_Result__r.Expected__c',
    'OKR_Contribution__c.Key_Result__r.Status__c',
    'OKR_Contribution__c.Key_Result__r.Value__c',
    'OKR_Contribution__c.Key_Result__r.Target__c',
    'OKR_Contribution__c.Key_Result__r.Dashboard_URL__c'
];
const KAM_FIELDS = [
    'KAM_Criterion__c.Name',
    'KAM_Criterion__c.Criterion__c',
    'KAM_Criterion__c.Status__c',
    'KAM_Criterion__c.Source__c',
    'KAM_Criterion__c.Comment__c',
    'KAM_Criterion__c.Measured__c'
];
const HYGIENE_SCORE = 'Opportunity.OKR_Hygiene_Score__c';
const HYGIENE_ISSUES = 'Opportunity.OKR_Hygiene_Issues__c';
const HYGIENE_CHECKED = 'Opportunity.OKR_Hygiene_Checked__c';
const KAM_SCORE = 'Account.OKR_KAM_Score__c';

// Every word the component shows, in the user's language (Salesforce's @salesforce/i18n/lang: "de", "en_US"…);
// English for any other language. The same keys in both.
export const WORDS = {
    en: {
        title: 'okrsync OKRs',
        pipelineHygiene: 'Pipeline hygiene',
        keyResults: 'Key results',
        kamCriteria: 'Key-account criteria',
        loading: 'Loading',
        hygieneError: "okrsync's hygiene check could not be loaded: {error}",
        contributionsError: "okrsync's key results could not be loaded: {error}",
        kamError: "okrsync's key-account criteria could not be loaded: {error}",
        noHygieneProblems: 'No hygiene problems found.',
        checked: 'Checked',
        notChecked: 'okrsync has not checked this opportunity yet.',
        noKeyResults: 'No key result counts this record yet.',
        noKamCriteria: 'okrsync has no key-account criteria for this account yet.',
        openDashboard: 'Open in the okrsync dashboard',
        team: 'Team',
        ofTarget: '{percent} of target',
        valueOfTarget: '({value} of {target})',
        expectedByNow: 'expected {percent} by now',
        expectedTitle: 'Expected by now: {percent}',
        onPace: 'on pace',
        ahead: '{points} points ahead of pace',
        aheadOne: '1 point ahead of pace',
        behind: '{points} points behind pace',
        behindOne: '1 point behind pace',
        recordsCounted: '{count} records counted',
        recordCounted: '1 record counted',
        value: 'value {value}',
        more: 'and {count} more',
        added: 'This {noun} added',
        opportunity: 'opportunity',
        account: 'account',
        hygieneScore: "{percent} of the team's hygiene rules pass",
        kamScore: 'Key-account score {percent}',
        measured: '{source} (measured {value})',
        keyResult: 'Key result',
        criterion: 'Criterion',
        noStatus: 'No status yet',
        unknownError: 'Unknown error',
        status_on_track: 'On track',
        status_achieved: 'Achieved',
        status_missed: 'Missed',
        status_at_risk: 'At risk',
        status_off_track: 'Off track',
        status_too_early: 'Too early to tell',
        status_not_started: 'Not started',
        status_no_data: 'No data yet',
        kam_met: 'Met',
        kam_partly: 'Partly met',
        kam_not_met: 'Not met',
        kam_not_assessed: 'Not assessed'
    },
    de: {
        title: 'okrsync-OKRs',
        pipelineHygiene: 'Pipeline-Hygiene',
        keyResults: 'Key Results',
        kamCriteria: 'Key-Account-Kriterien',
        loading: 'Wird geladen',
        hygieneError: 'Die Hygiene-Prüfung von okrsync konnte nicht geladen werden: {error}',
        contributionsError: 'Die Key Results von okrsync konnten nicht geladen werden: {error}',
        kamError: 'Die Key-Account-Kriterien von okrsync konnten nicht geladen werden: {error}',
        noHygieneProblems: 'Keine Hygiene-Probleme gefunden.',
        checked: 'Geprüft',
        notChecked: 'okrsync hat diese Opportunity noch nicht geprüft.',
        noKeyResults: 'Dieser Datensatz zählt noch für kein Key Result.',
        noKamCriteria: 'okrsync hat für diesen Account noch keine Key-Account-Kriterien.',
        openDashboard: 'Im okrsync-Dashboard öffnen',
        team: 'Team',
        ofTarget: '{percent} des Ziels',
        valueOfTarget: '({value} von {target})',
        expectedByNow: 'Soll bis heute {percent}',
        expectedTitle: 'Soll bis heute: {percent}',
        onPace: 'im Soll',
        ahead: '{points} Punkte vor dem Soll',
        aheadOne: '1 Punkt vor dem Soll',
        behind: '{points} Punkte hinter dem Soll',
        behindOne: '1 Punkt hinter dem Soll',
        recordsCounted: '{count} Datensätze gezählt',
        recordCounted: '1 Datensatz gezählt',
        value: 'Wert {value}',
        more: 'und {count} weitere',
        added: 'Beitrag dieser {noun}',
        opportunity: 'Opportunity',
        account: 'Account',
        hygieneScore: '{percent} der Hygiene-Regeln des Teams erfüllt',
        kamScore: 'Key-Account-Score {percent}',
        measured: '{source} (gemessen {value})',
        keyResult: 'Key Result',
        criterion: 'Kriterium',
        noStatus: 'Noch kein Status',
        unknownError: 'Unbekannter Fehler',
        status_on_track: 'Im Plan',
        status_achieved: 'Erreicht',
        status_missed: 'Verfehlt',
        status_at_risk: 'Gefährdet',
        status_off_track: 'Nicht im Plan',
        status_too_early: 'Noch zu früh',
        status_not_started: 'Nicht begonnen',
        status_no_data: 'Noch keine Daten',
        kam_met: 'Erfüllt',
        kam_partly: 'Teilweise erfüllt',
        kam_not_met: 'Nicht erfüllt',
        kam_not_assessed: 'Nicht bewertet'
    }
};

export function wordsFor(lang) {
    return WORDS[String(lang || 'en').slice(0, 2).toLowerCase()] || WORDS.en;
}

const T = wordsFor(LANG);

// A word with its {placeholders} filled in
function t(key, values = {}) {
    return T[key].replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

// OKR_Key_Result__c.Status__c: on_track, at_risk, off_track, too_early, not_started, no_data; achieved or missed
// once the window has ended
const BADGES = {
    on_track: 'slds-theme_success',
    achieved: 'slds-theme_success',
    at_risk: 'slds-theme_warning',
    off_track: 'slds-theme_error',
    missed: 'slds-theme_error'
};
// KAM_Criterion__c.Status__c: met, partly, not_met or not_assessed
const KAM_BADGES = { met: 'slds-theme_success', partly: 'slds-theme_warning', not_met: 'slds-theme_error' };
const SUMMARIES_SHOWN = 3;

const numberFormat = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 2 });

function isBlank(value) {
    return value === null || value === undefined || value === '';
}

// A record of the UI API: fields are keyed by API name, each { value, displayValue }; a parent is a nested record.
function fieldValue(record, name) {
    const field = record && record.fields ? record.fields[name] : undefined;
    return field ? field.value : undefined;
}

function formatNumber(value) {
    return isBlank(value) ? '' : numberFormat.format(Number(value));
}

function formatPercent(value) {
    if (isBlank(value)) {
        return '—';
    }
    return T === WORDS.de ? `${Math.round(Number(value))} %` : `${Math.round(Number(value))}%`;
}

function statusOf(prefix, badges, status) {
    const key = `${prefix}_${status}`;
    if (!isBlank(status) && key in T) {
        return { label: T[key], badge: badges[status] || '' };
    }
    return { label: isBlank(status) ? T.noStatus : String(status).replace(/_/g, ' '), badge: '' };
}

function errorMessage(error) {
    if (!error) {
        return undefined;
    }
    const bodies = Array.isArray(error.body) ? error.body : [error.body];
    const messages = bodies.filter((body) => body && body.message).map((body) => body.message);
    if (messages.length) {
        return messages.join(' ');
    }
    return error.message || error.statusText || T.unknownError;
}

function paceText(progress, expected) {
    if (isBlank(progress) || isBlank(expected)) {
        return '';
    }
    const gap = Math.round(Number(progress) - Number(expected));
    if (gap === 0) {
        return T.onPace;
    }
    if (gap > 0) {
        return gap === 1 ? T.aheadOne : t('ahead', { points: gap });
    }
    return gap === -1 ? T.behindOne : t('behind', { points: -gap });
}

// One row per key result: a record may hold several contributions to one key result (an account's own and its
// opportunities'), so records and values are added up and the summaries listed.
function keyResultRows(records) {
    const groups = new Map();
    records.forEach((record) => {
        const keyResult = fieldValue(record, 'Key_Result__r');
        const id = fieldValue(record, 'Key_Result__c') || (keyResult && keyResult.id) || record.id;
        let group = groups.get(id);
        if (!group) {
            group = { id, keyResult, records: 0, value: 0, hasValue: false, summaries: [] };
            groups.set(id, group);
        }
        group.records += Number(fieldValue(record, 'Records__c') || 0);
        const value = fieldValue(record, 'Value__c');
        if (!isBlank(value)) {
            group.value += Number(value);
            group.hasValue = true;
        }
        const summary = fieldValue(record, 'Summary__c');
        if (summary) {
            group.summaries.push(summary);
        }
    });
    const rows = Array.from(groups.values()).map((group) => {
        const kr = group.keyResult;
        const progress = fieldValue(kr, 'Progress__c');
        const expected = fieldValue(kr, 'Expected__c');
        const status = statusOf('status', BADGES, fieldValue(kr, 'Status__c'));
        const value = fieldValue(kr, 'Value__c');
        const target = fieldValue(kr, 'Target__c');
        const bar = isBlank(progress) ? 0 : Math.max(0, Math.min(100, Number(progress)));
        const marker = isBlank(expected) ? undefined : Math.max(0, Math.min(100, Number(expected)));
        const team = [t('ofTarget', { percent: formatPercent(progress) })];
        if (!isBlank(value) && !isBlank(target)) {
            team.push(t('valueOfTarget', { value: formatNumber(value), target: formatNumber(target) }));
        }
        const teamLine = [team.join(' ')];
        if (!isBlank(expected)) {
            teamLine.push(t('expectedByNow', { percent: formatPercent(expected) }));
        }
        const pace = paceText(progress, expected);
        if (pace) {
            teamLine.push(pace);
        }
        const added = [group.records === 1 ? T.recordCounted : t('recordsCounted', { count: formatNumber(group.records) })];
        if (group.hasValue) {
            added.push(t('value', { value: formatNumber(group.value) }));
        }
        const summaries = group.summaries.slice(0, SUMMARIES_SHOWN).map((text, index) => ({ key: `${index}`, text }));
        if (group.summaries.length > SUMMARIES_SHOWN) {
            summaries.push({ key: 'more', text: t('more', { count: group.summaries.length - SUMMARIES_SHOWN }) });
        }
        return {
            id: group.id,
            name: fieldValue(kr, 'Name') || T.keyResult,
            url: `/lightning/r/OKR_Key_Result__c/${group.id}/view`,
            dashboardUrl: fieldValue(kr, 'Dashboard_URL__c') || '',
            team: fieldValue(kr, 'Team__c') || '',
            bar,
            hasMarker: marker !== undefined,
            markerStyle: marker === undefined ? '' : `left: ${marker}%`,
            markerTitle: t('expectedTitle', { percent: formatPercent(expected) }),
            teamText: teamLine.join(' · '),
            statusLabel: status.label,
            statusClass: status.badge,
            addedText: added.join(' · '),
            summaries
        };
    });
    return rows.sort((a, b) => a.name.localeCompare(b.name));
}

export default class OkrsyncRecordOkrs extends LightningElement {
    @api recordId;
    @api objectApiName;

    labels = T;

    contributionRecords;
    contributionsError;
    hygieneRecord;
    hygieneError;
    kamRecords;
    kamError;
    kamScoreRecord;
    kamScoreError;

    get isOpportunity() {
        return this.objectApiName === 'Opportunity';
    }

    get isAccount() {
        return this.objectApiName === 'Account';
    }

    // Wires whose record id is undefined are not provisioned: each object's own wires run on its own page only.
    get opportunityId() {
        return this.isOpportunity ? this.recordId : undefined;
    }

    get accountId() {
        return this.isAccount ? this.recordId : undefined;
    }

    @wire(getRelatedListRecords, {
        parentRecordId: '$recordId',
        relatedListId: CONTRIBUTIONS_LIST,
        fields: CONTRIBUTION_FIELDS,
        sortBy: ['OKR_Contribution__c.Name'],
        pageSize: PAGE_SIZE
    })
    wiredContributions({ data, error }) {
        this.contributionRecords = data ? data.records : undefined;
        this.contributionsError = errorMessage(error);
    }

    @wire(getRecord, { recordId: '$opportunityId', fields: [HYGIENE_SCORE, HYGIENE_ISSUES, HYGIENE_CHECKED] })
    wiredHygiene({ data, error }) {
        this.hygieneRecord = data;
        this.hygieneError = errorMessage(error);
    }

    @wire(getRelatedListRecords, {
        parentRecordId: '$accountId',
        relatedListId: KAM_CRITERIA_LIST,
        fields: KAM_FIELDS,
        sortBy: ['KAM_Criterion__c.Name'],
        pageSize: PAGE_SIZE
    })
    wiredKamCriteria({ data, error }) {
        this.kamRecords = data ? data.records : undefined;
        this.kamError = errorMessage(error);
    }

    @wire(getRecord, { recordId: '$accountId', fields: [KAM_SCORE] })
    wiredKamScore({ data, error }) {
        this.kamScoreRecord = data;
        this.kamScoreError = errorMessage(error);
    }

    // --- key results

    get recordNoun() {
        return this.isOpportunity ? T.opportunity : T.account;
    }

    get contributionsErrorText() {
        return this.contributionsError ? t('contributionsError', { error: this.contributionsError }) : '';
    }

    get hygieneErrorText() {
        return this.hygieneError ? t('hygieneError', { error: this.hygieneError }) : '';
    }

    get kamErrorMessage() {
        return this.kamErrorText ? t('kamError', { error: this.kamErrorText }) : '';
    }

    get contributionsLoading() {
        return !this.contributionRecords && !this.contributionsError;
    }

    get keyResults() {
        return keyResultRows(this.contributionRecords || []);
    }

    get hasKeyResults() {
        return this.keyResults.length > 0;
    }

    get addedHeading() {
        return t('added', { noun: this.recordNoun });
    }

    // --- pipeline hygiene (opportunities)

    get hygieneLoading() {
        return !this.hygieneRecord && !this.hygieneError;
    }

    get hygieneChecked() {
        return fieldValue(this.hygieneRecord, 'OKR_Hygiene_Checked__c');
    }

    get hygieneScore() {
        return fieldValue(this.hygieneRecord, 'OKR_Hygiene_Score__c');
    }

    get hygieneBar() {
        const score = this.hygieneScore;
        return isBlank(score) ? 0 : Math.max(0, Math.min(100, Number(score)));
    }

    get hygieneScoreText() {
        return t('hygieneScore', { percent: formatPercent(this.hygieneScore) });
    }

    get hygieneIssues() {
        const text = fieldValue(this.hygieneRecord, 'OKR_Hygiene_Issues__c') || '';
        return text
            .split(/\r?\n/)
            .map((line) => line.trim())
            .filter((line) => line)
            .map((line, index) => ({ key: `${index}`, text: line }));
    }

    get hasHygieneIssues() {
        return this.hygieneIssues.length > 0;
    }

    // --- key-account criteria (accounts)

    get kamLoading() {
        return !this.kamRecords && !this.kamErrorText;
    }

    get kamErrorText() {
        return this.kamError || this.kamScoreError;
    }

    get kamScoreText() {
        const score = fieldValue(this.kamScoreRecord, 'OKR_KAM_Score__c');
        return isBlank(score) ? '' : t('kamScore', { percent: formatPercent(score) });
    }

    get kamCriteria() {
        return (this.kamRecords || []).map((record) => {
            const status = statusOf('kam', KAM_BADGES, fieldValue(record, 'Status__c'));
            const measured = fieldValue(record, 'Measured__c');
            const source = fieldValue(record, 'Source__c') || '';
            return {
                id: record.id,
                title: fieldValue(record, 'Criterion__c') || fieldValue(record, 'Name') || T.criterion,
                statusLabel: status.label,
                statusClass: status.badge,
                sourceText: isBlank(measured) ? source : t('measured', { source, value: formatNumber(measured) }),
                comment: fieldValue(record, 'Comment__c') || ''
            };
        });
    }

    get hasKamCriteria() {
        return this.kamCriteria.length > 0;
    }
}
