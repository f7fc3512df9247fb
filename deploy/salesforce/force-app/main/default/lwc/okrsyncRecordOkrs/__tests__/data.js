// Records as the UI API answers them: fields keyed by API name, each { value, displayValue }; a parent is a record.
const field = (value) => ({ value, displayValue: null });

export function keyResult(id, values) {
    const fields = {};
    Object.entries(values).forEach(([name, value]) => {
        fields[name] = field(value);
    });
    return { id, apiName: 'OKR_Key_Result__c', fields };
}

export function contribution(id, kr, { records = 1, value = null, summary = null } = {}) {
    return {
        id,
        apiName: 'OKR_Contribution__c',
        fields: {
            Name: field(id),
            Key_Result__c: field(kr.id),
            Key_Result__r: field(kr),
            Records__c: field(records),
            Value__c: field(value),
            Summary__c: field(summary)
        }
    };
}

export function criterion(id, values) {
    const fields = {};
    Object.entries(values).forEach(([name, value]) => {
        fields[name] = field(value);
    });
    return { id, apiName: 'KAM_Criterion__c', fields };
}

export const MEETINGS = keyResult('a01000000000001AAA', {
    Name: '150 meetings with prospects',
    Team__c: 'Vertrieb DACH',
    Progress__c: 45,
    Expected__c: 50,
    Status__c: 'on_track',
    Value__c: 67,
    Target__c: 150,
    Dashboard_URL__c: 'https://okrsync.example.com/dashboard/1/kr/discovery-meetings'
});
export const SPRINT = keyResult('a01000000000002AAA', {
    Name: '150 outbound calls in sprint 1',
    Team__c: 'Vertrieb DACH',
    Progress__c: 75,
    Expected__c: 100,
    Status__c: 'missed',
    Value__c: 113,
    Target__c: 150,
    Dashboard_URL__c: null
});

export function flush() {
    // a wire's emit re-renders on the next microtask
    return Promise.resolve();
}
