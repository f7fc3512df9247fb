// okrsync OKRs: an app card on deal and company records.
//
// The card asks the okrsync sidecar for this record's OKR view with hubspot.fetch(). HubSpot signs the request
// with the app's client secret (X-HubSpot-Signature-v3); the sidecar verifies it, so the card sends no secret
// and no custom header (app cards cannot). The JSON it receives is documented in ../../../README.md.
import React, { useCallback, useEffect, useState } from 'react';
import {
  Button,
  Divider,
  EmptyState,
  ErrorState,
  Flex,
  Heading,
  LoadingSpinner,
  ProgressBar,
  Table,
  TableBody,
  TableCell,
  TableHead,
  TableHeader,
  TableRow,
  Tag,
  Text,
  hubspot,
} from '@hubspot/ui-extensions';

// Replace with your okrsync host (HTTPS). The same origin must be listed in permittedUrls.fetch in app-hsmeta.json.
const OKRSYNC_URL = 'https://okrsync.example.com';
const CARD_PATH = '/api/v1/hubspot/card';
const TIMEOUT_MS = 10000;

// context.crm.objectTypeId of the records this card is configured for (objectTypes in okrsync-card-hsmeta.json)
const OBJECT_TYPES = { '0-3': 'deals', '0-2': 'companies' };

const KR_STATUS = {
  on_track: { label: 'On track', tag: 'success', bar: 'success' },
  achieved: { label: 'Achieved', tag: 'success', bar: 'success' },
  at_risk: { label: 'At risk', tag: 'warning', bar: 'warning' },
  off_track: { label: 'Off track', tag: 'error', bar: 'danger' },
  no_data: { label: 'No data yet', tag: 'default', bar: 'success' },
};
const KAM_STATUS = {
  met: { label: 'Met', tag: 'success' },
  partly: { label: 'Partly met', tag: 'warning' },
  not_met: { label: 'Not met', tag: 'error' },
};

hubspot.extend(({ context, actions }) => <OkrsyncCard context={context} actions={actions} />);

const isBlank = (value) => value === null || value === undefined || value === '';

// Fractions (0-1) as whole percentages
const percent = (fraction) => (isBlank(fraction) ? null : Math.round(Number(fraction) * 100));
const percentText = (fraction) => (isBlank(fraction) ? '—' : `${percent(fraction)}%`);

const numberText = (value) =>
  isBlank(value) ? '' : Number(value).toLocaleString(undefined, { maximumFractionDigits: 2 });

const statusOf = (table, status) =>
  table[status] || { label: isBlank(status) ? 'Unknown' : String(status).replace(/_/g, ' '), tag: 'default' };

const paceText = (progress, expected) => {
  if (isBlank(progress) || isBlank(expected)) {
    return '';
  }
  const gap = percent(progress) - percent(expected);
  if (gap === 0) {
    return 'on pace';
  }
  const points = Math.abs(gap) === 1 ? 'point' : 'points';
  return gap > 0 ? `${gap} ${points} ahead of pace` : `${-gap} ${points} behind pace`;
};

const explain = (status) => {
  if (status === 401 || status === 403) {
    return 'okrsync refused the request: check that okrsync has this app\'s client secret (OKRSYNC_WEBHOOKS__HUBSPOT_CLIENT_SECRET) and its public URL (OKRSYNC_WEBHOOKS__PUBLIC_BASE_URL).';
  }
  if (status === 404) {
    return 'okrsync does not know this record yet: it appears after the next sync.';
  }
  if (status === 503) {
    return 'okrsync is not set up for this HubSpot app yet: set OKRSYNC_WEBHOOKS__HUBSPOT_CLIENT_SECRET and restart it.';
  }
  if (status === 429) {
    return 'Too many requests at once: try again in a moment.';
  }
  return `okrsync answered with HTTP ${status}.`;
};

const OkrsyncCard = ({ context }) => {
  const objectType = OBJECT_TYPES[String(context.crm.objectTypeId)];
  const objectId = context.crm.objectId;
  const [state, setState] = useState({ status: 'loading' });

  const load = useCallback(async () => {
    if (!objectType) {
      setState({ status: 'error', message: 'This card works on deal and company records only.' });
      return;
    }
    setState({ status: 'loading' });
    try {
      const query = `objectType=${objectType}&objectId=${encodeURIComponent(String(objectId))}`;
      const response = await hubspot.fetch(`${OKRSYNC_URL}${CARD_PATH}?${query}`, {
        method: 'GET',
        timeout: TIMEOUT_MS,
      });
      if (!response.ok) {
        setState({ status: 'error', message: explain(response.status) });
        return;
      }
      setState({ status: 'ready', data: await response.json() });
    } catch (error) {
      const reason = error && error.message ? error.message : String(error);
      setState({ status: 'error', message: `okrsync could not be reached (${reason}).` });
    }
  }, [objectType, objectId]);

  useEffect(() => {
    load();
  }, [load]);

  if (state.status === 'loading') {
    return <LoadingSpinner label="Loading OKRs from okrsync" showLabel={true} layout="centered" />;
  }
  if (state.status === 'error') {
    return (
      <ErrorState title="Couldn't load okrsync OKRs.">
        <Text>{state.message}</Text>
        <Button onClick={load}>Try again</Button>
      </ErrorState>
    );
  }
  const data = state.data || {};
  const noun = objectType === 'deals' ? 'deal' : 'company';
  return (
    <Flex direction="column" gap="md">
      {objectType === 'deals' && <Hygiene hygiene={data.hygiene} />}
      {objectType === 'deals' && <Divider />}
      <KeyResults keyResults={data.keyResults || []} noun={noun} />
      {objectType === 'companies' && <Divider />}
      {objectType === 'companies' && <Kam kam={data.kam} />}
    </Flex>
  );
};

