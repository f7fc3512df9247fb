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
    'OKR_Contribution__c.Key_Result__r.Target__c'
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

// OKR_Key_Result__c.Status__c: on_track, at_risk, off_track, achieved or no_data
const KR_STATUS = {
    on_track: { label: 'On track', badge: 'slds-theme_success' },
    achieved: { label: 'Achieved', badge: 'slds-theme_success' },
    at_risk: { label: 'At risk', badge: 'slds-theme_warning' },
    off_track: { label: 'Off track', badge: 'slds-theme_error' },
    no_data: { label: 'No data yet', badge: '' }
};
// KAM_Criterion__c.Status__c: met, partly or not_met
const KAM_STATUS = {
    met: { label: 'Met', badge: 'slds-theme_success' },
    partly: { label: 'Partly met', badge: 'slds-theme_warning' },
    not_met: { label: 'Not met', badge: 'slds-theme_error' }
};
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
    return isBlank(value) ? '—' : `${Math.round(Number(value))}%`;
}

function statusOf(table, status) {
    if (table[status]) {
        return table[status];
    }
    return { label: isBlank(status) ? 'No status yet' : String(status).replace(/_/g, ' '), badge: '' };
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
    return error.message || error.statusText || 'Unknown error';
}

function paceText(progress, expected) {
    if (isBlank(progress) || isBlank(expected)) {
        return '';
    }
    const gap = Math.round(Number(progress) - Number(expected));
    if (gap === 0) {
        return 'on pace';
    }
    const points = Math.abs(gap) === 1 ? 'point' : 'points';
    return gap > 0 ? `${gap} ${points} ahead of pace` : `${-gap} ${points} behind pace`;
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
        const status = statusOf(KR_STATUS, fieldValue(kr, 'Status__c'));
        const value = fieldValue(kr, 'Value__c');
        const target = fieldValue(kr, 'Target__c');
        const bar = isBlank(progress) ? 0 : Math.max(0, Math.min(100, Number(progress)));
        const marker = isBlank(expected) ? undefined : Math.max(0, Math.min(100, Number(expected)));
        const team = [`${formatPercent(progress)} of target`];
        if (!isBlank(value) && !isBlank(target)) {
            team.push(`(${formatNumber(value)} of ${formatNumber(target)})`);
        }
        const teamLine = [team.join(' ')];
        if (!isBlank(expected)) {
            teamLine.push(`expected ${formatPercent(expected)} by now`);
        }
        const pace = paceText(progress, expected);
        if (pace) {
            teamLine.push(pace);
        }
        const added = [`${formatNumber(group.records)} ${group.records === 1 ? 'record' : 'records'} counted`];
        if (group.hasValue) {
            added.push(`value ${formatNumber(group.value)}`);
        }
        const summaries = group.summaries.slice(0, SUMMARIES_SHOWN).map((text, index) => ({ key: `${index}`, text }));
        if (group.summaries.length > SUMMARIES_SHOWN) {
            summaries.push({ key: 'more', text: `and ${group.summaries.length - SUMMARIES_SHOWN} more` });
        }
        return {
            id: group.id,
            name: fieldValue(kr, 'Name') || 'Key result',
            url: `/lightning/r/OKR_Key_Result__c/${group.id}/view`,
            team: fieldValue(kr, 'Team__c') || '',
            bar,
            hasMarker: marker !== undefined,
            markerStyle: marker === undefined ? '' : `left: ${marker}%`,
            markerTitle: `Expected by now: ${formatPercent(expected)}`,
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
        return this.isOpportunity ? 'opportunity' : 'account';
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
        return `This ${this.recordNoun} added`;
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
        return `${formatPercent(this.hygieneScore)} of the team's hygiene rules pass`;
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
        return isBlank(score) ? '' : `Key-account score ${formatPercent(score)}`;
    }

    get kamCriteria() {
        return (this.kamRecords || []).map((record) => {
            const status = statusOf(KAM_STATUS, fieldValue(record, 'Status__c'));
            const measured = fieldValue(record, 'Measured__c');
            const source = fieldValue(record, 'Source__c') || '';
            return {
                id: record.id,
                title: fieldValue(record, 'Criterion__c') || fieldValue(record, 'Name') || 'Criterion',
                statusLabel: status.label,
                statusClass: status.badge,
                sourceText: isBlank(measured) ? source : `${source} (measured ${formatNumber(measured)})`,
                comment: fieldValue(record, 'Comment__c') || ''
            };
        });
    }

    get hasKamCriteria() {
        return this.kamCriteria.length > 0;
    }
}