const KeyResults = ({ keyResults, noun }) => {
  if (keyResults.length === 0) {
    return (
      <EmptyState title="No key result counts this record yet" layout="vertical" flush={true}>
        <Text>When the activities or pipeline of this {noun} count toward a key result, okrsync shows it here.</Text>
      </EmptyState>
    );
  }
  return (
    <Flex direction="column" gap="sm">
      <Heading>Key results this {noun} counts toward</Heading>
      {keyResults.map((kr, index) => (
        <KeyResult key={`${kr.title}-${kr.team}-${index}`} kr={kr} noun={noun} />
      ))}
    </Flex>
  );
};

const KeyResult = ({ kr, noun }) => {
  const status = statusOf(KR_STATUS, kr.status);
  const contributed = kr.contributed || {};
  const team = [`${percentText(kr.progress)} of target`];
  if (!isBlank(kr.value) && !isBlank(kr.target)) {
    team.push(`(${numberText(kr.value)} of ${numberText(kr.target)})`);
  }
  const teamLine = [team.join(' ')];
  if (!isBlank(kr.expected)) {
    teamLine.push(`expected ${percentText(kr.expected)} by now`);
  }
  const pace = paceText(kr.progress, kr.expected);
  if (pace) {
    teamLine.push(pace);
  }
  const records = Number(contributed.records || 0);
  const added = [`${numberText(records)} ${records === 1 ? 'record' : 'records'} counted`];
  if (!isBlank(contributed.value)) {
    added.push(`value ${numberText(contributed.value)}`);
  }
  return (
    <Flex direction="column" gap="xs">
      <Flex direction="row" justify="between" align="center" gap="sm">
        <Text format={{ fontWeight: 'bold' }}>{kr.title}</Text>
        <Tag variant={status.tag}>{status.label}</Tag>
      </Flex>
      {!isBlank(kr.team) && <Text variant="microcopy">{kr.team}</Text>}
      <ProgressBar
        title="Team progress"
        value={Math.max(0, Math.min(100, percent(kr.progress) || 0))}
        maxValue={100}
        showPercentage={true}
        valueDescription={isBlank(kr.expected) ? undefined : `expected ${percentText(kr.expected)} by now`}
        variant={status.bar || 'success'}
      />
      <Text variant="microcopy">Team: {teamLine.join(' · ')}</Text>
      <Text>
        This {noun} added: {added.join(' · ')}
      </Text>
      {!isBlank(contributed.summary) && <Text variant="microcopy">{contributed.summary}</Text>}
    </Flex>
  );
};

const Hygiene = ({ hygiene }) => {
  if (!hygiene || isBlank(hygiene.checked)) {
    return (
      <Flex direction="column" gap="xs">
        <Heading>Pipeline hygiene</Heading>
        <Text>okrsync has not checked this deal yet.</Text>
      </Flex>
    );
  }
  const issues = hygiene.issues || [];
  const score = percent(hygiene.score);
  return (
    <Flex direction="column" gap="xs">
      <Heading>Pipeline hygiene</Heading>
      {score !== null && (
        <ProgressBar
          title="Hygiene rules passed"
          value={Math.max(0, Math.min(100, score))}
          maxValue={100}
          showPercentage={true}
          variant={score >= 80 ? 'success' : score >= 50 ? 'warning' : 'danger'}
        />
      )}
      {issues.length === 0 ? (
        <Text>No hygiene problems found.</Text>
      ) : (
        issues.map((issue, index) => <Text key={`${index}`}>• {issue}</Text>)
      )}
      <Text variant="microcopy">Checked {new Date(hygiene.checked).toLocaleString()}</Text>
    </Flex>
  );
};

const Kam = ({ kam }) => {
  const criteria = (kam && kam.criteria) || [];
  if (criteria.length === 0) {
    return (
      <Flex direction="column" gap="xs">
        <Heading>Key-account criteria</Heading>
        <Text>okrsync has no key-account criteria for this company yet.</Text>
      </Flex>
    );
  }
  return (
    <Flex direction="column" gap="xs">
      <Heading>Key-account criteria</Heading>
      {!isBlank(kam.score) && <Text>Key-account score {percentText(kam.score)}</Text>}
      <Table bordered={true} flush={true}>
        <TableHead>
          <TableRow>
            <TableHeader>Criterion</TableHeader>
            <TableHeader>Status</TableHeader>
            <TableHeader>Source</TableHeader>
            <TableHeader>Comment</TableHeader>
          </TableRow>
        </TableHead>
        <TableBody>
          {criteria.map((criterion, index) => {
            const status = statusOf(KAM_STATUS, criterion.status);
            return (
              <TableRow key={`${criterion.title}-${index}`}>
                <TableCell>{criterion.title}</TableCell>
                <TableCell>
                  <Tag variant={status.tag}>{status.label}</Tag>
                </TableCell>
                <TableCell>{criterion.source || ''}</TableCell>
                <TableCell>{criterion.comment || ''}</TableCell>
              </TableRow>
            );
          })}
        </TableBody>
      </Table>
    </Flex>
  );
};
